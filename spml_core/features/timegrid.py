"""Time is the unit of a live window: frames with timestamps resampled onto a bundle's fixed time
grid, and the gate (presence, visibility, input rate) that decides whether a window gets a class.

A bundle trained on keypoints at ``fps`` frames per second learned windows of ``window / fps``
seconds. Live input arrives at whatever rate the pose model manages (5-30 fps, with jitter and
dropped frames), so incoming frames are interpolated onto instants ``t0 + k * 1000 / fps`` before
features are computed: a window then covers the same duration at any input rate (docs/live.md).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from spml_core.errors import SpmlError, TimestampError
from spml_core.keypoints.skeleton import LANDMARK_NAMES, N_LANDMARKS, landmark_columns

Status = Literal["ok", "warming_up", "no_person", "low_visibility", "too_slow"]
# Every status but "ok" means "no class": the decision layer switches devices off on it. Other
# statuses (e.g. a rejection threshold's "unknown") only need adding here and in the gate.
STATUSES: tuple[str, ...] = ("ok", "warming_up", "no_person", "low_visibility", "too_slow")

# Bundles written before spml recorded the training rate: documented fallback (docs/live.md).
FALLBACK_FPS = 30.0
# The lowest supported input rate is the grid rate over this: at most 6 grid instants are
# interpolated between two real frames (5 fps for a 30 fps bundle).
MAX_GRID_STEPS_PER_FRAME = 6.0
# A gap between two real frames longer than this many of the slowest supported intervals is a
# pause, not a slow frame: the window starts again rather than interpolating across it.
GAP_INTERVALS = 3.5
# The input rate is measured over the real frames of this span (their median interval).
RATE_SPAN_MS = 2000.0
# Tolerance on the measured rate before a stream is "too slow" (jitter, a dropped frame).
RATE_TOLERANCE = 0.7
# A grid instant within this share of a step of a real frame takes that frame as it is, so that
# timestamps rounded to whole milliseconds (33, 67, 100 ...) neither delay every instant by a frame
# nor blend neighbours: input at the bundle's own rate gives exactly its frames.
SNAP = 0.1


def min_input_fps(fps: float) -> float:
    """The lowest input rate a bundle trained at ``fps`` supports (documented rule)."""
    return fps / MAX_GRID_STEPS_PER_FRAME


class GateConfig(BaseModel):
    """When a window gets no class: too little of a person, or of the joints the features need."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Gate windows on presence and visibility (off: classify every window)")
    max_missing: float = Field(
        0.3, ge=0, le=1, description="Largest share of a window's duration without a person (more: no_person)"
    )
    min_visibility: float = Field(
        0.5, ge=0, le=1, description="A frame counts as visible when every required joint has at least this visibility"
    )
    joints: list[str] = Field(
        default_factory=lambda: ["left_shoulder", "right_shoulder", "left_hip", "right_hip"],
        description="Joints the features need (normalisation origin and scale); landmark names",
    )

    @field_validator("joints")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [j for j in v if j not in LANDMARK_NAMES]
        if unknown:
            raise ValueError(f"unknown landmark name(s) {unknown}; valid: {', '.join(LANDMARK_NAMES)}")
        return v

    def joint_index(self) -> np.ndarray:
        """Indices of the required joints in the BlazePose order."""
        return np.asarray([LANDMARK_NAMES.index(j) for j in self.joints], dtype=np.int64)


