"""Hook implementations: cheap imports only; torch loads when a model is fitted or loaded."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_models() -> list[type]:
    """The LSTM/GRU sequence classifier."""
    from spml_model_torch_lstm.model import TorchLSTMModel

    return [TorchLSTMModel]
