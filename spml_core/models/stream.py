"""Live prediction of one stream: frames with timestamps -> the bundle's time grid -> gated results.

A result is ``{"label", "probabilities", "status", "t_ms", "input_fps"}``: ``label`` is a class
only when ``status`` is ``ok``; any other status (warming_up, no_person, low_visibility,
too_slow) carries ``label: None`` and means "off" to the decision layer (docs/live.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import TimestampError
from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.live_batch import current_rows, push_frames
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

MODEL_BATCH = 16


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
        frames, t, present = self._place(frame, t_ms)
        if not frames:
            return None
        last = len(frames) - 1
        row = None
        for i, g in enumerate(frames):
            row = self.buffer.push(g, row=i == last)
            self.gate.push(g, present[i])
        status = self.gate.status(self.grid.input_fps(), self.timing.min_input_fps)
        return row, status, t

    def push(self, frame: Any, t_ms: float | None = None) -> dict[str, Any] | None:
        """Add one frame (33, 4) of raw keypoints (None or NaN: no person) seen at ``t_ms``.

        Returns the result of the newest window, or None when the frame completed no grid instant.
        Raises TimestampError (code bad_timestamp or out_of_order) for a frame it cannot place.
        """
        result = push_many([(self, frame, t_ms)])[0]
        if isinstance(result, TimestampError):
            raise result
        return result

    @staticmethod
    def push_many(pushes: Sequence[tuple[StreamPredictor, Any, float | None]]) -> list[Any]:
        """push() of many streams at once, computed together: see the module function push_many."""
        return push_many(pushes)

    def _place(self, frame: Any, t_ms: float | None) -> tuple[list[np.ndarray], float, list[bool]]:
        """The grid frames one real frame completes (the clock restarted after a gap), its t_ms, and whether
        each grid frame shows a person."""
        if t_ms is None:
            last = self.grid.last_t
            t_ms = 0.0 if last is None else last + self.grid.step
        step = self.grid.push(as_frame(frame), t_ms)
        if step.restarted:
            self.restarts += 1
            self.buffer.reset()
            self.gate.reset()
        return step.frames, float(t_ms), step.present

    def reset(self) -> None:
        """Forget buffered frames and the clock (a new source, or a restarted replay)."""
        self.grid.reset()
        self.buffer.reset()
        self.gate.reset()


def push_many(pushes: Sequence[tuple[StreamPredictor, Any, float | None]]) -> list[dict[str, Any] | None | TimestampError]:
    """``stream.push(frame, t_ms)`` for each triple, computed together: what pushing each in turn returns.

    The live server's batch: the frames that arrived for many streams in one turn of its loop. Features
    and models run once per feature spec and bundle for all of them (live_batch.py), which costs a
    fraction of as many single pushes. A frame that cannot be placed gets its TimestampError in its
    slot; the others are unaffected. A stream that appears twice is pushed in order.
    """
    out: list[dict[str, Any] | None | TimestampError] = [None] * len(pushes)
    start, seen = 0, set()
    for i, (stream, _, _) in enumerate(pushes):
        if id(stream) in seen:  # its second frame needs the first one's window: finish those first
            _push_distinct(pushes, start, i, out)
            start, seen = i, set()
        seen.add(id(stream))
    _push_distinct(pushes, start, len(pushes), out)
    return out


def _push_distinct(pushes: Sequence[tuple[StreamPredictor, Any, float | None]], start: int, stop: int,
                   out: list[Any]) -> None:
    frames: list[tuple[LiveFeatureBuffer, np.ndarray]] = []
    placed: list[tuple[int, StreamPredictor, str, float, float | None]] = []
    for i in range(start, stop):
        stream, frame, t_ms = pushes[i]
        try:
            grid_frames, t, present = stream._place(frame, t_ms)
        except TimestampError as exc:
            out[i] = exc
            continue
        if not grid_frames:
            continue
        for k, g in enumerate(grid_frames):
            frames.append((stream.buffer, g))
            stream.gate.push(g, present[k])
        fps = stream.grid.input_fps()
        placed.append((i, stream, stream.gate.status(fps, stream.timing.min_input_fps), t, fps))
    push_frames(frames)
    due = [(i, stream) for i, stream, status, _, _ in placed if status == "ok" and stream.buffer.full]
    results: dict[int, dict[str, Any]] = {}
    by_model: dict[int, list[tuple[int, StreamPredictor, np.ndarray]]] = {}
    for (i, stream), row in zip(due, current_rows([s.buffer for _, s in due])):
        by_model.setdefault(id(stream.predictor), []).append((i, stream, row))
    for members in by_model.values():
        p = members[0][1].predictor
        # At most MODEL_BATCH rows per call: the same arithmetic as one row (model_xgboost's tree walk).
        for lo in range(0, len(members), MODEL_BATCH):
            chunk = members[lo:lo + MODEL_BATCH]
            rows = p.select(np.array([row for _, _, row in chunk]))
            for (i, _, _), result in zip(chunk, p._results(p.predict_rows(rows), rows)):
                results[i] = result
    for i, _, status, t, fps in placed:
        result = results.get(i) or {"label": None, "probabilities": None}
        result.setdefault("status", status)  # the predictor's own "unknown" outranks ok
        result.update(t_ms=t, input_fps=fps)
        out[i] = result


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
