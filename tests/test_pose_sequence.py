"""PoseSequence: validation and the Parquet round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import PoseSequence, load_keypoints, read_keypoint_meta
from spml_core.keypoints.skeleton import LANDMARK_NAMES, landmark_columns, with_derived_joints


def make_sequence(n: int = 5, world: bool = True) -> PoseSequence:
    rng = np.random.default_rng(0)
    xyzv = rng.random((n, 33, 4), dtype=np.float32)
    xyzv[1] = np.nan
    return PoseSequence(
        xyzv=xyzv,
        world=rng.random((n, 33, 3), dtype=np.float32) if world else None,
        frame_index=np.arange(n) * 2,
        timestamps_ms=np.arange(n) * 66.7,
        fps=29.97, width=1280, height=720,
        source={"path": "/videos/clip.mp4", "sha256": "ab" * 32},
        estimator={"name": "mediapipe", "version": "0.10.31/full", "options": {"model": "full"}},
    )


def test_round_trip_is_exact(tmp_path: Path) -> None:
    seq = make_sequence()
    seq.save(tmp_path / "clip.parquet")
    back = load_keypoints(tmp_path / "clip.parquet")
    np.testing.assert_array_equal(back.xyzv, seq.xyzv)
    np.testing.assert_array_equal(back.world, seq.world)
    np.testing.assert_array_equal(back.frame_index, seq.frame_index)
    np.testing.assert_array_equal(back.timestamps_ms, seq.timestamps_ms)
    assert back.source == seq.source and back.estimator == seq.estimator
    assert (back.fps, back.width, back.height) == (29.97, 1280, 720)
    assert back.detected.tolist() == [True, False, True, True, True]
    assert back.name == "clip"
    assert read_keypoint_meta(tmp_path / "clip.parquet")["n_frames"] == 5


def test_round_trip_without_world_and_empty(tmp_path: Path) -> None:
    make_sequence(world=False).save(tmp_path / "a.parquet")
    assert load_keypoints(tmp_path / "a.parquet").world is None
    empty = PoseSequence(xyzv=np.zeros((0, 33, 4)), frame_index=[], timestamps_ms=[], fps=30, width=1, height=1)
    empty.save(tmp_path / "e.parquet")
    assert load_keypoints(tmp_path / "e.parquet").n_frames == 0


def test_frame_table_columns() -> None:
    table = make_sequence().to_frame_table()
    assert list(table.columns[:4]) == ["frame", "timestamp_ms", "nose_x", "nose_y"]
    assert len(table.columns) == 2 + 33 * 4 + 33 * 3
    assert landmark_columns()[-1] == "right_foot_index_visibility"


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValidationError, match=r"xyzv must have shape \(frames, 33, 4\), got \(2, 17, 3\)"):
        PoseSequence(xyzv=np.zeros((2, 17, 3)), frame_index=[0, 1], timestamps_ms=[0, 1], fps=30, width=1, height=1)
    with pytest.raises(ValidationError, match="timestamps_ms has 1 entries for 2 frames"):
        PoseSequence(xyzv=np.zeros((2, 33, 4)), frame_index=[0, 1], timestamps_ms=[0], fps=30, width=1, height=1)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "clip.parquet"
    make_sequence().save(target)
    before = target.read_bytes()
    import pyarrow.parquet as pq

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        make_sequence(n=3).save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.parquet"]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpmlError, match="nope.parquet: keypoint file not found"):
        load_keypoints(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(SpmlError, match="bad.parquet: not a readable Parquet keypoint file"):
        load_keypoints(bad)


def test_derived_joints_are_midpoints() -> None:
    pts = np.zeros((1, 33, 2))
    pts[0, LANDMARK_NAMES.index("left_shoulder")] = (0.2, 0.4)
    pts[0, LANDMARK_NAMES.index("right_shoulder")] = (0.6, 0.4)
    ext = with_derived_joints(pts)
    assert ext.shape == (1, 35, 2)
    np.testing.assert_allclose(ext[0, 33], (0.4, 0.4))


def test_atomic_outputs_get_the_normal_file_mode(tmp_path: Path) -> None:
    import os

    from spml_core.util.atomic import write_text_atomic

    mask = os.umask(0o022)
    os.umask(mask)
    target = write_text_atomic(tmp_path / "out.txt", "x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
