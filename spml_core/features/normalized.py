"""`normalized`: body-centred, body-scaled coordinates (fixes StreamPoseML's `x / d - mid_x`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from spml_core.components import FeatureExtractor
from spml_core.features.geometry import MID_HIP, BodySize, body_size, pixel_points
from spml_core.features.visibility import VisibilityOptions
from spml_core.keypoints.skeleton import LANDMARK_NAMES


class NormalizedCoordinates(FeatureExtractor):
    """Landmarks relative to the mid-hip, divided by the body size, in pixel-aspect-correct space.

    ``x_n = (x*W - mid_hip_x*W) / size``, ``y_n = (y*H - mid_hip_y*H) / size`` and, with
    ``include_z``, ``z_n = (z - mid_hip_z) * W / size``. The values do not change when the whole
    skeleton is translated or uniformly scaled in the image. NaN where no person or size is zero.
    """

    name = "normalized"
    description = "landmarks translated to the mid-hip and scaled by hip width or torso length"
    history: ClassVar[int] = 0

    class Options(VisibilityOptions):
        body_size: BodySize = Field("hip_width", description="Scale: hip_width (StreamPoseML's) or torso")
        include_z: bool = Field(False, description="Also output z, centred and scaled the same way")

    def columns(self) -> list[str]:
        """<joint>_x_normalized, <joint>_y_normalized[, <joint>_z_normalized] for the 33 landmarks."""
        chans = ("x", "y", "z") if self.options.include_z else ("x", "y")
        return [f"{j}_{c}_normalized" for j in LANDMARK_NAMES for c in chans]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(frames, 66 or 99) normalised coordinates."""
        return self.transform_points(pixel_points(xyzv, width, height), xyzv, width, height)

    def transform_points(self, pts: np.ndarray, xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
        """transform() from precomputed pixel points (shared by extractors in one pipeline)."""
        dims = 3 if self.options.include_z else 2
        size = body_size(pts, self.options.body_size)
        rel = (pts[:, : len(LANDMARK_NAMES), :dims] - pts[:, MID_HIP : MID_HIP + 1, :dims]) / size[:, None, None]
        return rel.reshape(len(rel), -1)
