"""Fixtures for the mediapipe estimator's tests: the example video (read, never copied)
and small synthetic videos written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_video(path: Path, frames: int, *, fourcc: str = "MJPG", fps: float = 25.0, value: int = 128) -> Path:
    """Write a uniform grey video (no person) with OpenCV; frames=0 gives a valid but empty file."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (320, 240))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for _ in range(frames):
        writer.write(np.full((240, 320, 3), value, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def example_video(example_dir: Path) -> Path:
    """The example video (1280x720, 382 frames, one person stepping), from the root conftest's lookup."""
    return example_dir / "example_video.webm"


@pytest.fixture(scope="session")
def first_frame(example_video: Path) -> tuple[np.ndarray, float]:
    """The example video's first frame as OpenCV decodes it (BGR) and its container timestamp."""
    import cv2

    cap = cv2.VideoCapture(str(example_video))
    ok, bgr = cap.read()
    ts = cap.get(cv2.CAP_PROP_POS_MSEC)
    cap.release()
    assert ok
    return bgr, ts


@pytest.fixture(scope="session")
def make_video():
    """The write_video helper, as a fixture (test modules cannot import conftest)."""
    return write_video


@pytest.fixture
def grey_video(tmp_path: Path) -> Path:
    """Twelve grey frames: a readable video with no person in it."""
    return write_video(tmp_path / "grey.avi", 12)
