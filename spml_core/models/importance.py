"""Feature importances: permutation importance on the held-out folds (any model) and native gain (tree models).

Permutation importance is measured where it is honest: each cross-validation fold's model scores
its own test rows, then again with one feature shuffled across those rows; the importance is the
mean drop in balanced accuracy over folds. A flattened window has one column per frame of each
feature, so a feature's columns are shuffled together (all its frames, one permutation), which
costs one prediction per feature instead of one per column. Native importances (XGBoost's total
gain) come from the final model, one per column, named ``<feature> @ t-<frames before the last>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from spml_core.models.metrics import classification_metrics

_FRAME_COLUMN = re.compile(r"^frame-(\d+)-(.+)$")
TOP_N = 20


def readable_name(column: str, window: int) -> str:
    """``frame-8-left_knee_angle`` of a 10-frame window -> ``left_knee_angle @ t-2``."""
    m = _FRAME_COLUMN.match(column)
    if not m:
        return column
    return f"{m.group(2)} @ t-{max(window - int(m.group(1)), 0)}"


def column_groups(columns: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """Feature names and, for each, the indices of its columns (every frame of a flattened window)."""
    order: dict[str, list[int]] = {}
    for i, c in enumerate(columns):
        m = _FRAME_COLUMN.match(c)
        order.setdefault(m.group(2) if m else c, []).append(i)
    return list(order), [np.asarray(v, dtype=np.int64) for v in order.values()]


class PermutationImportance:
    """Collects, fold by fold, the drop in balanced accuracy when each feature is shuffled."""

    def __init__(self, columns: list[str], seed: int = 0, repeats: int = 1) -> None:
        self.names, self.groups = column_groups(columns)
        self.rng = np.random.default_rng(seed)
        self.repeats = repeats
        self.drops: list[np.ndarray] = []

    def __call__(self, predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
                 classes: list[str]) -> None:
        """Score one fold's fitted model (``predict``: 2-D rows -> probabilities) on its test rows."""
        if X.shape[0] < 2:
            return
        cls = np.asarray(classes, dtype=object)

        def score(rows: np.ndarray) -> float:
            return classification_metrics(y, cls[predict(rows).argmax(axis=1)], classes)["balanced_accuracy"]

        base = score(X)
        drop = np.zeros(len(self.groups))
        for _ in range(self.repeats):
            perm = self.rng.permutation(X.shape[0])
            for g, cols in enumerate(self.groups):
                shuffled = X.copy()
                shuffled[:, cols] = X[perm][:, cols]
                drop[g] += base - score(shuffled)
        self.drops.append(drop / self.repeats)

    def report(self) -> dict[str, Any]:
        """Features ranked by mean drop over folds (with its spread)."""
        if not self.drops:
            return {"method": "permutation", "features": []}
        d = np.vstack(self.drops)
        mean, std = d.mean(axis=0), d.std(axis=0)
        order = np.argsort(-mean, kind="stable")
        return {
            "method": "permutation on held-out folds: mean drop in balanced accuracy when the feature "
                      "(all frames of the window together) is shuffled across the fold's test rows",
            "folds": int(d.shape[0]),
            "features": [{"feature": self.names[i], "importance": float(mean[i]), "std": float(std[i])}
                         for i in order],
        }


def native_importance(model: Any, columns: list[str], window: int) -> dict[str, Any] | None:
    """The model's own importances per column (e.g. XGBoost total gain), normalised to sum 1; None if it has none."""
    getter = getattr(model, "feature_importances", None)
    values = getter() if callable(getter) else None
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    if values.size != len(columns):
        return None
    total = values.sum()
    if total > 0:
        values = values / total
    order = np.argsort(-values, kind="stable")
    return {
        "method": str(getattr(model, "importance_kind", "native")),
        "features": [{"feature": readable_name(columns[i], window), "column": columns[i],
                      "importance": float(values[i])} for i in order if values[i] > 0][:200],
    }
