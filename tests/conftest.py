"""Shared fixtures: the real StreamPoseML example (../shared/data or the fetched copy) and its keypoints."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def example_video(example_dir: Path) -> Path:
    """The example video (1280x720, 382 frames, a person stepping)."""
    return example_dir / "example_video.webm"


@pytest.fixture(scope="session")
def example_annotations(example_dir: Path) -> Path:
    """The example video's Dataloop-style annotation file."""
    return example_dir / "example_video.json"


@pytest.fixture(scope="session")
def example_keypoints_dir(example_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keypoints of the example video extracted once per session with the real MediaPipe (full model)."""
    from spml_core.pipeline import run_extract

    out = tmp_path_factory.mktemp("example_keypoints")
    results = run_extract(example_video, out, "mediapipe", {"model": "full"}, quiet=True)
    assert [r.status for r in results] == ["written"], [r.message for r in results]
    return out


@pytest.fixture(scope="session")
def example_keypoints(example_keypoints_dir: Path):
    """The example video's PoseSequence."""
    from spml_core.keypoints.sequence import load_keypoints

    return load_keypoints(example_keypoints_dir / "example_video.parquet")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cwd(tmp_path_factory: pytest.TempPathFactory):
    """Run the tests in an empty folder, so commands that read ./config.yml never see the repo's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        yield
