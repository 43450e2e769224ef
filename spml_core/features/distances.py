"""`distances`: joint to plumb-line midpoint distances, StreamPoseML's 23, with the midpoint fixed.

The reference point is the true midpoint of the plumb line, ``P = (neck + mid_hip) / 2`` (StreamPoseML
computed ``neck + mid_hip / 2`` by operator precedence, bug B1). Distances are measured in pixel
space (x*width, y*height[, z*width]) and, by default, divided by the body size so that they do not
depend on how far the person stands from the camera.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core.components import FeatureExtractor
from spml_core.features.geometry import (
    EXT_INDEX,
    MID_HIP,
    NECK,
    BodySize,
    body_size,
    pixel_points,
)
from spml_core.features.visibility import VisibilityOptions

# StreamPoseML's order; each column is "<joint>_to_plumb_line_distance_<2d|3d>[_normalized]".
DISTANCE_JOINTS: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_foot_index", "left_heel",
    "right_foot_index", "right_heel",
)
_JOINTS = np.array([EXT_INDEX[j] for j in DISTANCE_JOINTS])


class PlumbLineDistances(FeatureExtractor):
    """Distance of 23 joints to the midpoint of the neck->mid_hip line, in body sizes (or pixels)."""

    name = "distances"
    description = "23 joint distances to the plumb-line midpoint, divided by body size"
    history: ClassVar[int] = 0

    class Options(VisibilityOptions):
        mode: Literal["2d", "3d", "both"] = Field("2d", description="image plane, 3D (z scaled like x), or both")
        normalize: bool = Field(True, description="Divide by the body size (False: pixels)")
        body_size: BodySize = Field("hip_width", description="Body size used when normalize is true")

    def _modes(self) -> list[int]:
        return {"2d": [2], "3d": [3], "both": [2, 3]}[self.options.mode]

    def columns(self) -> list[str]:
        """<joint>_to_plumb_line_distance_<2d|3d>[_normalized] for the 23 joints."""
        suffix = "_normalized" if self.options.normalize else ""
        return [f"{j}_to_plumb_line_distance_{d}d{suffix}" for d in self._modes() for j in DISTANCE_JOINTS]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(frames, 23 per mode) distances; NaN where no person (or zero body size when normalising)."""
        return self.transform_points(pixel_points(xyzv, width, height), xyzv, width, height)

    def transform_points(self, pts: np.ndarray, xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
        """transform() from precomputed pixel points (shared by extractors in one pipeline)."""
        mid = (pts[:, NECK] + pts[:, MID_HIP]) * 0.5
        rel = pts[:, _JOINTS] - mid[:, None, :]
        sq2 = rel[..., 0] * rel[..., 0] + rel[..., 1] * rel[..., 1]
        parts = [np.sqrt(sq2) if d == 2 else np.sqrt(sq2 + rel[..., 2] * rel[..., 2]) for d in self._modes()]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if self.options.normalize:
            out = out / body_size(pts, self.options.body_size)[:, None]
        return out
