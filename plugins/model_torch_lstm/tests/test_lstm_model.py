"""The lstm model: learns a temporal pattern, seeds reproduce, early stopping, safetensors save/load."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from spml_core.errors import SpmlError
from spml_core.registry import Registry

SMALL = {"hidden_size": 16, "num_layers": 1, "max_epochs": 25, "patience": 5, "device": "cpu"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().load()


def rising_or_falling(n: int = 240, frames: int = 12, feats: int = 6, seed: int = 0):
    """Windows whose class is the direction of a trend in feature 0: invisible in any single frame."""
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(["rising", "falling"], dtype=object), size=n)
    slope = np.where(y == "rising", 1.0, -1.0)[:, None] * np.linspace(-1, 1, frames)[None, :]
    X = rng.normal(scale=0.3, size=(n, frames, feats)).astype(np.float32)
    X[:, :, 0] += slope + rng.normal(scale=1.0, size=(n, 1))  # random offset hides the level
    X[::9, 3, :] = np.nan  # a frame without a person
    groups = np.repeat(np.arange(n // 20), 20).astype(str)
    return X, y, groups


def test_registered_with_sequence_input(registry) -> None:
    cls = registry.get("model", "lstm")
    assert cls.input_rank == 3
    assert registry.provider("model", "lstm").distribution == "spml-model-torch-lstm"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_learns_a_temporal_pattern_and_round_trips(registry, tmp_path, cell) -> None:
    X, y, groups = rising_or_falling()
    model = registry.create("model", "lstm", {**SMALL, "cell": cell})
    model.show_progress = False
    model.fit(X[:180], y[:180], groups=groups[:180])
    assert model.classes_ == ["falling", "rising"]
    accuracy = (model.predict(X[180:]) == y[180:]).mean()
    assert accuracy > 0.85, accuracy
    info = model.training_summary()
    assert info["device"] == "cpu" and info["validation_rows"] % 20 == 0 and 1 <= info["best_epoch"] <= 25

    files = model.save(tmp_path)
    assert files == ["weights.safetensors", "lstm.json"]
    assert (tmp_path / "weights.safetensors").read_bytes()[:1] != b"\x80"  # safetensors, not a pickle
    loaded = type(model).load(tmp_path, model.options.model_dump(), model.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X[180:]), model.predict_proba(X[180:]), rtol=1e-6, atol=1e-7)


def test_same_seed_same_model_and_flattened_input(registry) -> None:
    X, y, groups = rising_or_falling(120)
    opts = {**SMALL, "max_epochs": 4, "patience": None, "window": X.shape[1]}
    a = registry.create("model", "lstm", opts)
    b = registry.create("model", "lstm", opts)
    a.show_progress = b.show_progress = False
    a.fit(X, y, groups=groups)
    b.fit(X.reshape(len(X), -1), y, groups=groups)  # frame-major flattened windows
    np.testing.assert_array_equal(a.predict_proba(X[:10]), b.predict_proba(X[:10].reshape(10, -1)))
    c = registry.create("model", "lstm", {**opts, "seed": 1})
    c.show_progress = False
    c.fit(X, y, groups=groups)
    assert not np.array_equal(a.predict_proba(X[:10]), c.predict_proba(X[:10]))


def test_clear_errors(registry, tmp_path) -> None:
    X, y, _ = rising_or_falling(60)
    model = registry.create("model", "lstm", {**SMALL, "max_epochs": 2})
    model.show_progress = False
    with pytest.raises(SpmlError, match="set the 'window' option"):
        model.fit(X.reshape(60, -1)[:, :-1], y)
    model.fit(X, y)
    with pytest.raises(SpmlError, match="windows of 12 frames x 6 features"):
        model.predict_proba(X[:, :5])
    model.save(tmp_path)
    other = {**model.options.model_dump(), "hidden_size": 8}
    with pytest.raises(SpmlError, match="do not match the model options"):
        type(model).load(tmp_path, other, model.classes_)
    (tmp_path / "weights.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SpmlError, match="not a readable safetensors file"):
        type(model).load(tmp_path, model.options.model_dump(), model.classes_)


def test_unavailable_device_is_a_clear_error(registry) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    X, y, _ = rising_or_falling(40)
    model = registry.create("model", "lstm", {**SMALL, "device": "cuda"})
    with pytest.raises(SpmlError, match="'cuda' was requested but is not available"):
        model.fit(X, y)


def test_plugin_import_does_not_import_torch() -> None:
    code = "import sys, spml_model_torch_lstm.plugin, spml_model_torch_lstm.model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
