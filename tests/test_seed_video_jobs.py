"""StreamPoseML's per-video job and build_dataset_from_videos on the facade, on short real clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_process_video_returns_the_sequence_and_writes_files(cut_clips, tmp_path: Path) -> None:
    from stream_pose_ml.jobs.process_video_job import ProcessVideoJob, ProcessVideoJobError

    clip = cut_clips(tmp_path / "videos", 1, 30)[0]
    seq = ProcessVideoJob.process_video(clip.name, str(clip.parent), str(tmp_path / "kp"), str(tmp_path / "seq"),
                                        True, True, {"model_complexity": 0}, False)
    assert seq["type"] == "BlazePoseSequence" and list(seq["frames"]) == [str(n) for n in range(1, 31)]
    frame = seq["frames"]["10"]
    assert frame["has_joint_positions"] and len(frame["angles"]) == 35 and len(frame["distances"]) == 23
    written = json.loads((tmp_path / "seq" / f"{clip.name}_sequence.json").read_text())
    assert written == json.loads(json.dumps(seq))
    assert len(list((tmp_path / "kp" / clip.stem).glob("keypoints-*.json"))) == 30
    with pytest.raises(ProcessVideoJobError, match="No output location specified for keypoints"):
        ProcessVideoJob.process_video(clip.name, str(clip.parent), None, None, True)
    with pytest.raises(ProcessVideoJobError, match="no such video file"):
        ProcessVideoJob.process_video("missing.webm", str(clip.parent), None, None)


def test_build_dataset_from_videos(cut_clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_pose_ml.jobs.build_and_format_dataset_job import BuildAndFormatDatasetJob

    monkeypatch.chdir(tmp_path)  # no config.yml here: the seed schema applies
    clips = cut_clips(tmp_path / "videos", 2, 25)
    ann = tmp_path / "annotations"
    ann.mkdir()
    for clip in clips:
        (ann / f"{clip.stem}.json").write_text(json.dumps({"annotations": [
            {"label": "Left Step", "metadata": {"system": {"frame": 5, "endFrame": 14}}},
            {"label": "Successful Weight Transfer", "metadata": {"system": {"frame": 8, "endFrame": 20}}}]}))
    dataset = BuildAndFormatDatasetJob.build_dataset_from_videos(str(ann), str(tmp_path / "videos"))
    assert [len(v) for v in dataset.all_frames] == [25, 25]
    assert [len(v) for v in dataset.labeled_frames] == [7, 7]  # frames 8..14 carry both classes
    first = dataset.labeled_frames[0][0]
    assert (first["frame"], first["step_type"], first["weight_transfer_type"]) == (8, "Left Step",
                                                                                   "Successful Weight Transfer")
    assert [len(v) for v in BuildAndFormatDatasetJob.build_dataset_from_videos(str(ann), str(tmp_path / "videos"),
                                                                              1).all_frames] == [25]
