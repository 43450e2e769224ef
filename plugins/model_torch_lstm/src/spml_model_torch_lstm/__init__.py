"""spml model plugin: LSTM/GRU sequence classifier in PyTorch (weights in safetensors, never pickled)."""

__version__ = "0.1.0"
