"""Fixtures shared by the tests of spml-core and of the bundled plugins (tests/, plugins/*/tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE_VIDEO = (Path(__file__).resolve().parent / ".." / "shared" / "data" / "streamposeml_example"
                 / "example_video.webm").resolve()


def _cut_clips(folder: Path, n: int, frames: int) -> list[Path]:
    import cv2

    if not EXAMPLE_VIDEO.exists():
        pytest.skip(f"shared test data not found at {EXAMPLE_VIDEO.parent} (clone the project with ../shared beside it)")
    folder.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(EXAMPLE_VIDEO))
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
    """cut_clips(folder, n, frames): n consecutive 640x360 MJPEG clips of the example video (skips without it).

    Short real clips keep multi-video extraction tests to seconds while MediaPipe still sees a person.
    """
    return _cut_clips
