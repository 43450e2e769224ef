"""Label helpers shared by model plugins: string classes <-> integer codes, balanced class weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spml_core.errors import SpmlError


def encode_labels(y: Sequence[object] | np.ndarray, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Return (sorted class names, int64 codes); with ``classes`` given, unknown labels are an error."""
    labels = np.asarray([str(v) for v in np.asarray(y, dtype=object).ravel()], dtype=object)
    if classes is None:
        classes = sorted(set(labels.tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - lookup.keys())
    if unknown:
        raise SpmlError(f"labels {unknown[:5]} are not among the model's classes {list(classes)}")
    codes = np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=labels.size)
    return list(classes), codes


def balanced_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weights n / (k * count(class)), so every class carries the same total weight."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = codes.size / (present.sum() * counts[present])
    return per_class[codes]


def require_two_classes(classes: Sequence[str], what: str = "training data") -> None:
    """Raise a clear error when there is nothing to discriminate."""
    if len(classes) < 2:
        raise SpmlError(
            f"the {what} holds a single class ({', '.join(classes) or 'none'}); a classifier needs at least two"
        )
