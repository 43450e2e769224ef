"""Live prediction of one stream: frames with timestamps -> the bundle's time grid -> gated results.

A result is ``{"label", "probabilities", "status", "t_ms", "input_fps"}``: ``label`` is a class
only when ``status`` is ``ok``; any other status (warming_up, no_person, low_visibility,
too_slow) carries ``label: None`` and means "off" to the decision layer (docs/live.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.timegrid import (
    FALLBACK_FPS,
    GAP_INTERVALS,
    Gate,
    GateConfig,
    TimeGrid,
    Timing,
    as_frame,
)

if TYPE_CHECKING:
    from spml_core.models.bundle import Manifest


def bundle_timing(manifest: Manifest) -> Timing:
    """The bundle's recorded timing, or the documented fallback for bundles that predate it (30 fps)."""
    recorded = manifest.features.timing
    if recorded is not None:
        return recorded
    return Timing.at(FALLBACK_FPS, manifest.features.window, source="fallback")


def bundle_gate(manifest: Manifest) -> GateConfig:
    """The bundle's presence and visibility gate (the defaults for bundles that predate it)."""
    return manifest.features.gate or GateConfig()


class StreamPredictor:
    """Per-stream state: the time grid, the feature ring and the gate of one bundle.

    ``push(frame, t_ms)`` places the frame at its timestamp, interpolates the bundle's grid
    instants up to it, computes their features, and classifies the newest window when the gate
    lets it through. Without ``t_ms`` frames are taken to arrive at the bundle's own rate.
    """

    def __init__(self, predictor: Any, width: int, height: int, gate: GateConfig | None = None) -> None:
        self.predictor = predictor
        spec = predictor._require_spec()
        self.timing = bundle_timing(predictor.manifest)
        self.buffer = LiveFeatureBuffer(spec, width, height)
        self.gate = Gate(gate or bundle_gate(predictor.manifest), self.buffer.window)
        self.grid = TimeGrid(self.timing.fps, GAP_INTERVALS * 1000.0 / self.timing.min_input_fps)
        self.restarts = 0

    @property
    def fps(self) -> float:
        """The grid rate (the bundle's training rate)."""
        return self.timing.fps

    def advance(self, frame: Any, t_ms: float | None = None) -> tuple[np.ndarray | None, str, float] | None:
        """Place one frame; (row of the newest window or None, status, grid t_ms), or None when no grid
        instant was reached (a repeated timestamp, or input faster than the grid)."""
        if t_ms is None:
            last = self.grid.last_t
            t_ms = 0.0 if last is None else last + self.grid.step
        step = self.grid.push(as_frame(frame), t_ms)
        if step.restarted:
            self.restarts += 1
            self.buffer.reset()
            self.gate.reset()
        if not step.frames:
            return None
        last = len(step.frames) - 1
        row = None
        for i, g in enumerate(step.frames):
            row = self.buffer.push(g, row=i == last)
            self.gate.push(g)
        status = self.gate.status(self.grid.input_fps(), self.timing.min_input_fps)
        return row, status, float(t_ms)

    def push(self, frame: Any, t_ms: float | None = None) -> dict[str, Any] | None:
        """Add one frame (33, 4) of raw keypoints (None or NaN: no person) seen at ``t_ms``.

        Returns the result of the newest window, or None when the frame completed no grid instant.
        Raises TimestampError (code bad_timestamp or out_of_order) for a frame it cannot place.
        """
        step = self.advance(frame, t_ms)
        if step is None:
            return None
        row, status, t = step
        if status == "ok" and row is not None:
            p = self.predictor
            row = p.select(row)
            result = p._result(p.predict_rows(row)[0], row)
        else:
            result = {"label": None, "probabilities": None}
        result.setdefault("status", status)  # the predictor's own "unknown" outranks ok
        result.update(t_ms=t, input_fps=self.grid.input_fps())
        return result

    def reset(self) -> None:
        """Forget buffered frames and the clock (a new source, or a restarted replay)."""
        self.grid.reset()
        self.buffer.reset()
        self.gate.reset()


def predict_stream(predictor: Any, xyzv: np.ndarray, t_ms: np.ndarray, width: int, height: int,
                   gate: GateConfig | None = None) -> list[dict[str, Any] | None]:
    """Offline: what the live path returns after each frame of (frames, 33, 4) keypoints at ``t_ms``.

    The same grid, features and gate as live, with the model run once over every ok window.
    """
    stream = StreamPredictor(predictor, width, height, gate)
    t = np.asarray(t_ms, dtype=np.float64)
    if len(t) != len(xyzv):
        raise ValueError(f"{len(xyzv)} frames but {len(t)} timestamps")
    steps = [stream.advance(f, float(ti)) for f, ti in zip(xyzv, t)]
    due = [i for i, s in enumerate(steps) if s is not None and s[1] == "ok" and s[0] is not None]
    out: list[dict[str, Any] | None] = []
    rows = predictor.select(np.stack([steps[i][0] for i in due])) if due else None
    proba = predictor.predict_rows(rows) if due else None
    where = {i: k for k, i in enumerate(due)}
    for i, s in enumerate(steps):
        if s is None:
            out.append(None)
            continue
        if i in where:
            assert proba is not None
            r = predictor._result(proba[where[i]], rows[where[i]])
        else:
            r = {"label": None, "probabilities": None}
        r.setdefault("status", s[1])
        r.update(t_ms=s[2])
        out.append(r)
    return out
