"""The incremental live path: each frame's features computed once and kept in a ring, so a live row equals the offline row of the same frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from spml_core.features.geometry import pixel_points
from spml_core.features.visibility import LiveMask, policy_of
from spml_core.keypoints.skeleton import N_LANDMARKS

if TYPE_CHECKING:
    from spml_core.components import FeatureExtractor
    from spml_core.features.spec import FeaturePipelineSpec
from spml_core.features.compute import _finish, _live_window, build_rows_fixed


# -- live ----------------------------------------------------------------------------------------
class LiveFeatureBuffer:
    """Per-stream ring of per-frame features: ``push(frame)`` returns a row once a window is full.

    Each pushed frame's features are computed once (numpy on one frame, no pandas or pydantic) and
    written into a ring of ``window`` rows; the row is then the ring in time order, flattened or
    pooled, rounded and cast exactly as the offline path does. Temporal features keep the previous
    raw frames they need.
    """

    def __init__(self, spec: FeaturePipelineSpec, width: int, height: int) -> None:
        self.spec = spec if spec.is_resolved else spec.resolve()
        self.width = float(width)
        self.height = float(height)
        self.layout = self.spec.layout_info()
        self.window = _live_window(self.spec)
        self._extractors = self.spec._extractors()
        self._decimals = self.spec.decimals
        widths = [len(e.columns()) for e in self._extractors]
        self._slices = [slice(a, a + w) for a, w in zip(np.cumsum([0, *widths[:-1]]), widths)]
        self._temporal = [int(getattr(e, "history", 0)) for e in self._extractors]
        self.n_features = sum(widths)
        depth = max(self._temporal, default=0) + 1
        # One ring of raw frames and pixel points per low-visibility policy (None: keypoints as given).
        policies = list(dict.fromkeys(policy_of(e) for e in self._extractors))
        self._views = [(None if p is None else LiveMask(p), np.full((depth, N_LANDMARKS, 4), np.nan),
                        np.full((depth, N_LANDMARKS + 2, 3), np.nan)) for p in policies]
        self._plan = [(e, sl, h, hasattr(e, "transform_points"), policies.index(policy_of(e)))
                      for e, sl, h in zip(self._extractors, self._slices, self._temporal)]
        self.reset()

    def reset(self) -> None:
        """Forget all buffered frames (e.g. after a pause in the stream)."""
        self._ring = np.full((self.window, self.n_features), np.nan)
        for mask, raw, pts in self._views:
            raw[:] = np.nan
            pts[:] = np.nan
            if mask is not None:
                mask.reset()
        self._pos = 0
        self._count = 0

    @property
    def frames_seen(self) -> int:
        """Frames pushed since the last reset."""
        return self._count

    def push(self, xyzv_frame: np.ndarray | None, row: bool = True) -> np.ndarray | None:
        """Add one frame (33, 4) of raw keypoints (None or NaN: no person); a float32 row once full.

        ``row=False`` only records the frame (a grid frame that is not the newest of its push).
        """
        self.record(xyzv_frame)
        slot = self._ring[self._pos]
        for ext, sl, hist, fast, view in self._plan:
            slot[sl] = self.newest(ext, hist, fast, view)
        self.advance()
        if self._count < self.window or not row:
            return None
        return self.current_row()

    def newest(self, ext: FeatureExtractor, hist: int, fast: bool, view: int) -> np.ndarray:
        """One extractor's features of the newest recorded frame (an entry of the plan: its history, path, view)."""
        _, raw, pts = self._views[view]
        lo = len(raw) - hist - 1
        if fast:
            return ext.transform_points(pts[lo:], raw[lo:], self.width, self.height)[-1]
        return ext.transform(raw[lo:], self.width, self.height)[-1]

    def record(self, xyzv_frame: np.ndarray | None) -> None:
        """Put one frame in the raw rings (the first half of push: its features are not computed yet)."""
        seen = self.masked(xyzv_frame)
        self.store(seen, [pixel_points(s, self.width, self.height)[0] for s in seen])

    def masked(self, xyzv_frame: np.ndarray | None) -> list[np.ndarray]:
        """The frame (1, 33, 4) as each low-visibility view sees it (masks carry state: call in frame order)."""
        if xyzv_frame is None:
            frame = np.full((1, N_LANDMARKS, 4), np.nan)
        else:
            frame = np.asarray(xyzv_frame, dtype=np.float64).reshape(1, N_LANDMARKS, 4)
        return [frame if mask is None else mask.apply(frame[0])[None] for mask, _, _ in self._views]

    def store(self, seen: list[np.ndarray], points: list[np.ndarray]) -> None:
        """Shift the rings and write one frame's masked keypoints and pixel points (35, 3) per view."""
        for (_, raw, pts), frame, p in zip(self._views, seen, points):
            if len(raw) > 1:
                raw[:-1] = raw[1:]
                pts[:-1] = pts[1:]
            raw[-1] = frame[0]
            pts[-1] = p

    def advance(self) -> int:
        """Move to the next ring slot once a recorded frame's features are in place; the slot it filled."""
        slot = self._pos
        self._pos = (self._pos + 1) % self.window
        self._count += 1
        return slot

    @property
    def full(self) -> bool:
        """Whether a whole window of frames has been pushed since the last reset."""
        return self._count >= self.window

    def current_row(self) -> np.ndarray:
        """The row of the last ``window`` frames (NaN-filled before the first window is full)."""
        ring, pos = self._ring, self._pos
        ordered = ring if pos == 0 else np.concatenate((ring[pos:], ring[:pos]))
        return _finish(build_rows_fixed(ordered[None], self.layout), self._decimals)[0]

