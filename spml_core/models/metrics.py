"""Classification metrics (numpy only): per-class precision/recall/F1, balanced accuracy, macro-F1,
confusion matrix, and onset latency of annotated events.

Multi-class throughout; classes absent from a test fold are handled (a fold holding one class
is a normal case, not a crash). Definitions follow scikit-learn's, with zero_division=0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Counts[i, j] = rows of true class i predicted as class j (classes in the given order)."""
    lookup = {c: i for i, c in enumerate(classes)}
    t = np.fromiter((lookup[str(v)] for v in y_true), dtype=np.int64)
    p = np.fromiter((lookup[str(v)] for v in y_pred), dtype=np.int64)
    k = len(classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Macro averages run over the classes present in y_true or y_pred (as scikit-learn does);
    balanced accuracy is the mean recall over classes present in y_true.
    """
    classes = [str(c) for c in classes]
    cm = confusion_matrix(y_true, y_pred, classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": {"labels": classes, "matrix": cm.tolist()},
    }


def label_runs(frames: np.ndarray, labels: np.ndarray) -> list[tuple[str, int, int]]:
    """Maximal runs (label, first frame, last frame) of one label on consecutive frames; None/NaN ends a run.

    Consecutive means one regular step apart: the smallest frame difference (1 for a per-frame table,
    the stride for examples of a formatted table).
    """
    order = np.argsort(frames, kind="stable")
    frames = np.asarray(frames)[order]
    labels = np.asarray(labels, dtype=object)[order]
    valid = np.array([v is not None and v == v for v in labels])  # v == v is False for NaN
    runs: list[tuple[str, int, int]] = []
    if frames.size == 0:
        return runs
    as_str = np.where(valid, labels.astype(str), "")
    new_run = np.ones(frames.size, dtype=bool)
    diffs = np.diff(frames)
    step = diffs[diffs > 0].min() if (diffs > 0).any() else 1
    new_run[1:] = (as_str[1:] != as_str[:-1]) | (diffs != step) | ~valid[:-1]
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:] - 1, frames.size - 1)
    for s, e in zip(starts, ends):
        if valid[s]:
            runs.append((str(as_str[s]), int(frames[s]), int(frames[e])))
    return runs


def onset_latency(
    frame_table: dict[str, tuple[np.ndarray, np.ndarray]],
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    fps: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Frames from each annotated onset to the first correct prediction inside that event.

    ``frame_table[video] = (frames, labels)`` holds the per-frame annotation; ``predictions[video]
    = (end_frames, predicted labels)`` the (out-of-fold) prediction made at each example's last
    frame. An event is a run of one label; it is *detected* when some prediction made within the
    run is its label, *missed* when predictions were made but none was right, and not counted when
    no example ends inside it (shorter than the stride).
    """
    per_class: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    for video, (frames, labels) in frame_table.items():
        if video not in predictions:
            continue
        p_end, p_lab = predictions[video]
        order = np.argsort(p_end, kind="stable")
        p_end, p_lab = np.asarray(p_end)[order], np.asarray(p_lab, dtype=object)[order].astype(str)
        for label, first, last in label_runs(frames, labels):
            inside = (p_end >= first) & (p_end <= last)
            if not inside.any():
                continue
            hits = np.flatnonzero(inside & (p_lab == label))
            per_class.setdefault(label, [])
            missed.setdefault(label, 0)
            if hits.size:
                lat = int(p_end[hits[0]] - first)
                per_class[label].append(lat)
                events.append({"video": video, "label": label, "onset": first, "end": last, "latency_frames": lat})
            else:
                missed[label] += 1
                events.append({"video": video, "label": label, "onset": first, "end": last, "latency_frames": None})
    summary: dict[str, Any] = {}
    rate = np.median(list(fps.values())) if fps else None
    for label in sorted(per_class):
        lats = np.asarray(per_class[label], dtype=np.float64)
        n_events = lats.size + missed[label]
        entry: dict[str, Any] = {
            "events": int(n_events), "detected": int(lats.size), "missed": int(missed[label]),
            "median_frames": float(np.median(lats)) if lats.size else None,
            "mean_frames": float(lats.mean()) if lats.size else None,
            "max_frames": float(lats.max()) if lats.size else None,
        }
        if rate and lats.size:
            entry["median_ms"] = float(np.median(lats) / rate * 1000.0)
        summary[label] = entry
    return {"per_class": summary, "events": events}
