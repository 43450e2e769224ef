"""Low-visibility joints before features: keep them, ignore them (NaN) or impute them (carry the
last visible position forward), identically offline (whole runs, vectorised) and live (frame by frame).

A joint is low-visibility in a frame that shows a person when its visibility score is below
``min_visibility`` (a missing score counts as low). ``ignore`` sets its x, y, z to NaN, so every
feature that uses it is NaN; ``impute`` gives it the position of the joint's last frame with
visibility at or above the threshold, at most ``impute_frames`` frames back within the same run
of consecutive frames (a live stream since its last reset), else NaN as with ``ignore``. The
visibility channel itself is never changed. Frames without a person stay empty (docs/features.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from spml_core.components import Options
from spml_core.keypoints.skeleton import N_LANDMARKS

LowVisibility = Literal["keep", "ignore", "impute"]

# The options below; velocities refuses them inside ``of`` (its own apply to its bases).
VISIBILITY_KEYS: tuple[str, ...] = ("low_visibility", "min_visibility", "impute_frames")
DEFAULT_MIN_VISIBILITY = 0.5
DEFAULT_IMPUTE_FRAMES = 10
_NEVER = np.int64(1) << 40  # age of a joint never seen visible since the run began


class VisibilityOptions(Options):
    """Options of a feature extractor that decide what happens to low-visibility joints."""

    low_visibility: LowVisibility = Field(
        "keep", description="Joints below min_visibility: keep (as given), ignore (NaN) or impute (last visible position)"
    )
    min_visibility: float = Field(
        DEFAULT_MIN_VISIBILITY, ge=0, le=1, description="A joint's visibility score below this is low visibility"
    )
    impute_frames: int = Field(
        DEFAULT_IMPUTE_FRAMES, ge=1, le=100_000,
        description="impute: carry a joint's last visible position at most this many frames (then NaN)",
    )


@dataclass(frozen=True)
class VisibilityPolicy:
    """What one extractor does with low-visibility joints (hashable: extractors sharing one share the masked frames)."""

    mode: Literal["ignore", "impute"]
    min_visibility: float
    impute_frames: int

    @property
    def carry(self) -> int:
        """Frames before a window whose keypoints can reach into it (imputation), 0 for ignore."""
        return self.impute_frames if self.mode == "impute" else 0


def policy_of(extractor: Any) -> VisibilityPolicy | None:
    """The extractor's low-visibility policy, or None for ``keep`` (also extractors without the options)."""
    opts = getattr(extractor, "options", None)
    mode = getattr(opts, "low_visibility", "keep")
    if mode == "keep":
        return None
    if mode not in ("ignore", "impute"):
        raise ValueError(f"{getattr(extractor, 'name', extractor)}: low_visibility must be keep, ignore or impute, "
                         f"got {mode!r}")
    return VisibilityPolicy(mode, float(getattr(opts, "min_visibility", DEFAULT_MIN_VISIBILITY)),
                            int(getattr(opts, "impute_frames", DEFAULT_IMPUTE_FRAMES)))


def filled_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the visibility defaults written out when a policy is set, so a bundle keeps its meaning."""
    mode = options.get("low_visibility", "keep")
    if mode == "keep":
        return dict(options)
    out = dict(options)
    out.setdefault("min_visibility", DEFAULT_MIN_VISIBILITY)
    if mode == "impute":
        out.setdefault("impute_frames", DEFAULT_IMPUTE_FRAMES)
    return out


def _masks(arr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(visible, hidden) per joint: hidden is low visibility in a frame that shows a person."""
    with np.errstate(invalid="ignore"):
        visible = arr[..., 3] >= threshold  # NaN scores compare False: low visibility
    present = ~np.isnan(arr[..., 0]).all(axis=-1)
    return visible, present[..., None] & ~visible


def mask_frames(xyzv: np.ndarray, policy: VisibilityPolicy, run_starts: Sequence[int] | np.ndarray | None = None
                ) -> np.ndarray:
    """A (frames, 33, 4) copy with low-visibility joints ignored or imputed; runs never share positions."""
    arr = np.array(xyzv, dtype=np.float64)  # a copy: the caller's keypoints are left alone
    if arr.ndim != 3 or arr.shape[1] != N_LANDMARKS or arr.shape[2] < 4:
        raise ValueError(f"low_visibility needs keypoints shaped (frames, {N_LANDMARKS}, 4) with visibility, "
                         f"got {arr.shape}")
    visible, hidden = _masks(arr, policy.min_visibility)
    if policy.mode == "ignore":
        arr[..., :3][hidden] = np.nan
        return arr
    n = len(arr)
    idx = np.arange(n, dtype=np.int64)
    last = np.where(visible, idx[:, None], np.int64(-1))
    np.maximum.accumulate(last, axis=0, out=last)
    starts = np.asarray(run_starts if run_starts is not None and len(run_starts) else [0], dtype=np.int64)
    run_start = starts[np.searchsorted(starts, idx, side="right") - 1]
    ok = hidden & (last >= run_start[:, None]) & (idx[:, None] - last <= policy.impute_frames)
    carried = arr[np.where(ok, last, 0), np.arange(N_LANDMARKS)[None, :], :3]
    arr[..., :3] = np.where(ok[..., None], carried, np.where(hidden[..., None], np.nan, arr[..., :3]))
    return arr


class LiveMask:
    """mask_frames one frame at a time: keeps each joint's last visible position and its age in frames."""

    def __init__(self, policy: VisibilityPolicy) -> None:
        self.policy = policy
        self._last = np.full((N_LANDMARKS, 3), np.nan)
        self._age = np.full(N_LANDMARKS, _NEVER, dtype=np.int64)

    def reset(self) -> None:
        """Forget every joint's last visible position (a new run of frames)."""
        self._last[:] = np.nan
        self._age[:] = _NEVER

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The masked copy of one (33, 4) frame; the same values mask_frames gives it within its run."""
        out = np.array(frame, dtype=np.float64)
        visible, hidden = _masks(out, self.policy.min_visibility)
        if self.policy.mode == "ignore":
            out[hidden, :3] = np.nan
            return out
        np.minimum(self._age + 1, _NEVER, out=self._age)
        self._age[visible] = 0
        self._last[visible] = out[visible, :3]
        ok = hidden & (self._age <= self.policy.impute_frames)
        out[hidden, :3] = np.nan
        out[ok, :3] = self._last[ok]
        return out
