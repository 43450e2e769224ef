"""TorchLSTMModel ("lstm"): a recurrent sequence classifier on windows of per-frame features.

X is 3-D, (examples, frames, features per frame), as spml's training code passes it for models
with ``input_rank = 3``. A 2-D X of flattened windows (frame-major: all features of frame 1, then
frame 2, ...) is accepted when the ``window`` option (or the window seen in fit) gives the frame count.
Features are standardised with the training rows' mean and standard deviation; missing values
(frames without a person) become 0 after standardisation, i.e. the training mean.
Weights are saved with safetensors (a tensor-only format: loading cannot run code).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core import (
    balanced_weights,
    encode_labels,
    require_two_classes,
    validation_split,
)
from spml_core.components import Model, Options
from spml_core.errors import SpmlError

WEIGHTS_FILE = "weights.safetensors"
FITTED_FILE = "lstm.json"
SMALL_BATCH = 8


class LSTMOptions(Options):
    """Options of the recurrent classifier; small defaults keep CPU training to seconds."""

    cell: Literal["lstm", "gru"] = Field("lstm", description="Recurrent cell type")
    hidden_size: int = Field(64, ge=1, le=4096, description="Units per recurrent layer")
    num_layers: int = Field(2, ge=1, le=8, description="Stacked recurrent layers")
    bidirectional: bool = Field(False, description="Read each window in both directions")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout between layers and before the head")
    max_epochs: int = Field(60, ge=1, le=10_000, description="Upper bound on training epochs")
    patience: int | None = Field(8, ge=1, description="Early stopping: epochs without validation improvement (None: off)")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="Rows (whole groups when given) held out for early stopping")
    batch_size: int = Field(64, ge=1, description="Windows per optimisation step")
    learning_rate: float = Field(5e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    class_weight: Literal["balanced", "none"] = Field("balanced", description="balanced: weight the loss so every class counts equally")
    seed: int = Field(0, description="Seed for initialisation, shuffling and the validation split")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto: CUDA, then MPS, then CPU")
    window: int | None = Field(None, ge=1, description="Frames per window, needed only when X is given flattened (2-D)")


class TorchLSTMModel(Model):
    """LSTM (or GRU) sequence classifier on (frames, features) windows; early stopping on a grouped split."""

    name = "lstm"
    description = "PyTorch LSTM/GRU on windows of per-frame features; CUDA/MPS when present; safetensors weights"
    Options: ClassVar[type[Options]] = LSTMOptions
    input_rank: ClassVar[int] = 3
    search_space: ClassVar[dict[str, list[Any]]] = {"hidden_size": [32, 64], "num_layers": [1, 2]}

    net_: Any
    mean_: np.ndarray
    std_: np.ndarray
    n_frames_: int
    n_features_: int
    fit_info_: dict[str, Any]

    # -- shapes ------------------------------------------------------------------------------
    def _as_windows(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            frames = self.options.window or getattr(self, "n_frames_", None)
            if not frames or X.shape[1] % frames:
                raise SpmlError(
                    f"lstm got flattened windows with {X.shape[1]} columns; set the 'window' option to the "
                    "frames per window (columns must be a multiple of it) or pass (n, frames, features)"
                )
            X = X.reshape(X.shape[0], frames, X.shape[1] // frames)
        if X.ndim != 3:
            raise SpmlError(f"lstm expects windows shaped (n, frames, features), got {X.shape}")
        return X

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.std_
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)

    # -- training ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Any = None) -> TorchLSTMModel:
        """Train with Adam; keeps the weights of the best validation epoch (early stopping)."""
        import torch

        from spml_core import progress_bar
        from spml_model_torch_lstm.network import SequenceClassifier, pick_device

        X = self._as_windows(X)
        classes, codes = encode_labels(y)
        require_two_classes(classes)
        if len(codes) != X.shape[0]:
            raise SpmlError(f"X has {X.shape[0]} windows but y has {len(codes)} labels")
        o = self.options
        n, frames, feats = X.shape
        split = validation_split(n, groups, o.validation_fraction, o.seed) if o.patience else None
        tr, va = split if split is not None else (np.arange(n), np.arange(0))

        flat = X[tr].reshape(-1, feats)
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(np.isfinite(flat), flat, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(flat), flat, np.nan), axis=0)
        self.mean_ = np.nan_to_num(mean, nan=0.0).astype(np.float32)
        self.std_ = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0).astype(np.float32)
        Z = self._standardise(X)

        torch.manual_seed(o.seed)
        device = pick_device(o.device)
        net = SequenceClassifier(feats, o.hidden_size, o.num_layers, len(classes), o.cell, o.dropout,
                                 o.bidirectional).to(device)
        weight = None
        if o.class_weight == "balanced":
            per_row = balanced_weights(codes[tr], len(classes))
            per_class = np.zeros(len(classes), dtype=np.float32)
            per_class[codes[tr]] = per_row
            weight = torch.tensor(per_class, device=device)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        opt = torch.optim.Adam(net.parameters(), lr=o.learning_rate, weight_decay=o.weight_decay)
        Xt = torch.from_numpy(Z).to(device)
        yt = torch.from_numpy(codes).to(device)
        gen = torch.Generator().manual_seed(o.seed)

        best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
        epochs_run = 0
        with progress_bar(o.max_epochs, desc=f"{self.name} epochs", unit="epoch",
                          disable=not self.show_progress) as bar:
            for epoch in range(1, o.max_epochs + 1):
                net.train()
                order = torch.from_numpy(tr)[torch.randperm(tr.size, generator=gen)]
                total = 0.0
                for start in range(0, order.numel(), o.batch_size):
                    idx = order[start : start + o.batch_size].to(device)
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(net(Xt[idx]), yt[idx])
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    total += float(loss.detach()) * idx.numel()
                epochs_run = epoch
                postfix = {"train_loss": f"{total / max(tr.size, 1):.4f}"}
                if va.size:
                    net.eval()
                    with torch.inference_mode():
                        vidx = torch.from_numpy(va).to(device)
                        val_loss = float(loss_fn(net(Xt[vidx]), yt[vidx]))
                    postfix["val_loss"] = f"{val_loss:.4f}"
                    if val_loss < best_loss - 1e-6:
                        best_loss, best_epoch, stale = val_loss, epoch, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        stale += 1
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if va.size and o.patience and stale >= o.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.net_, self.device_ = net, device
        self.classes_, self.n_frames_, self.n_features_ = classes, frames, feats
        self.fit_info_ = {"rows": int(n), "epochs_run": epochs_run, "device": str(device),
                          "validation_rows": int(va.size)}
        if va.size:
            self.fit_info_ |= {"best_epoch": best_epoch, "best_validation_loss": best_loss}
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax probabilities, columns in the order of classes_."""
        import torch

        X = self._as_windows(X)
        if X.shape[1:] != (self.n_frames_, self.n_features_):
            raise SpmlError(
                f"model expects windows of {self.n_frames_} frames x {self.n_features_} features, got "
                f"{X.shape[1]} x {X.shape[2]}"
            )
        Z = torch.from_numpy(self._standardise(X)).to(self.device_)
        # A few windows (the live path) run faster and steadier on one thread than on a pool
        # whose workers spin up per call; batches keep every thread.
        threads = torch.get_num_threads()
        few = len(X) <= SMALL_BATCH and threads > 1 and self.device_.type == "cpu"
        if few:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                p = torch.softmax(self.net_(Z), dim=1)
        finally:
            if few:
                torch.set_num_threads(threads)
        return p.cpu().numpy().astype(np.float64)

    def training_summary(self) -> dict[str, Any]:
        """Epochs run, best epoch and validation loss of the last fit."""
        return dict(getattr(self, "fit_info_", {}))

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> list[str]:
        """Write weights and standardisation statistics as safetensors, and fitted shapes as JSON."""
        import torch
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        tensors["norm.mean"] = torch.from_numpy(self.mean_.copy())
        tensors["norm.std"] = torch.from_numpy(self.std_.copy())
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "spml-lstm/1"})
        fitted = {"n_frames": self.n_frames_, "n_features": self.n_features_, "n_classes": len(self.classes_),
                  "fit": self.training_summary()}
        (directory / FITTED_FILE).write_text(json.dumps(fitted, indent=2), encoding="utf-8")
        return [WEIGHTS_FILE, FITTED_FILE]

    @classmethod
    def load(cls, directory: Path, options: Mapping[str, Any], classes: list[str]) -> TorchLSTMModel:
        """Rebuild the network from options + fitted shapes and load safetensors weights (strict)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from spml_model_torch_lstm.network import SequenceClassifier, pick_device

        directory = Path(directory)
        model = cls(options)
        try:
            fitted = json.loads((directory / FITTED_FILE).read_text(encoding="utf-8"))
            frames, feats, n_classes = int(fitted["n_frames"]), int(fitted["n_features"]), int(fitted["n_classes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpmlError(f"{directory / FITTED_FILE}: missing or invalid ({exc})") from None
        if n_classes != len(classes):
            raise SpmlError(f"{directory / FITTED_FILE}: {n_classes} classes, manifest lists {len(classes)}")
        try:
            tensors = load_file(str(directory / WEIGHTS_FILE), device="cpu")
        except (OSError, SafetensorError) as exc:
            raise SpmlError(f"{directory / WEIGHTS_FILE}: not a readable safetensors file ({exc})") from None
        o = model.options
        net = SequenceClassifier(feats, o.hidden_size, o.num_layers, n_classes, o.cell, o.dropout, o.bidirectional)
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        try:
            net.load_state_dict(state, strict=True)
            mean, std = tensors["norm.mean"].numpy(), tensors["norm.std"].numpy()
        except (RuntimeError, KeyError) as exc:
            raise SpmlError(f"{directory / WEIGHTS_FILE}: weights do not match the model options ({exc})") from None
        if mean.shape != (feats,) or std.shape != (feats,):
            raise SpmlError(f"{directory / WEIGHTS_FILE}: standardisation statistics do not match {feats} features")
        device = pick_device(o.device)
        model.net_, model.device_ = net.to(device).eval(), device
        model.mean_, model.std_ = mean.astype(np.float32), std.astype(np.float32)
        model.classes_, model.n_frames_, model.n_features_ = list(classes), frames, feats
        model.fit_info_ = dict(fitted.get("fit") or {})
        return model
