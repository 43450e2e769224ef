"""The numpy tree walk used for live single windows gives XGBoost's own probabilities, and steps aside when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from spml_core.registry import Registry
from spml_model_xgboost.trees import from_booster


def _data(classes: int, n: int = 2000, d: int = 30, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] * 2 + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int) * (classes - 2)
    X[rng.random(X.shape) < 0.15] = np.nan  # hidden joints: missing values take each node's default branch
    return X, y


@pytest.mark.parametrize("objective, classes", [("binary:logistic", 2), ("multi:softprob", 3)])
def test_tree_walk_equals_xgboost_row_by_row(objective: str, classes: int) -> None:
    X, y = _data(classes)
    extra = {"num_class": classes} if classes > 2 else {}
    booster = xgb.train({"objective": objective, "max_depth": 5, "nthread": 1, "eta": 0.3, **extra},
                        xgb.DMatrix(X[:1500], label=y[:1500]), 40)
    trees = from_booster(booster, X.shape[1])
    assert trees is not None and trees.roots.size == 40 * (classes if classes > 2 else 1)
    expected = booster.inplace_predict(X[1500:])
    got = np.concatenate([trees.predict(X[i:i + 1]) for i in range(1500, len(X))])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # The margins are bit for bit XGBoost's (float32 sums in tree order from the base score).
    margins = booster.inplace_predict(X[1500:], predict_type="margin").reshape(len(got), -1)
    assert np.array_equal(trees.margins(X[1500:]), margins)


def test_unsupported_boosters_stay_with_xgboost() -> None:
    X, y = _data(2)
    dart = xgb.train({"objective": "binary:logistic", "booster": "dart", "nthread": 1}, xgb.DMatrix(X, label=y), 5)
    assert from_booster(dart, X.shape[1]) is None
    counts = xgb.train({"objective": "count:poisson", "nthread": 1}, xgb.DMatrix(X, label=y), 5)
    assert from_booster(counts, X.shape[1]) is None


@pytest.mark.parametrize("name", ["xgboost", "random_forest"])
def test_a_model_answers_one_window_as_it_answers_a_batch(name: str) -> None:
    X, y = _data(3)
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    model = Registry().load().create("model", name, {"n_estimators": 30})
    model.fit(X[:1500], labels[:1500])
    batch = model.predict_proba(X[1500:1600])  # XGBoost itself
    single = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(1500, 1600)])  # the tree walk
    assert model.__dict__["trees_"][1] is not None
    np.testing.assert_allclose(single, batch, rtol=1e-6, atol=1e-7)
