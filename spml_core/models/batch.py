"""Batch prediction of a whole keypoint sequence: a row per frame, and the bouts of each class.

Every frame gets what the live path returns after that frame was pushed at its timestamp
(``Predictor.predict_stream``: the bundle's time grid, features and presence gate), so offline
labels are exactly the ones a live session would have shown. The status is passed through (ok,
warming_up, no_person, low_visibility, too_slow, unknown); only ``ok`` frames carry a label. A
frame that completed no grid instant (input faster than the bundle's rate) repeats the previous
frame's result, as the live display would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.keypoints.sequence import PoseSequence

OK, WARMING_UP, NO_PERSON = "ok", "warming_up", "no_person"
BOUT_COLUMNS = ["class", "start_frame", "end_frame", "start_ms", "end_ms", "frames", "mean_probability"]


def prob_column(cls: str) -> str:
    """The per-frame table's probability column of a class: 'p_<class>'."""
    return f"p_{cls}"


def predict_sequence(
    predictor: Any, seq: PoseSequence, decide: Callable[[pd.DataFrame], Any] | None = None,
    width: int | None = None, height: int | None = None,
) -> pd.DataFrame:
    """Per-frame predictions of a PoseSequence: frame, timestamp_ms, label, status, p_<class> (+ decision)."""
    import pandas as pd

    predictor._require_spec()
    w = width or seq.width or None
    h = height or seq.height or None
    if not (w and h) and not predictor.manifest.features.frame_size:
        raise SpmlError(f"{seq.name or 'keypoints'}: frame size unknown (the keypoints record none and the "
                        "bundle has no frame_size); give width and height")
    w, h = (w, h) if (w and h) else predictor.manifest.features.frame_size
    n, k = seq.n_frames, len(predictor.classes)
    t_ms = np.asarray(seq.timestamps_ms, dtype=np.float64)
    if not np.isfinite(t_ms).all():  # no timestamps recorded: frames at the nominal rate
        t_ms = seq.frame_index.astype(np.float64) * (1000.0 / (seq.fps or 30.0))
    results = predictor.predict_stream(seq.xyzv, t_ms, int(w), int(h))
    proba = np.full((n, k), np.nan, dtype=np.float32)
    status = np.full(n, WARMING_UP, dtype=object)
    labels = np.full(n, None, dtype=object)
    last: dict[str, Any] | None = None
    for i, r in enumerate(results):  # unpacking per-frame dicts; the model already ran once for all
        r = r if r is not None else last
        last = r
        if r is None:
            continue
        status[i] = r["status"]
        labels[i] = r["label"] if r["status"] == OK else None
        if r["probabilities"] is not None:
            proba[i] = [r["probabilities"][c] for c in predictor.classes]
    table = pd.DataFrame({"frame": seq.frame_index.astype(np.int64), "timestamp_ms": seq.timestamps_ms,
                          "label": labels, "status": status})
    for j, c in enumerate(predictor.classes):
        table[prob_column(c)] = proba[:, j]
    if decide is not None:
        table["decision"] = decide(table)
    return table


def bouts(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Runs of consecutive frames with one label: class, start/end frame and ms, frames, mean probability."""
    import pandas as pd

    labels = table["label"].to_numpy(dtype=object)
    n = len(labels)
    if n == 0:
        return pd.DataFrame(columns=BOUT_COLUMNS)
    codes = np.full(n, -1, dtype=np.int64)
    index = {c: i for i, c in enumerate(classes)}
    known = table["label"].notna().to_numpy()
    codes[known] = [index[lab] for lab in labels[known]]
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n])) - 1
    keep = codes[starts] >= 0
    starts, ends = starts[keep], ends[keep]
    frames = table["frame"].to_numpy()
    times = table["timestamp_ms"].to_numpy(dtype=np.float64)
    cls = [classes[c] for c in codes[starts]]
    proba = table[[prob_column(c) for c in classes]].to_numpy(dtype=np.float64)
    own = proba[np.arange(n), np.maximum(codes, 0)]
    sums = np.add.reduceat(np.where(codes >= 0, own, 0.0), starts) if len(starts) else np.zeros(0)
    lengths = ends - starts + 1
    return pd.DataFrame({
        "class": cls, "start_frame": frames[starts].astype(np.int64), "end_frame": frames[ends].astype(np.int64),
        "start_ms": times[starts], "end_ms": times[ends], "frames": lengths.astype(np.int64),
        "mean_probability": sums / np.maximum(lengths, 1),
    }, columns=BOUT_COLUMNS)


def bout_summary(bout_table: pd.DataFrame, classes: list[str]) -> dict[str, dict[str, float]]:
    """Per class: number of bouts, frames and seconds covered, mean bout length in frames."""
    out: dict[str, dict[str, float]] = {}
    for c in classes:
        b = bout_table[bout_table["class"] == c]
        seconds = float(((b["end_ms"] - b["start_ms"]).clip(lower=0)).sum() / 1000.0) if len(b) else 0.0
        out[c] = {"bouts": int(len(b)), "frames": int(b["frames"].sum()) if len(b) else 0,
                  "seconds": round(seconds, 3),
                  "mean_bout_frames": round(float(b["frames"].mean()), 2) if len(b) else 0.0}
    return out
