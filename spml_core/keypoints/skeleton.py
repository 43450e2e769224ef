"""The BlazePose skeleton: 33 named landmarks, their order, and derived OpenPose-style joints.

Coordinates (see docs/keypoints.md):
  x, y        normalised image coordinates, 0..1 of the frame width and height (origin top-left)
  z           depth relative to the mid-hip, on roughly the same scale as x (MediaPipe convention)
  visibility  0..1 likelihood that the landmark is visible
  world x/y/z metres, origin at the mid-hip (when the estimator provides world landmarks)
A frame without a detected person holds NaN in every channel.
"""

from __future__ import annotations

import numpy as np

LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
N_LANDMARKS = len(LANDMARK_NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}
CHANNELS: tuple[str, ...] = ("x", "y", "z", "visibility")
WORLD_CHANNELS: tuple[str, ...] = ("wx", "wy", "wz")

# OpenPose-style derived joints, as StreamPoseML computes them: midpoints of a landmark pair.
DERIVED_JOINTS: dict[str, tuple[str, str]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
}
EXTENDED_NAMES: tuple[str, ...] = LANDMARK_NAMES + tuple(DERIVED_JOINTS)

# Limb connections for drawing overlays (pairs of landmark indices).
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)


def landmark_columns(world: bool = False) -> list[str]:
    """Column names of the per-frame landmark table, joint-major (nose_x, nose_y, ...)."""
    channels = WORLD_CHANNELS if world else CHANNELS
    return [f"{name}_{ch}" for name in LANDMARK_NAMES for ch in channels]


def with_derived_joints(points: np.ndarray) -> np.ndarray:
    """Append neck and mid_hip (midpoints) to a (..., 33, C) array, giving (..., 35, C)."""
    extra = [
        (points[..., INDEX[a], :] + points[..., INDEX[b], :]) * 0.5
        for a, b in DERIVED_JOINTS.values()
    ]
    return np.concatenate([points, np.stack(extra, axis=-2)], axis=-2)
