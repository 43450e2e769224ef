"""`joints`: the raw landmark coordinates, as the pose estimator gave them (seed `include_joints`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from spml_core.components import FeatureExtractor
from spml_core.features.geometry import as_xyzv
from spml_core.features.visibility import VisibilityOptions
from spml_core.keypoints.skeleton import LANDMARK_NAMES


class RawJoints(FeatureExtractor):
    """Landmark x, y (fractions of the image width and height), optionally z and visibility."""

    name = "joints"
    description = "raw landmark coordinates x, y (0..1 of the image), optionally z and visibility"
    history: ClassVar[int] = 0

    class Options(VisibilityOptions):
        include_z: bool = Field(False, description="Also output MediaPipe's relative depth z")
        include_visibility: bool = Field(False, description="Also output the visibility score")

    def _channels(self) -> list[int]:
        return [0, 1] + [2] * self.options.include_z + [3] * self.options.include_visibility

    def columns(self) -> list[str]:
        """<joint>_x, <joint>_y[, _z][, _visibility]: the same names as the keypoint table."""
        names = ("x", "y", "z", "visibility")
        return [f"{j}_{names[c]}" for j in LANDMARK_NAMES for c in self._channels()]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(frames, 33 * channels) copy of the selected channels."""
        return self.transform_points(None, xyzv, width, height)

    def transform_points(self, pts: np.ndarray | None, xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
        """transform() with the pipeline's shared arguments (raw coordinates need no pixel points)."""
        arr = as_xyzv(xyzv)
        if self.options.include_visibility and arr.shape[2] < 4:
            raise ValueError("joints: include_visibility needs keypoints with 4 channels (x, y, z, visibility)")
        return arr[:, :, self._channels()].reshape(len(arr), -1)
