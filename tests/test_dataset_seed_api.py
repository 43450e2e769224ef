"""StreamPoseML's BuildAndFormatDatasetJob.build_dataset_from_data_files, on spml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stream_pose_ml.jobs.build_and_format_dataset_job import BuildAndFormatDatasetJob, BuildAndFormatDatasetJobError

CLASSES = ["step_type", "weight_transfer_type"]


@pytest.mark.slow
def test_seed_calls_on_process_videos_output(example_video: Path, example_annotations: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed notebook's two calls, in a folder without config.yml (the seed schema applies)."""
    import stream_pose_ml.jobs.process_videos_job as pv

    monkeypatch.chdir(tmp_path)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / example_video.name).symlink_to(example_video)
    pv.ProcessVideosJob().process_videos(
        src_videos_path=str(videos), output_keypoints_data_path=str(tmp_path / "keypoints"),
        output_sequence_data_path=str(tmp_path / "sequences"), write_keypoints_to_file=False,
        write_serialized_sequence_to_file=True, limit=None, configuration={"model_complexity": 0},
        preprocess_video=False, return_output=False,
    )
    listed = sorted(p.name for p in (tmp_path / "sequences").iterdir() if not p.name.startswith("."))
    assert listed == ["example_video.parquet", "example_video.webm_sequence.json"]
    build = BuildAndFormatDatasetJob().build_dataset_from_data_files
    from_parquet = build(annotations_data_directory=str(example_annotations.parent),
                         sequence_data_directory=str(tmp_path / "sequences"), limit=None)
    assert from_parquet.report.videos[0].keypoints.endswith("example_video.parquet")
    # Only the StreamPoseML sequence JSON left: the seed's own input format.
    (tmp_path / "sequences" / "example_video.parquet").unlink()
    dataset = build(
        annotations_data_directory=str(example_annotations.parent),
        sequence_data_directory=str(tmp_path / "sequences"),
        limit=None,
    )
    assert dataset.report.videos[0].keypoints.endswith("example_video.webm_sequence.json")
    for cls in CLASSES:
        assert dataset.frames[cls].astype(object).equals(from_parquet.frames[cls].astype(object))
    np.testing.assert_allclose(dataset.frames["nose_x"], from_parquet.frames["nose_x"], atol=1e-6)
    assert len(dataset.frames) == 382
    assert [len(v) for v in dataset.labeled_frames] == [227] and [len(v) for v in dataset.unlabeled_frames] == [155]
    assert dataset.labeled_frames[0][0]["video"] == "example_video"  # StreamPoseML's per-video lists of dicts
    rows = dataset.frames.set_index("frame")
    assert rows.loc[30, "step_type"] == "Right Step"
    assert rows.loc[30, "weight_transfer_type"] == "Successful Weight Transfer"
    assert rows.loc[60, "step_type"] == "Left Step" and rows.loc[60, "weight_transfer_type"] == "Failure Weight Transfer"
    assert rows.loc[300, CLASSES].isna().all()
    assert dataset.report.annotations_total == 12
    assert (dataset.frames["width"] == 1280).all() and (dataset.frames["height"] == 720).all()
    assert dataset.frames["nose_x"].between(0, 1).all()


def _synthetic(tmp_path: Path) -> tuple[Path, Path]:
    from spml_core.keypoints.sequence import PoseSequence, VideoSource
    from spml_core.keypoints.streamposeml import write_streamposeml

    seqs, anns = tmp_path / "sequences", tmp_path / "annotations"
    anns.mkdir()
    for i, stem in enumerate(["a", "b", "c"]):
        rng = np.random.default_rng(i)
        seq = PoseSequence(xyzv=rng.random((20, 33, 4), dtype=np.float32), frame_index=np.arange(20),
                           timestamps_ms=np.arange(20) * 40.0, fps=25.0, width=320, height=240,
                           source=VideoSource(path=f"{stem}.mp4", sha256=f"{i}" * 64))
        write_streamposeml(seq, tmp_path, sequences_dir=seqs, write_keypoints=False)
        (anns / f"{stem}.json").write_text(json.dumps({"annotations": [
            {"tag": "jump", "span": {"from": 2, "to": 5}}, {"tag": "sit", "span": {"from": 10, "to": 12}}]}))
    return seqs, anns


def test_schema_from_config_yml_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seqs, anns = _synthetic(tmp_path)
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"annotation_schema": {
        "annotation_fields": {"label": "tag", "start_frame": "span.from", "end_frame": "span.to"},
        "label_class_mapping": {"jump": "action", "sit": "action"}}}))
    monkeypatch.chdir(tmp_path)
    dataset = BuildAndFormatDatasetJob().build_dataset_from_data_files(
        annotations_data_directory="annotations", sequence_data_directory="sequences")
    assert len(dataset.frames) == 60 and len(dataset.frames[dataset.labeled_mask]) == 3 * 7
    # StreamPoseML's kind: a list per video of frame dicts
    assert [len(v) for v in dataset.all_frames] == [20, 20, 20] and sum(map(len, dataset.labeled_frames)) == 21
    assert dataset.all_frames[0][2]["frame_number"] == 3 and dataset.all_frames[0][2]["action"] == "jump"
    a = dataset.frames[dataset.frames.video == "a"].set_index("frame")["action"]
    assert a.loc[2:5].eq("jump").all() and a.loc[10:12].eq("sit").all() and pd.isna(a.loc[6])


def test_explicit_config_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seqs, anns = _synthetic(tmp_path)
    cfg = tmp_path / "elsewhere.yml"
    cfg.write_text(yaml.safe_dump({"annotation_schema": {
        "annotation_fields": {"label": "tag", "start_frame": "span.from", "end_frame": "span.to"},
        "label_class_mapping": {"jump": "move", "sit": "rest"}}}))
    monkeypatch.chdir(tmp_path)
    dataset = BuildAndFormatDatasetJob().build_dataset_from_data_files(
        annotations_data_directory=anns, sequence_data_directory=seqs, limit=2, config=cfg)
    assert dataset.frames["video"].unique().tolist() == ["a", "b"]
    assert dataset.classes == ["move", "rest"]
    # StreamPoseML's rule: labeled means every class column is set; no frame has both here.
    assert dataset.labeled_frames == [[], []] and [len(v) for v in dataset.unlabeled_frames] == [20, 20]


def test_seed_schema_without_config_and_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seqs, anns = _synthetic(tmp_path)
    monkeypatch.chdir(tmp_path)
    from spml_core.errors import SpmlError

    with pytest.raises(SpmlError, match=r"annotations/a.json: annotation 0: missing key 'label'"):
        BuildAndFormatDatasetJob().build_dataset_from_data_files(
            annotations_data_directory="annotations", sequence_data_directory="sequences")
    with pytest.raises(BuildAndFormatDatasetJobError, match="sequence_data_directory is required"):
        BuildAndFormatDatasetJob().build_dataset_from_data_files(annotations_data_directory="annotations")
    with pytest.raises(BuildAndFormatDatasetJobError, match="limit must be a positive number of videos, got 0"):
        BuildAndFormatDatasetJob().build_dataset_from_data_files(
            annotations_data_directory="annotations", sequence_data_directory="sequences", limit=0)
