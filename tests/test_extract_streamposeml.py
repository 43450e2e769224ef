"""StreamPoseML's JSON layout (`spml extract --format streamposeml`) and the seed's
`ProcessVideosJob.process_videos` facade, on the real example video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spml_core.cli.main import main
from spml_core.keypoints.sequence import load_keypoints
from spml_core.keypoints.skeleton import EXTENDED_NAMES, LANDMARK_NAMES
from spml_core.keypoints.streamposeml import sequence_json_path, write_streamposeml

FRAMES = 12


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def legacy_dir(example_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first frames of the example video extracted with --format streamposeml."""
    out = tmp_path_factory.mktemp("streamposeml")
    argv = ["extract", str(example_video), "--out", str(out), "--model", "lite", "--format", "streamposeml",
            "-o", f"max_frames={FRAMES}"]
    assert main(argv) == 0
    return out


def test_layout(legacy_dir: Path) -> None:
    kp_dir = legacy_dir / "keypoints" / "example_video"
    assert sorted(p.name for p in kp_dir.iterdir()) == [f"keypoints-{n:04d}.json" for n in range(1, FRAMES + 1)]
    seq_path = legacy_dir / "sequences" / "example_video.webm_sequence.json"
    assert sequence_json_path(legacy_dir, "example_video.webm") == seq_path
    assert (legacy_dir / "example_video.parquet").exists()
    assert not [p for p in legacy_dir.rglob(".*") if ".part" in p.name or ".old-" in p.name]  # no temporaries


def test_sequence_file_shape(legacy_dir: Path) -> None:
    data = load_json(legacy_dir / "sequences" / "example_video.webm_sequence.json")
    assert (data["name"], data["type"]) == ("example_video.webm", "BlazePoseSequence")
    assert list(data["frames"]) == [str(n) for n in range(1, FRAMES + 1)]  # 1-based, StreamPoseML's convention
    frame = data["frames"]["1"]
    assert frame["type"] == "BlasePoseFrame" and frame["sequence_source"] == "mediapipe"
    assert frame["frame_number"] == 1 and frame["has_joint_positions"] is True
    assert frame["image_dimensions"] == {"height": 720, "width": 1280}
    assert list(frame["joint_positions"]) == list(EXTENDED_NAMES)  # 33 + neck + mid_hip
    nose = frame["joint_positions"]["nose"]
    assert set(nose) == {"type", "name", "image_dimensions", "x", "y", "z", "x_normalized", "y_normalized",
                         "z_normalized"}
    # StreamPoseML's angle/distance records, so its own dataset job reads these features from the file.
    assert len(frame["angles"]) == 35 and len(frame["distances"]) == 23
    knee = frame["angles"]["left_hip_left_knee_to_left_knee_left_ankle"]
    assert set(knee) == {"type", "vector_1", "vector_2", "name", "angle_2d", "angle_2d_degrees", "angle_3d",
                         "angle_3d_degrees"}
    assert (knee["vector_1"], knee["vector_2"]) == ("left_hip_left_knee", "left_knee_left_ankle")
    assert abs(np.degrees(knee["angle_2d"]) - knee["angle_2d_degrees"]) < 1e-4
    wrist = frame["distances"]["left_wrist_to_plumb_line"]
    assert (wrist["type"], wrist["joint_name"], wrist["vector_name"]) == ("Distance", "left_wrist", "plumb_line")
    assert 0 < wrist["distance_2d"] <= wrist["distance_3d"] and wrist["distance_2d_normalized"] > 0


def test_sequence_angles_and_distances_are_spml_features(legacy_dir: Path) -> None:
    from spml_core.features.angles import SegmentAngles
    from spml_core.features.distances import PlumbLineDistances

    seq = load_keypoints(legacy_dir / "example_video.parquet")
    frames = load_json(legacy_dir / "sequences" / "example_video.webm_sequence.json")["frames"]
    angles = SegmentAngles({"mode": "2d"})
    a = angles.transform(seq.xyzv, seq.width, seq.height)
    d = PlumbLineDistances({"mode": "2d"}).transform(seq.xyzv, seq.width, seq.height)
    for i in range(FRAMES):
        got_a = [v["angle_2d_degrees"] for v in frames[str(i + 1)]["angles"].values()]
        got_d = [v["distance_2d_normalized"] for v in frames[str(i + 1)]["distances"].values()]
        np.testing.assert_allclose(got_a, a[i], atol=1e-5)
        np.testing.assert_allclose(got_d, d[i], atol=1e-5)


def test_per_frame_file_shape(legacy_dir: Path) -> None:
    kp = load_json(legacy_dir / "keypoints" / "example_video" / "keypoints-0003.json")
    assert kp["frame_number"] == 3 and kp["sequence_source"] == "mediapipe"
    assert list(kp["joint_positions"]) == list(LANDMARK_NAMES)
    assert set(kp["joint_positions"]["left_wrist"]) == {"x", "y", "z", "x_normalized", "y_normalized", "z_normalized"}


