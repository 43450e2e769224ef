"""One MediaPipe Tasks ``PoseLandmarker`` in VIDEO mode, shared by the video and live-frame paths.

Both paths hand it RGB frames: the video path decodes BGR with OpenCV and converts once, the
live path receives RGB. Preprocessing (CLAHE) happens here, so training and live keypoints
come from identical pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spml_core import N_LANDMARKS
from spml_core.errors import SpmlError

from spml_pose_mediapipe.native_log import native_stderr_captured

CLAHE_CLIP_LIMIT = 3.0
CLAHE_TILES = (8, 8)


def empty_pose(world: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """NaN landmarks for a frame without a person."""
    xyzv = np.full((N_LANDMARKS, 4), np.nan, dtype=np.float32)
    return xyzv, (np.full((N_LANDMARKS, 3), np.nan, dtype=np.float32) if world else None)


class Landmarker:
    """A PoseLandmarker (one person, tracking across frames) plus optional CLAHE preprocessing."""

    def __init__(
        self,
        model_path: Path,
        *,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        clahe: bool = False,
        world: bool = True,
    ) -> None:
        import cv2
        import mediapipe as mp
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import pose_landmarker
        from mediapipe.tasks.python.vision.core.vision_task_running_mode import (
            VisionTaskRunningMode,
        )

        self.world = world
        self._image, self._srgb = mp.Image, mp.ImageFormat.SRGB
        self._clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES) if clahe else None
        options = pose_landmarker.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=VisionTaskRunningMode.VIDEO,
            num_poses=1,
            min_pose_detection_confidence=min_detection_confidence,
            min_pose_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_segmentation_masks=False,
        )
        try:
            with native_stderr_captured():  # its start-up log lines would break progress bars
                self._task: Any = pose_landmarker.PoseLandmarker.create_from_options(options)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError with its own text
            raise SpmlError(f"{model_path}: MediaPipe cannot load this pose landmarker bundle ({exc})") from exc
        self._last_ts = -1
        self._first = True

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """CLAHE on the L channel in LAB (StreamPoseML's contrast step) when enabled, else rgb."""
        if self._clahe is None:
            return rgb
        import cv2

        # RGB->LAB gives the same L as StreamPoseML's BGR->LAB: only the channel order differs.
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        # In place on the L plane: cheaper than split + merge, same pixels.
        lab[:, :, 0] = self._clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The exact pixels the model will see (preprocessed, contiguous); safe to run in another thread."""
        return np.ascontiguousarray(self.preprocess(rgb))

    def detect(self, rgb: np.ndarray, timestamp_ms: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Landmarks of one RGB frame: (33, 4) x/y/z/visibility and (33, 3) world, NaN if no person."""
        return self.detect_prepared(self.prepare(rgb), timestamp_ms)

    def detect_prepared(self, prepared: np.ndarray, timestamp_ms: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Landmarks of a frame already passed through prepare()."""
        image = self._image(image_format=self._srgb, data=prepared)
        # VIDEO mode rejects times that do not increase; live callers may repeat a clock value.
        ts = max(int(round(timestamp_ms)), self._last_ts + 1)
        self._last_ts = ts
        if self._first:  # the graph logs its warnings on the first frame only
            self._first = False
            with native_stderr_captured():
                result = self._task.detect_for_video(image, ts)
        else:
            result = self._task.detect_for_video(image, ts)
        if not result.pose_landmarks:
            return empty_pose(self.world)
        xyzv = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks[0]], dtype=np.float32)
        world = None
        if self.world:
            world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks[0]], dtype=np.float32)
        return xyzv, world

    def close(self) -> None:
        """Free the native graph (an unclosed landmarker errors at interpreter exit)."""
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
