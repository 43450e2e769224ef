"""Fixtures shared by the tests of spml-core and of the bundled plugins (tests/, plugins/*/tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spml_core.errors import SpmlError
from spml_core.util import example_data


def find_example() -> Path:
    """StreamPoseML's example folder (../shared, else the copy make setup fetched); fails, never skips."""
    try:
        return example_data.example_dir()
    except SpmlError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def example_dir() -> Path:
    """The folder holding example_video.webm and example_video.json (SPML_NO_SHARED=1 ignores ../shared)."""
    return find_example()


def _cut_clips(folder: Path, n: int, frames: int) -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(find_example() / "example_video.webm"))
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
        for _ in range(frames):
            ok, bgr = cap.read()
            assert ok, "example video is shorter than expected"
            writer.write(cv2.resize(bgr, (640, 360)))
        writer.release()
        paths.append(path)
    cap.release()
    return paths


@pytest.fixture(scope="session")
def cut_clips() -> Callable[[Path, int, int], list[Path]]:
    """cut_clips(folder, n, frames): n consecutive 640x360 MJPEG clips of the example video.

    Short real clips keep multi-video extraction tests to seconds while MediaPipe still sees a person.
    """
    return _cut_clips
