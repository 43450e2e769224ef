"""The xgboost and random_forest models: learning, class weights, grouped early stopping, safe save/load."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from spml_core.errors import SpmlError
from spml_core.registry import Registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().load()


def three_class_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0.7, "jump", np.where(X[:, 2] > 0, "step", "stand")).astype(object)
    X[::11, 5] = np.nan  # frames without a person give NaN features
    groups = np.repeat(np.arange(n // 50), 50).astype(str)
    return X, y, groups


def test_both_models_are_registered(registry: Registry) -> None:
    assert {"xgboost", "random_forest"} <= set(registry.names("model"))
    assert registry.provider("model", "xgboost").distribution == "spml-model-xgboost"


@pytest.mark.parametrize("name", ["xgboost", "random_forest"])
def test_learns_multiclass_and_round_trips_through_its_own_format(registry, tmp_path, name) -> None:
    X, y, groups = three_class_data()
    model = registry.create("model", name, {"n_estimators": 60})
    model.fit(X[:400], y[:400], groups=groups[:400])
    assert model.classes_ == ["jump", "stand", "step"]
    proba = model.predict_proba(X[400:])
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = (model.predict(X[400:]) == y[400:]).mean()
    assert accuracy > 0.85, accuracy

    files = model.save(tmp_path)
    assert files[0] == "model.ubj"
    head = (tmp_path / "model.ubj").read_bytes()[:2]
    assert head[:1] != b"\x80"  # not a pickle
    loaded = type(model).load(tmp_path, model.options.model_dump(), model.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X[400:]), proba)


def test_binary_json_format_is_readable_json(registry, tmp_path) -> None:
    X, y, _ = three_class_data()
    yb = np.where(y == "jump", "jump", "other").astype(object)
    model = registry.create("model", "xgboost", {"n_estimators": 30, "format": "json"}).fit(X, yb)
    assert model.predict_proba(X[:5]).shape == (5, 2)
    model.save(tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert "learner" in doc
    again = type(model).load(tmp_path, model.options.model_dump(), model.classes_)
    np.testing.assert_array_equal(again.predict(X[:50]), model.predict(X[:50]))


def test_early_stopping_holds_out_whole_groups(registry) -> None:
    X, y, groups = three_class_data()
    model = registry.create("model", "xgboost", {"n_estimators": 400, "early_stopping_rounds": 5})
    model.fit(X, y, groups=groups)
    info = model.training_summary()
    # Validation rows are whole groups of 50 rows, and early stopping ended before 400 rounds.
    assert info["validation_rows"] % 50 == 0 and info["validation_rows"] > 0
    assert info["best_rounds"] < 400 and info["rounds"] == info["best_rounds"]


def test_balanced_class_weight_raises_minority_recall(registry) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 5)).astype(np.float32)
    y = np.where(X[:, 0] + 0.8 * rng.normal(size=2000) > 1.9, "rare", "common").astype(object)
    assert (y == "rare").mean() < 0.1
    recalls = {}
    for weight in ("none", "balanced"):
        m = registry.create("model", "xgboost", {"n_estimators": 50, "class_weight": weight,
                                                  "early_stopping_rounds": None})
        m.fit(X[:1500], y[:1500])
        rare = y[1500:] == "rare"
        recalls[weight] = (m.predict(X[1500:])[rare] == "rare").mean()
    assert recalls["balanced"] > recalls["none"] + 0.15, recalls


def test_clear_errors(registry, tmp_path) -> None:
    X, y, _ = three_class_data(100)
    with pytest.raises(SpmlError, match="single class"):
        registry.create("model", "xgboost", {}).fit(X, np.full(100, "a", dtype=object))
    model = registry.create("model", "xgboost", {"n_estimators": 5}).fit(X, y)
    with pytest.raises(SpmlError, match="expects 20 features"):
        model.predict_proba(X[:, :3])
    model.save(tmp_path)
    with pytest.raises(SpmlError, match="output classes"):
        type(model).load(tmp_path, model.options.model_dump(), ["a", "b"])
    (tmp_path / "model.ubj").write_bytes(b"not a model")
    with pytest.raises(SpmlError, match="not a valid XGBoost model"):
        type(model).load(tmp_path, model.options.model_dump(), model.classes_)
    with pytest.raises(Exception, match="max_depth"):
        registry.create("model", "xgboost", {"max_depth": 0})


def test_plugin_import_does_not_import_xgboost() -> None:
    code = ("import sys, spml_model_xgboost.plugin, spml_model_xgboost.model; "
            "print('xgboost' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
