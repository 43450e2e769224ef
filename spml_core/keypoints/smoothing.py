"""Landmark smoothing over time: the One Euro filter, as MediaPipe's legacy pose pipeline used it.

A One Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff rises with speed:
still landmarks are smoothed hard (little jitter), moving ones follow closely (little lag). As in
MediaPipe's ``pose_landmark_filtering`` the speed is measured in person sizes per second (the
landmarks' bounding box, so the filter behaves the same near and far from the camera), and the
defaults are MediaPipe's: ``min_cutoff`` 0.05 Hz, ``beta`` 80, ``d_cutoff`` 1 Hz. Only x, y and
z are filtered; visibility passes through. Time comes from the frames' timestamps, so the filter
is the same at any frame rate, offline (keypoint extraction) and live (server-side pose, and the
page's copy in static/smoothing.js). A frame without a person, a timestamp that does not
advance, or a gap over ``reset_gap_ms`` restarts the filter (a person lost and found again).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class SmoothingOptions(BaseModel):
    """Temporal landmark filter of a pose estimator (recorded in keypoint files and bundles)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Smooth landmarks with a One Euro filter (off: raw per-frame output)")
    min_cutoff: float = Field(0.05, gt=0, description="Cutoff (Hz) of a still landmark: lower smooths more")
    beta: float = Field(80.0, ge=0, description="How fast the cutoff rises with speed (person sizes per second)")
    d_cutoff: float = Field(1.0, gt=0, description="Cutoff (Hz) of the speed estimate")
    reset_gap_ms: float = Field(1000.0, gt=0, description="A gap longer than this between frames restarts the filter")


def _alpha(freq: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * freq)


class OneEuroFilter:
    """One stream's filter state: call it with each frame (33, 4) and its timestamp in ms."""

    def __init__(self, options: SmoothingOptions | None = None) -> None:
        self.options = options or SmoothingOptions()
        self.reset()

    def reset(self) -> None:
        """Forget the stream (the next frame passes through unchanged and starts the filter)."""
        self._raw: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, xyzv: np.ndarray, t_ms: float) -> np.ndarray:
        """The smoothed frame (a new float64 array; NaN where the input is NaN)."""
        frame = np.array(xyzv, dtype=np.float64)
        o = self.options
        if not o.enabled:
            return frame
        value = frame[:, :3]
        present = np.isfinite(value[:, 0])
        if not present.any():
            self.reset()  # nobody: tracking is lost, and a person found later starts afresh
            return frame
        t = float(t_ms)
        if (self._t is None or not math.isfinite(t) or t <= self._t or t - self._t > o.reset_gap_ms
                or self._raw is None or self._out is None or self._dx is None):
            self._raw, self._out = value.copy(), value.copy()
            self._dx = np.zeros_like(value)
            self._t = t
            return frame
        freq = 1000.0 / (t - self._t)
        xs, ys = value[present, 0], value[present, 1]
        scale = ((xs.max() - xs.min()) + (ys.max() - ys.min())) / 2.0
        value_scale = 1.0 / scale if scale > 0 else 1.0
        # A joint seen now but not in the previous frame starts from its own value.
        known = np.isfinite(self._raw[:, :1]) & np.isfinite(value[:, :1])
        raw_prev = np.where(known, self._raw, value)
        out_prev = np.where(known, self._out, value)
        dx = (value - raw_prev) * value_scale * freq
        a_d = _alpha(freq, o.d_cutoff)
        edx = a_d * dx + (1.0 - a_d) * np.where(known, self._dx, 0.0)
        a = _alpha(freq, o.min_cutoff + o.beta * np.abs(edx))
        out = a * value + (1.0 - a) * out_prev
        self._raw, self._out, self._dx, self._t = value.copy(), out, edx, t
        frame[:, :3] = out
        return frame


def smooth_sequence(xyzv: np.ndarray, t_ms: np.ndarray, options: SmoothingOptions | None = None) -> np.ndarray:
    """Every frame of (frames, 33, 4) through one filter, in order: exactly what the live path gives."""
    f = OneEuroFilter(options)
    return np.stack([f(x, t) for x, t in zip(xyzv, np.asarray(t_ms, dtype=np.float64))]) if len(xyzv) else \
        np.asarray(xyzv, dtype=np.float64)
