"""The PyTorch network: a recurrent encoder (LSTM or GRU) over frames and a linear head.

Imported only by model.py's methods, because importing torch costs about a second.
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceClassifier(nn.Module):
    """(batch, frames, features) -> (batch, classes) logits from the encoder's last state."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, n_classes: int,
        cell: str = "lstm", dropout: float = 0.0, bidirectional: bool = False,
    ) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size
        self.rnn = rnn(
            input_size, hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of sequences."""
        out, _ = self.rnn(x)
        if self.bidirectional:
            # The backward direction has read the whole window at time step 0.
            last = torch.cat([out[:, -1, : self.hidden_size], out[:, 0, self.hidden_size :]], dim=1)
        else:
            last = out[:, -1]
        return self.head(self.dropout(last))


def pick_device(choice: str) -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU; an explicit choice that is unavailable is an error."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if choice == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (choice == "cuda" and not cuda) or (choice == "mps" and not mps):
        from spml_core.errors import SpmlError

        raise SpmlError(f"device {choice!r} was requested but is not available here (use device: auto or cpu)")
    return torch.device(choice)
