"""The built-in logistic_regression: same model as scikit-learn's, saved as JSON numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spml_core.errors import SpmlError
from spml_core.registry import Registry


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 30)) * rng.uniform(0.1, 10, size=30)
    y = np.where(X[:, 0] / 5 + X[:, 1] > 0, "a", np.where(X[:, 2] > 0, "b", "c")).astype(object)
    return X, y


@pytest.mark.parametrize("penalty", ["l2", "l1"])
def test_matches_scikit_learn_on_standardised_features(penalty) -> None:
    lm = pytest.importorskip("sklearn.linear_model")
    X, y = data()
    ours = Registry().load().create("model", "logistic_regression",
                                    {"penalty": penalty, "C": 0.5, "class_weight": "none", "tol": 1e-7,
                                     "max_iter": 20000})
    ours.fit(X[:200], y[:200])
    mean, std = X[:200].mean(0), X[:200].std(0)
    theirs = lm.LogisticRegression(C=0.5, l1_ratio=1.0 if penalty == "l1" else 0.0, solver="saga", tol=1e-10,
                                   max_iter=20000).fit((X[:200] - mean) / std, y[:200])
    np.testing.assert_allclose(ours.predict_proba(X[200:]), theirs.predict_proba((X[200:] - mean) / std),
                               atol=2e-3)
    if penalty == "l1":
        assert ours.training_summary()["nonzero_weights"] < 30 * 3


def test_json_round_trip_and_errors(tmp_path) -> None:
    X, y = data(1)
    X[::7, 4] = np.nan  # missing features are replaced by the training mean
    model = Registry().load().create("model", "logistic_regression", {}).fit(X, y)
    assert model.save(tmp_path) == ["logistic_regression.json"]
    json.loads((tmp_path / "logistic_regression.json").read_text())
    again = type(model).load(tmp_path, model.options.model_dump(), model.classes_)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    with pytest.raises(SpmlError, match="weight shapes do not match"):
        type(model).load(tmp_path, model.options.model_dump(), ["a", "b"])
    with pytest.raises(SpmlError, match="expects 30 features"):
        model.predict_proba(X[:, :3])
