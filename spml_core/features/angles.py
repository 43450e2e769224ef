"""`angles`: unsigned angles between directed body segments, StreamPoseML's set with its bugs fixed.

Each angle is measured between two directed segments ``v1 = to1 - from1`` and ``v2 = to2 - from2``
(as StreamPoseML does), so a straight limb gives about 0 degrees, not 180: the interior joint angle
is ``180 - value`` for the limb-chain angles. Computed as ``atan2(|v1 x v2|, v1 . v2)`` (accurate
near 0 and 180 degrees, unlike ``arccos``), in degrees, 0..180.

Differences from StreamPoseML 0.3.1's 35 angles (inventory section 2.5, bugs B2/B3/B6):
  * computed in pixel space (x*width, y*height), not in aspect-distorted normalised coordinates;
  * the right forearm is right_elbow->right_wrist (StreamPoseML used the left forearm under that name);
  * dropped: neck_mid_hip_to_plumb_line (always 0), right_ankle_right_heel_to_neck_mid_hip (duplicate
    of right_ankle_right_heel_to_plumb_line), neck_mid_hip_to_mid_hip_left_hip (duplicate of
    mid_hip_left_hip_to_plumb_line), neck_right_shoulder_to_plumb_line and
    mid_hip_right_hip_to_plumb_line (exactly 180 minus their left twins, because neck and mid_hip
    are midpoints), left_shoulder_left_elbow_to_right_elbow_right_wrist (left upper arm against the
    right forearm: in StreamPoseML it was the left elbow by accident of the bug);
  * added: both elbows, the right knee, left_elbow_left_wrist_to_plumb_line, and the missing ankle
    angles so that left and right match (right shank->toe, left shank->heel).
The result is 35 angles again, listed in ANGLES; every name keeps StreamPoseML's naming rule
``<from1>_<to1>_to_<from2>_<to2>`` (``plumb_line`` = neck->mid_hip).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core.components import FeatureExtractor
from spml_core.features.geometry import EXT_INDEX, pixel_points
from spml_core.features.visibility import VisibilityOptions

# Directed segments: name -> (from joint, to joint), in the 35-joint extended skeleton.
VECTORS: dict[str, tuple[str, str]] = {
    "plumb_line": ("neck", "mid_hip"),
    "nose_neck": ("nose", "neck"),
    "neck_right_shoulder": ("neck", "right_shoulder"),
    "neck_left_shoulder": ("neck", "left_shoulder"),
    "right_shoulder_right_elbow": ("right_shoulder", "right_elbow"),
    "right_elbow_right_wrist": ("right_elbow", "right_wrist"),
    "left_shoulder_left_elbow": ("left_shoulder", "left_elbow"),
    "left_elbow_left_wrist": ("left_elbow", "left_wrist"),
    "mid_hip_right_hip": ("mid_hip", "right_hip"),
    "right_hip_right_knee": ("right_hip", "right_knee"),
    "right_knee_right_ankle": ("right_knee", "right_ankle"),
    "mid_hip_left_hip": ("mid_hip", "left_hip"),
    "left_hip_left_knee": ("left_hip", "left_knee"),
    "left_knee_left_ankle": ("left_knee", "left_ankle"),
    "nose_right_eye": ("nose", "right_eye"),
    "right_eye_right_ear": ("right_eye", "right_ear"),
    "nose_left_eye": ("nose", "left_eye"),
    "left_eye_left_ear": ("left_eye", "left_ear"),
    "left_ankle_left_foot_index": ("left_ankle", "left_foot_index"),
    "left_ankle_left_heel": ("left_ankle", "left_heel"),
    "right_ankle_right_foot_index": ("right_ankle", "right_foot_index"),
    "right_ankle_right_heel": ("right_ankle", "right_heel"),
}

# The 35 angles, as (first segment, second segment); the column is "<v1>_to_<v2>_angle_2d_degrees".
ANGLES: tuple[tuple[str, str], ...] = (
    # segments against the trunk's plumb line
    ("nose_neck", "plumb_line"),
    ("neck_left_shoulder", "plumb_line"),
    ("right_shoulder_right_elbow", "plumb_line"),
    ("right_elbow_right_wrist", "plumb_line"),
    ("left_shoulder_left_elbow", "plumb_line"),
    ("left_elbow_left_wrist", "plumb_line"),
    ("right_hip_right_knee", "plumb_line"),
    ("right_knee_right_ankle", "plumb_line"),
    ("mid_hip_left_hip", "plumb_line"),
    ("left_hip_left_knee", "plumb_line"),
    ("left_knee_left_ankle", "plumb_line"),
    ("nose_right_eye", "plumb_line"),
    ("right_eye_right_ear", "plumb_line"),
    ("nose_left_eye", "plumb_line"),
    ("left_eye_left_ear", "plumb_line"),
    ("left_ankle_left_foot_index", "plumb_line"),
    ("left_ankle_left_heel", "plumb_line"),
    ("right_ankle_right_foot_index", "plumb_line"),
    ("right_ankle_right_heel", "plumb_line"),
    # joints: head/neck, shoulders, elbows, hips, knees, ankles, eyes, feet
    ("nose_neck", "neck_right_shoulder"),
    ("neck_right_shoulder", "right_shoulder_right_elbow"),
    ("neck_left_shoulder", "left_shoulder_left_elbow"),
    ("right_shoulder_right_elbow", "right_elbow_right_wrist"),
    ("left_shoulder_left_elbow", "left_elbow_left_wrist"),
    ("mid_hip_right_hip", "right_hip_right_knee"),
    ("mid_hip_left_hip", "left_hip_left_knee"),
    ("right_hip_right_knee", "right_knee_right_ankle"),
    ("left_hip_left_knee", "left_knee_left_ankle"),
    ("right_knee_right_ankle", "right_ankle_right_heel"),
    ("left_knee_left_ankle", "left_ankle_left_heel"),
    ("right_knee_right_ankle", "right_ankle_right_foot_index"),
    ("left_knee_left_ankle", "left_ankle_left_foot_index"),
    ("nose_right_eye", "right_eye_right_ear"),
    ("nose_left_eye", "left_eye_left_ear"),
    ("left_ankle_left_heel", "right_ankle_right_foot_index"),
)

ANGLE_NAMES: tuple[str, ...] = tuple(f"{a}_to_{b}" for a, b in ANGLES)
_VEC_NAMES = list(VECTORS)
_FROM = np.array([EXT_INDEX[f] for f, _ in VECTORS.values()])
_TO = np.array([EXT_INDEX[t] for _, t in VECTORS.values()])
_V1 = np.array([_VEC_NAMES.index(a) for a, _ in ANGLES])
_V2 = np.array([_VEC_NAMES.index(b) for _, b in ANGLES])


def segment_angles(points: np.ndarray, dims: int) -> np.ndarray:
    """(frames, 35) degrees between the ANGLES' segment pairs of (frames, 35, >=dims) pixel points."""
    vec = points[:, _TO, :dims] - points[:, _FROM, :dims]
    a = vec[:, _V1]
    b = vec[:, _V2]
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    dot = ax * bx + ay * by
    cz = ax * by - ay * bx
    na = ax * ax + ay * ay
    nb = bx * bx + by * by
    if dims == 3:
        az, bz = a[..., 2], b[..., 2]
        dot = dot + az * bz
        cx = ay * bz - az * by
        cy = az * bx - ax * bz
        cross = np.sqrt(cx * cx + cy * cy + cz * cz)
        na = na + az * az
        nb = nb + bz * bz
    else:
        cross = np.abs(cz)
    deg = np.degrees(np.arctan2(cross, dot))
    # The angle to a zero-length segment is undefined; atan2(0, 0) would say 0.
    return np.where((na > 0) & (nb > 0), deg, np.nan)


class SegmentAngles(FeatureExtractor):
    """35 unsigned angles (degrees) between directed body segments, in the image plane or in 3D."""

    name = "angles"
    description = "35 angles between body segments (StreamPoseML's set, fixed), degrees, pixel space"
    history: ClassVar[int] = 0

    class Options(VisibilityOptions):
        mode: Literal["2d", "3d", "both"] = Field(
            "2d", description="2d: image plane (pixels); 3d: with z scaled like x; both: 2d then 3d columns"
        )

    def _modes(self) -> list[int]:
        return {"2d": [2], "3d": [3], "both": [2, 3]}[self.options.mode]

    def columns(self) -> list[str]:
        """<v1>_to_<v2>_angle_2d_degrees (and/or _3d_) for the 35 angles."""
        return [f"{n}_angle_{d}d_degrees" for d in self._modes() for n in ANGLE_NAMES]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(frames, 35 per mode) angles in degrees; NaN where no person or a segment has zero length."""
        return self.transform_points(pixel_points(xyzv, width, height), xyzv, width, height)

    def transform_points(self, pts: np.ndarray, xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
        """transform() from precomputed pixel points (shared by extractors in one pipeline)."""
        parts = [segment_angles(pts, d) for d in self._modes()]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