def test_values_match_parquet_with_correct_normalisation(legacy_dir: Path) -> None:
    seq = load_keypoints(legacy_dir / "example_video.parquet")
    frames = load_json(legacy_dir / "sequences" / "example_video.webm_sequence.json")["frames"]
    w, h = seq.width, seq.height
    for i in range(FRAMES):
        joints = frames[str(i + 1)]["joint_positions"]
        xyz = seq.xyzv[i, :, :3]
        assert joints["nose"]["x"] == pytest.approx(float(xyz[0, 0]), abs=1e-6)
        lh, rh = xyz[23, :2] * (w, h), xyz[24, :2] * (w, h)
        mid, width = (lh + rh) / 2, np.linalg.norm(lh - rh)
        # (x - mid_hip_x) / hip_width in pixels, not StreamPoseML's x / hip_width - mid_hip_x.
        expected = (xyz[0, :2] * (w, h) - mid) / width
        assert [joints["nose"]["x_normalized"], joints["nose"]["y_normalized"]] == pytest.approx(expected, abs=2e-6)
        assert joints["mid_hip"]["x_normalized"] == pytest.approx(0, abs=1e-6)
        left, right = joints["left_hip"], joints["right_hip"]
        assert np.hypot(left["x_normalized"] - right["x_normalized"],
                        left["y_normalized"] - right["y_normalized"]) == pytest.approx(1, abs=1e-5)
        assert joints["neck"]["y"] == pytest.approx(float(xyz[11:13, 1].mean()), abs=1e-6)


def test_rerun_skips_until_the_legacy_files_are_missing(legacy_dir: Path, example_video: Path, capsys) -> None:
    argv = ["extract", str(example_video), "--out", str(legacy_dir), "--model", "lite", "--format", "streamposeml",
            "-o", f"max_frames={FRAMES}"]
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    seq_json = legacy_dir / "sequences" / "example_video.webm_sequence.json"
    before = seq_json.read_text()
    seq_json.unlink()
    assert main(argv) == 0
    assert seq_json.read_text() == before  # deterministic: same sequence_id, same values


def test_frames_without_a_person_are_empty(tmp_path: Path) -> None:
    from spml_core.keypoints.sequence import PoseSequence, VideoSource

    xyzv = np.full((3, 33, 4), np.nan, np.float32)
    xyzv[1] = 0.5
    seq = PoseSequence(xyzv=xyzv, frame_index=[4, 5, 6], timestamps_ms=[0, 1, 2], fps=30, width=10, height=10,
                       source=VideoSource(path="clip.mp4", sha256="ab" * 32))
    written = write_streamposeml(seq, tmp_path)
    frames = load_json(Path(written["sequence_json"]))["frames"]
    assert list(frames) == ["5", "6", "7"]
    assert frames["5"]["has_joint_positions"] is False and frames["5"]["joint_positions"] == {}
    # Coinciding hips: normalised coordinates are null, not a division error.
    assert frames["6"]["joint_positions"]["nose"]["x_normalized"] is None
    assert frames["6"]["joint_positions"]["nose"]["x"] == 0.5


# -- the seed facade ---------------------------------------------------------------------
def test_seed_process_videos_call(example_video: Path, tmp_path: Path) -> None:
    import stream_pose_ml.jobs.process_videos_job as pv

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "example_video.webm").symlink_to(example_video)
    kp, seqs = tmp_path / "keypoints", tmp_path / "sequences"
    result = pv.ProcessVideosJob().process_videos(
        src_videos_path=str(videos),
        output_keypoints_data_path=str(kp),
        output_sequence_data_path=str(seqs),
        write_keypoints_to_file=True,
        write_serialized_sequence_to_file=True,
        limit=None,
        configuration={"model_complexity": 0, "max_frames": 8},
        preprocess_video=True,
        return_output=False,
    )
    assert result == {"keypoints_path": str(kp), "sequence_path": str(seqs)}
    assert len(list((kp / "example_video").glob("keypoints-*.json"))) == 8
    sequence = load_json(seqs / "example_video.webm_sequence.json")
    assert len(sequence["frames"]) == 8
    meta = load_keypoints(seqs / "example_video.parquet").estimator
    assert meta.options["model"] == "lite" and meta.options["clahe"] is True

    returned = pv.ProcessVideosJob().process_videos(
        src_videos_path=str(videos), configuration={"model": "lite", "max_frames": 8}, preprocess_video=True,
    )
    assert returned == [sequence]


def test_seed_facade_errors(tmp_path: Path) -> None:
    import stream_pose_ml.jobs.process_videos_job as pv

    job = pv.ProcessVideosJob()
    with pytest.raises(pv.ProcessVideosJobError, match="src_videos_path is required"):
        job.process_videos()
    with pytest.raises(pv.ProcessVideosJobError, match="needs output_keypoints_data_path"):
        job.process_videos(src_videos_path=str(tmp_path), write_keypoints_to_file=True)
    with pytest.raises(pv.ProcessVideosJobError, match="model_complexity: expected 0, 1 or 2"):
        job.process_videos(src_videos_path=str(tmp_path), configuration={"model_complexity": 5})
