"""Shared geometry for the built-in feature extractors: pixel-space points, body size, masks.

Everything works on whole arrays of shape (frames, joints, channels): no Python loop touches a
frame or a joint. MediaPipe's x and y are fractions of the image width and height, so lengths and
angles measured on them directly are distorted by the aspect ratio (StreamPoseML's bug B6);
here x is multiplied by the width, y by the height and z by the width (MediaPipe scales z like
x), which makes every measurement an honest pixel-space one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from spml_core.keypoints.skeleton import (
    DERIVED_JOINTS,
    EXTENDED_NAMES,
    INDEX,
    N_LANDMARKS,
)

BodySize = Literal["hip_width", "torso"]

# Index of every joint in the extended (33 + neck + mid_hip) array built by pixel_points.
EXT_INDEX: dict[str, int] = {name: i for i, name in enumerate(EXTENDED_NAMES)}
_PAIR_A = np.array([INDEX[a] for a, _ in DERIVED_JOINTS.values()])
_PAIR_B = np.array([INDEX[b] for _, b in DERIVED_JOINTS.values()])
NECK = EXT_INDEX["neck"]
MID_HIP = EXT_INDEX["mid_hip"]
LEFT_HIP = INDEX["left_hip"]
RIGHT_HIP = INDEX["right_hip"]


def as_xyzv(xyzv: np.ndarray) -> np.ndarray:
    """Check and view keypoints as a float64 (frames, 33, 4) array (a single (33, 4) frame is accepted)."""
    arr = np.asarray(xyzv, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != N_LANDMARKS or arr.shape[2] < 3:
        raise ValueError(f"keypoints must have shape (frames, {N_LANDMARKS}, 4), got {np.shape(xyzv)}")
    return arr


def pixel_points(xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
    """(frames, 35, 3) float64 points in pixels: x*width, y*height, z*width, plus neck and mid_hip."""
    arr = as_xyzv(xyzv)
    scale = np.array([width, height, width], dtype=np.float64)
    pts = arr[:, :, :3] * scale
    # Derived joints are midpoints of landmark pairs, computed in one gather for both.
    derived = (pts[:, _PAIR_A] + pts[:, _PAIR_B]) * 0.5
    return np.concatenate([pts, derived], axis=1)


def body_size(points: np.ndarray, kind: BodySize) -> np.ndarray:
    """(frames,) body length in pixels, measured in the image plane; NaN where it is zero or unknown.

    ``hip_width``: left hip to right hip (StreamPoseML's reference). ``torso``: neck (mid-shoulder)
    to mid-hip, which stays large when the person turns sideways and the hips overlap.
    """
    if kind == "hip_width":
        d = points[:, LEFT_HIP, :2] - points[:, RIGHT_HIP, :2]
    elif kind == "torso":
        d = points[:, NECK, :2] - points[:, MID_HIP, :2]
    else:  # pydantic validates options; this guards direct calls
        raise ValueError(f"body_size must be 'hip_width' or 'torso', got {kind!r}")
    size = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    # A zero size (coincident joints) would divide by zero: NaN says "undefined" without a warning.
    return np.where(size > 0, size, np.nan)
