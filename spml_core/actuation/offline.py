"""Decisions over a recorded prediction table: what an actuator would have done, frame by frame."""

from __future__ import annotations

from typing import Any

import numpy as np

from spml_core.actuation.decisions import DecisionConfig, DecisionEngine


def decision_column(config: DecisionConfig, table: Any) -> list[str | None]:
    """Per frame, the class whose action is on after that frame (None: off), replaying the decision engine.

    Frames without a label (warming up, no person) feed the engine no class, so a bout ends there
    (fail safe), exactly as a live stream without a person would.
    """
    engine = DecisionEngine(config, {c: b"on" for c in config.actions}, b"off", "predict")
    classes = [c[2:] for c in table.columns if c.startswith("p_")]
    proba = table[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
    times = table["timestamp_ms"].to_numpy(dtype=np.float64)
    if not np.isfinite(times).all():
        times = table["frame"].to_numpy(dtype=np.float64) * (1000.0 / 30.0)
    labels = table["label"].to_numpy(dtype=object)
    frames = table["frame"].to_numpy()
    out: list[str | None] = []
    on: str | None = None
    for i in range(len(table)):  # the engine is a state machine over time: one step per frame
        label = labels[i] if isinstance(labels[i], str) else None
        probs = dict(zip(classes, proba[i])) if label is not None else None
        for d in engine.update(float(times[i]), label, probs, int(frames[i])):
            on = d.label if d.action == "on" else (None if d.action == "off" else on)
        out.append(on)
    return out