class Timing(BaseModel):
    """How a bundle's windows sit in time (``features.timing`` of manifest.json)."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(gt=0, description="Frame rate of the training keypoints: the live grid's rate")
    window_ms: float | None = Field(None, ge=0, description="Window duration: window frames / fps")
    min_input_fps: float = Field(gt=0, description="Lowest input rate the bundle supports (fps / 6)")
    source: Literal["dataset", "fallback"] = Field(
        "dataset", description="dataset: measured from the training timestamps; fallback: assumed (old bundle)"
    )
    per_video_fps: dict[str, float] = Field(default_factory=dict, description="Measured rate of each training video")

    @classmethod
    def at(cls, fps: float, window: int | None, source: Literal["dataset", "fallback"] = "dataset",
           per_video: dict[str, float] | None = None) -> Timing:
        """The timing of a bundle trained at ``fps`` with windows of ``window`` frames."""
        return cls(fps=fps, window_ms=None if window is None else window * 1000.0 / fps,
                   min_input_fps=min_input_fps(fps), source=source, per_video_fps=per_video or {})


@dataclass
class GridStep:
    """What one real frame produced: grid frames (oldest first), whether the stream restarted, and whether
    each grid frame shows a person."""

    frames: list[np.ndarray]
    restarted: bool = False
    present: list[bool] = field(default_factory=list)


@dataclass
class TimeGrid:
    """Incremental resampler of one stream onto instants ``t0 + k * step`` (t0: the first frame's time).

    Each grid instant between two real frames is their linear interpolation when both show a
    person, else the nearer of the two (a person is never invented from an empty frame). A gap
    longer than ``max_gap_ms`` restarts the grid at the new frame.
    """

    fps: float
    max_gap_ms: float
    _times: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise SpmlError(f"grid rate must be a positive number of frames per second, got {self.fps!r}")
        self.step = 1000.0 / self.fps
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame starts a new grid."""
        self._t0: float | None = None
        self._k = 0  # next grid instant to emit
        self._prev: np.ndarray | None = None
        self._prev_t: float | None = None
        self._prev_present = False
        self._times.clear()
        self._gaps: list[float] = []  # the intervals between _times, kept sorted for the median

    @property
    def last_t(self) -> float | None:
        """Timestamp of the newest real frame (None before the first)."""
        return self._prev_t

    def input_fps(self) -> float | None:
        """Input rate over the last RATE_SPAN_MS: 1000 / the median interval between real frames, so a
        dropped frame or a jittered timestamp does not make a stream "too slow" (None until 5 frames)."""
        if len(self._times) < 5:
            return None
        gaps = self._gaps
        half = len(gaps) // 2
        median = gaps[half] if len(gaps) % 2 else (gaps[half - 1] + gaps[half]) / 2.0
        return 1000.0 / median if median > 0 else None

    def push(self, frame: np.ndarray, t_ms: float) -> GridStep:
        """Place one real frame (33, 4) at ``t_ms``; returns the grid frames it completes."""
        t = float(t_ms)
        if not np.isfinite(t):
            raise TimestampError(f"frame timestamp {t_ms!r} is not a finite number of milliseconds", "bad_timestamp")
        restarted = False
        if self._prev_t is not None:
            if t < self._prev_t:
                raise TimestampError(
                    f"frame timestamp {t:.1f} ms is earlier than the previous frame's {self._prev_t:.1f} ms; "
                    "start a new stream (reset) to restart the clock", "out_of_order")
            if t == self._prev_t:
                return GridStep([])  # a repeated frame adds no time: nothing new to classify
            if t - self._prev_t > self.max_gap_ms:
                self.reset()
                restarted = True
        times, gaps = self._times, self._gaps
        if times:
            insort(gaps, t - times[-1])
        times.append(t)
        while times and times[0] < t - RATE_SPAN_MS:
            first = times.popleft()
            if times:  # its interval to the next frame leaves the span with it
                del gaps[bisect_left(gaps, times[0] - first)]
        here = _present(frame)  # once per real frame: the gate reuses it for the grid frames
        if self._t0 is None:
            self._t0, self._k = t, 1
            self._prev, self._prev_t, self._prev_present = frame, t, here
            return GridStep([frame], restarted, [here])
        out, present = [], []
        prev, prev_t, there = self._prev, self._prev_t, self._prev_present
        assert prev is not None and prev_t is not None
        span = t - prev_t
        both = there and here
        while True:
            g = self._t0 + self._k * self.step
            if g > t + SNAP * self.step:
                break
            w = min((g - prev_t) / span, 1.0)
            if abs(t - g) <= SNAP * self.step:
                w = 1.0
            elif g - prev_t <= SNAP * self.step:
                w = 0.0
            if w >= 1.0 or w <= 0.0 or not both:
                out.append(frame if w >= 0.5 else prev)
                present.append(here if w >= 0.5 else there)
            else:
                out.append(prev + w * (frame - prev))
                present.append(_present(out[-1]))  # two people with no joint seen in both: nobody
            self._k += 1
        self._prev, self._prev_t, self._prev_present = frame, t, here
        return GridStep(out, restarted, present)


def _present(frame: np.ndarray) -> bool:
    return not bool(np.isnan(frame[:, 0]).all())


class Gate:
    """Per-stream presence and visibility over the last ``window`` grid frames."""

    def __init__(self, config: GateConfig, window: int) -> None:
        self.config = config
        self.window = window
        self._joints = config.joint_index()
        self.reset()

    def reset(self) -> None:
        """Forget the window."""
        self._present = np.zeros(self.window, dtype=bool)
        self._visible = np.zeros(self.window, dtype=bool)
        self._pos = 0
        self._count = 0

    def push(self, frame: np.ndarray, present: bool | None = None) -> None:
        """Record one grid frame's presence (computed unless given) and the visibility of the required joints."""
        if present is None:
            present = _present(frame)
        # A NaN visibility compares False without a warning: a hidden joint is not visible.
        visible = present and bool((frame[self._joints, 3] >= self.config.min_visibility).all())
        self._present[self._pos] = present
        self._visible[self._pos] = visible
        self._pos = (self._pos + 1) % self.window
        self._count += 1

    def status(self, input_fps: float | None, min_fps: float) -> Status:
        """The window's status: why it gets no class, or ok."""
        seen = min(self._count, self.window)
        allowed = self.config.max_missing * self.window
        if self.config.enabled and seen:
            absent = seen - int(self._present.sum())
            # Nobody for more than the allowed share: no_person even before the window is full.
            if absent > allowed:
                return "no_person"
        if self._count < self.window:
            return "warming_up"
        if input_fps is not None and input_fps < RATE_TOLERANCE * min_fps:
            return "too_slow"
        if self.config.enabled and self.window - int(self._visible.sum()) > allowed:
            return "low_visibility"
        return "ok"


def as_frame(xyzv: Any) -> np.ndarray:
    """One frame as (33, 4) float64; None is a frame without a person."""
    if xyzv is None:
        return np.full((N_LANDMARKS, 4), np.nan)
    arr = np.asarray(xyzv, dtype=np.float64)
    if arr.shape != (N_LANDMARKS, 4):
        raise SpmlError(f"a frame of keypoints must be shaped ({N_LANDMARKS}, 4), got {arr.shape}")
    return arr


def window_gate_mask(frames: Any, video: np.ndarray, start: np.ndarray, end: np.ndarray,
                     gate: GateConfig) -> np.ndarray:
    """Offline, the live gate's verdict on each training window: True where it would get a class.

    ``frames`` is the per-frame table (video, frame, <landmark>_x, <landmark>_visibility ...);
    window i covers frames start[i]..end[i] of video[i]. Like the live gate, a window fails when
    more than ``max_missing`` of its frames have no person, or lack a visible required joint.
    """
    keep = np.ones(len(start), dtype=bool)
    if not gate.enabled or len(start) == 0:
        return keep
    x_col = f"{LANDMARK_NAMES[0]}_x"
    vis_cols = [f"{j}_visibility" for j in gate.joints]
    video = np.asarray(video).astype(str)
    for name, part in frames.groupby("video", observed=True, sort=False):
        sel = video == str(name)
        if not sel.any():
            continue
        part = part.sort_values("frame")
        f = part["frame"].to_numpy(np.int64)
        present = np.isfinite(part[x_col].to_numpy(np.float64))
        with np.errstate(invalid="ignore"):
            visible = present & (part[vis_cols].to_numpy(np.float64) >= gate.min_visibility).all(axis=1)
        absent = np.concatenate(([0], np.cumsum(~present)))
        hidden = np.concatenate(([0], np.cumsum(~visible)))
        lo = np.searchsorted(f, np.asarray(start)[sel], "left")
        hi = np.searchsorted(f, np.asarray(end)[sel], "right")
        allowed = gate.max_missing * (hi - lo)
        keep[sel] = ((absent[hi] - absent[lo]) <= allowed) & ((hidden[hi] - hidden[lo]) <= allowed)
    return keep


def grid_fps(rates: dict[str, float], frames: dict[str, int]) -> float | None:
    """The training grid's rate: the frame rate shared by most frames (a frame-weighted median of
    the videos' rates), so a few slower or faster videos are resampled to the majority's rate."""
    names = [v for v, r in rates.items() if np.isfinite(r) and r > 0]
    if not names:
        return None
    r = np.asarray([rates[v] for v in names])
    w = np.asarray([max(frames.get(v, 1), 1) for v in names], dtype=np.float64)
    order = np.argsort(r)
    cum = np.cumsum(w[order])
    return float(r[order][np.searchsorted(cum, cum[-1] / 2.0)])


def resample_frames_table(df: Any, fps: float, videos: set[str]) -> Any:
    """The per-frame table with each of ``videos`` resampled onto a grid at ``fps`` (the live rule:
    linear between two frames with a person, else the nearer frame; labels from the nearer frame).

    Resampled videos get new frame numbers 0..n-1 and the grid's timestamps; others are unchanged.
    """
    import pandas as pd

    lm = landmark_columns()
    parts = []
    for name, part in df.groupby("video", observed=True, sort=False):
        if str(name) not in videos:
            parts.append(part)
            continue
        part = part.sort_values("frame")
        t = part["timestamp_ms"].to_numpy(np.float64)
        part, t = part[np.isfinite(t)], t[np.isfinite(t)]
        if len(t) < 2:
            parts.append(part)
            continue
        step = 1000.0 / fps
        grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) / step + 1e-9)) + 1) * step
        hi = np.searchsorted(t, grid, "left").clip(1, len(t) - 1)
        lo = hi - 1
        span = t[hi] - t[lo]
        w = np.divide(grid - t[lo], span, out=np.zeros_like(grid), where=span > 0).clip(0.0, 1.0)
        x = part[lm].to_numpy(np.float64)
        present = np.isfinite(x[:, 0])
        both = (present[lo] & present[hi])[:, None]
        near = np.where(w < 0.5, lo, hi)
        values = np.where(both, x[lo] + w[:, None] * (x[hi] - x[lo]), x[near])
        new = part.iloc[near].reset_index(drop=True)
        new[lm] = values
        new["frame"] = np.arange(len(grid), dtype=part["frame"].dtype)
        new["timestamp_ms"] = grid.astype(part["timestamp_ms"].dtype)
        parts.append(new)
    return pd.concat(parts, ignore_index=True)
