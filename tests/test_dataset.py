"""`spml dataset` and build_dataset: the example video end to end, and every bad input with its message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spml_core.cli.main import main
from spml_core.config import AnnotationFields, AnnotationSchema
from spml_core.datasets.build import build_dataset
from spml_core.datasets.io import read_dataset, write_dataset
from spml_core.datasets.report import report_path
from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import PoseSequence, VideoSource
from spml_core.keypoints.skeleton import landmark_columns

CLASSES = ["step_type", "weight_transfer_type"]


# -- helpers ------------------------------------------------------------------------------------

def save_sequence(folder: Path, stem: str, n: int = 40, seed: int = 0, width: int = 640, height: int = 480) -> Path:
    """A synthetic video's keypoints (random landmarks, real file format), saved as <stem>.parquet."""
    rng = np.random.default_rng(seed)
    xyzv = rng.random((n, 33, 4), dtype=np.float32)
    xyzv[3] = np.nan  # a frame without a person
    seq = PoseSequence(
        xyzv=xyzv, frame_index=np.arange(n), timestamps_ms=np.arange(n) * 1000 / 30, fps=30.0,
        width=width, height=height, source=VideoSource(path=f"/videos/{stem}.mp4", sha256="0" * 64),
    )
    return seq.save(folder / f"{stem}.parquet")


def ann(label: str, start: int, end: int) -> dict:
    """One annotation in the Dataloop layout the default schema reads."""
    return {"label": label, "metadata": {"system": {"frame": start, "endFrame": end}}}


def write_annotations(folder: Path, stem: str, anns: list[dict], name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps({"name": name or f"{stem}.mp4", "annotations": anns}, indent=1), encoding="utf-8")
    return path


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two synthetic videos with annotations; the working directory is the project (no config.yml)."""
    kp, an = tmp_path / "keypoints", tmp_path / "annotations"
    kp.mkdir()
    save_sequence(kp, "clip_a", 40, seed=1)
    save_sequence(kp, "clip_b", 30, seed=2, width=1280, height=720)
    write_annotations(an, "clip_a", [ann("Right Step", 2, 10), ann("Successful Weight Transfer", 2, 10),
                                     ann("Left Step", 12, 20)])
    write_annotations(an, "clip_b", [ann("Left Step", 0, 5), ann("Failure Weight Transfer", 0, 5)])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*args: str) -> int:
    return main(["dataset", "--keypoints", "keypoints", "--annotations", "annotations", *args])


def write_config(folder: Path, **schema: object) -> Path:
    import yaml

    base = AnnotationSchema().model_dump(exclude_none=True)
    base.update(schema)
    path = folder / "spml.yml"
    path.write_text(yaml.safe_dump({"annotation_schema": base}), encoding="utf-8")
    return path


# -- the example video (real MediaPipe keypoints) -------------------------------------------------

@pytest.mark.slow
def test_example_video_with_default_config(example_keypoints_dir: Path, example_annotations: Path) -> None:
    df, report = build_dataset(example_keypoints_dir, example_annotations.parent, AnnotationSchema())
    assert len(df) == 382
    assert list(df.columns[:5]) == ["video", "frame", "timestamp_ms", "width", "height"]
    assert list(df.columns[5:-2]) == landmark_columns() and list(df.columns[-2:]) == CLASSES
    assert (df["frame"].to_numpy() == np.arange(382)).all()
    assert (df["width"] == 1280).all() and (df["height"] == 720).all()
    rows = df.set_index("frame")
    assert rows.loc[30, "step_type"] == "Right Step"
    assert rows.loc[30, "weight_transfer_type"] == "Successful Weight Transfer"
    assert rows.loc[60, "step_type"] == "Left Step"
    assert rows.loc[60, "weight_transfer_type"] == "Failure Weight Transfer"
    assert pd.isna(rows.loc[300, "step_type"]) and pd.isna(rows.loc[300, "weight_transfer_type"])
    assert report.annotations_total == 12 and report.annotations_used == 12
    (video,) = report.videos
    assert (video.video, video.frames, video.labeled_frames) == (
        "example_video", 382, {"step_type": 227, "weight_transfer_type": 227})
    assert report.videos_without_annotations == [] and report.annotations_without_videos == []
    # Ranges include both ends: 7-49 labelled, 6 and 50 not.
    assert pd.isna(rows.loc[6, "step_type"]) and rows.loc[7, "step_type"] == "Right Step"
    assert rows.loc[49, "step_type"] == "Right Step" and pd.isna(rows.loc[50, "step_type"])


@pytest.mark.slow
def test_example_video_times_schema_matches_frames(example_keypoints_dir: Path, example_annotations: Path) -> None:
    """Dataloop's times (frame / 29.97) land on the same frames through the video's real timestamps."""
    times = AnnotationSchema(annotation_fields=AnnotationFields(
        label="label", start_time="metadata.system.startTime", end_time="metadata.system.endTime"))
    by_time, report = build_dataset(example_keypoints_dir, example_annotations.parent, times, strict=True)
    by_frame, _ = build_dataset(example_keypoints_dir, example_annotations.parent, AnnotationSchema())
    for cls in CLASSES:
        assert by_time[cls].astype(object).equals(by_frame[cls].astype(object))
    assert report.videos[0].outside == []


@pytest.mark.slow
def test_example_cli_writes_dataset_and_report(example_keypoints_dir: Path, example_annotations: Path,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "example.parquet"
    rc = main(["dataset", "--keypoints", str(example_keypoints_dir), "--annotations",
               str(example_annotations.parent), "--out", str(out), "--labeled-only"])
    assert rc == 0
    df = read_dataset(out)
    assert len(df) == 227 and df[CLASSES].notna().all().all()
    report = json.loads(report_path(out).read_text())
    assert report["annotations_total"] == 12 and report["rows"] == 227
    printed = capsys.readouterr().out
    assert "example_video" in printed and "12/12" in printed and "227 rows (labeled frames only)" in printed


# -- building -------------------------------------------------------------------------------------

def test_columns_types_and_labels(project: Path) -> None:
    save_sequence(project / "keypoints", "clip_c", 10, seed=3)  # no annotations
    df, report = build_dataset("keypoints", "annotations", AnnotationSchema())
    assert len(df) == 80 and df["video"].tolist() == ["clip_a"] * 40 + ["clip_b"] * 30 + ["clip_c"] * 10
    assert df[landmark_columns()].dtypes.eq(np.float32).all()
    assert df["frame"].dtype == np.int64 and df["timestamp_ms"].dtype == np.float64
    assert isinstance(df["step_type"].dtype, pd.CategoricalDtype)
    a = df[df.video == "clip_a"].set_index("frame")
    assert a.loc[2:10, "step_type"].eq("Right Step").all() and pd.isna(a.loc[11, "step_type"])
    assert a.loc[12:20, "step_type"].eq("Left Step").all() and a.loc[12:20, "weight_transfer_type"].isna().all()
    b = df[df.video == "clip_b"]
    assert (b["width"] == 1280).all() and (b["height"] == 720).all()
    assert np.isnan(a.loc[3, "nose_x"])  # no person: NaN kept
    assert report.videos_without_annotations == ["clip_c"]
    assert [v.rows for v in report.videos] == [40, 30, 10]
    assert report.annotations_total == 5


def test_labeled_only_keeps_frames_where_every_class_is_labeled(project: Path) -> None:
    df, report = build_dataset("keypoints", "annotations", AnnotationSchema(), include_unlabeled=False)
    assert len(df) == 9 + 6 and report.rows == 15
    assert df[CLASSES].notna().all().all()


def test_labeled_only_ignores_classes_no_annotation_uses(project: Path) -> None:
    cfg = write_config(project, label_class_mapping={
        "Left Step": "step_type", "Right Step": "step_type", "Successful Weight Transfer": "weight_transfer_type",
        "Failure Weight Transfer": "weight_transfer_type", "Jumping Jack": "movement"})
    assert run_cli("--out", "ds.parquet", "--labeled-only", "--config", str(cfg)) == 0
    df = read_dataset(project / "ds.parquet")
    # clip_a frames 2-10 and clip_b frames 0-5 carry both used classes; 'movement' is empty everywhere.
    assert len(df) == 9 + 6 and df["movement"].isna().all()


def test_name_field_matches_exactly_never_by_substring(project: Path) -> None:
    save_sequence(project / "keypoints", "clip_a_2", 12, seed=4)
    df, report = build_dataset("keypoints", "annotations", AnnotationSchema())
    assert report.videos_without_annotations == ["clip_a_2"]
    assert df[df.video == "clip_a_2"][CLASSES].isna().all().all()


def test_match_by_name_field_when_file_stem_differs(project: Path) -> None:
    (project / "annotations" / "clip_b.json").rename(project / "annotations" / "export_0042.json")
    _, report = build_dataset("keypoints", "annotations", AnnotationSchema())
    assert [v.annotations for v in report.videos] == [str(Path("annotations/clip_a.json")),
                                                      str(Path("annotations/export_0042.json"))]


def test_sequence_json_input_aligns_like_parquet(project: Path) -> None:
    from spml_core.keypoints.sequence import load_keypoints
    from spml_core.keypoints.streamposeml import write_streamposeml

    seqdir = project / "sequences"
    for stem in ("clip_a", "clip_b"):
        write_streamposeml(load_keypoints(project / "keypoints" / f"{stem}.parquet"), project,
                           sequences_dir=seqdir, write_keypoints=False)
    assert sorted(p.name for p in seqdir.iterdir()) == ["clip_a.mp4_sequence.json", "clip_b.mp4_sequence.json"]
    from_json, _ = build_dataset(seqdir, "annotations", AnnotationSchema())
    from_parquet, _ = build_dataset("keypoints", "annotations", AnnotationSchema())
    assert from_json["frame"].tolist() == from_parquet["frame"].tolist()
    for cls in CLASSES:
        assert from_json[cls].astype(object).equals(from_parquet[cls].astype(object))
    xyz = [c for c in landmark_columns() if not c.endswith("_visibility")]
    np.testing.assert_allclose(from_json[xyz].to_numpy(), from_parquet[xyz].to_numpy(), atol=1e-6)
    assert from_json["nose_visibility"].isna().all()


def test_parquet_preferred_over_sequence_json_of_the_same_video(project: Path) -> None:
    from spml_core.datasets.plan import find_keypoint_files
    from spml_core.keypoints.sequence import load_keypoints
    from spml_core.keypoints.streamposeml import write_streamposeml

    write_streamposeml(load_keypoints(project / "keypoints" / "clip_a.parquet"), project / "keypoints",
                       write_keypoints=False)
    found = find_keypoint_files(project / "keypoints")
    assert found == {"clip_a": project / "keypoints" / "clip_a.parquet",
                     "clip_b": project / "keypoints" / "clip_b.parquet"}


def test_dataset_round_trips_through_csv_and_parquet(project: Path) -> None:
    df, _ = build_dataset("keypoints", "annotations", AnnotationSchema())
    for name in ("d.csv", "d.parquet"):
        write_dataset(df, project / name)
        back = read_dataset(project / name)
        assert back.shape == df.shape
        for cls in CLASSES:
            assert back[cls].astype(object).where(back[cls].notna(), None).tolist() == \
                df[cls].astype(object).where(df[cls].notna(), None).tolist()
        np.testing.assert_allclose(back["nose_x"].to_numpy(np.float64), df["nose_x"].to_numpy(np.float64),
                                   rtol=1e-6)
    line = (project / "d.csv").read_text().splitlines()[1]
    assert line.endswith(",,")  # frame 0 of clip_a: both class cells empty


# -- the CLI and its bad inputs ----------------------------------------------------------------------

def test_cli_writes_parquet_and_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--out", "annotations/ds.parquet") == 0  # its report lands among the annotations ...
    assert run_cli("--out", "data/ds.parquet") == 0  # ... and is not read as one
    assert len(pd.read_parquet(project / "data" / "ds.parquet")) == 70
    report = json.loads((project / "data" / "ds.parquet.report.json").read_text())
    assert report["annotations_total"] == 5 and [v["video"] for v in report["videos"]] == ["clip_a", "clip_b"]
    assert "clip_a" in capsys.readouterr().out


def test_unformatted_rebuild_removes_a_stale_feature_spec(project: Path) -> None:
    out = project / "data" / "ds.parquet"
    assert run_cli("--out", str(out), "--features", "angles", "--strategy", "none") == 0
    spec = out.with_name(out.name + ".spec.json")
    assert spec.exists()
    assert run_cli("--out", str(out)) == 0
    assert not spec.exists()


def _existing_output(project: Path) -> tuple[Path, bytes, bytes]:
    out = project / "ds.csv"
    assert run_cli("--out", "ds.csv", "-q") == 0
    return out, out.read_bytes(), report_path(out).read_bytes()


def _assert_unchanged(project: Path, out: Path, data: bytes, report: bytes) -> None:
    assert out.read_bytes() == data and report_path(out).read_bytes() == report
    assert not [p for p in project.iterdir() if p.name.endswith(".part")]


def _fails_with(project: Path, capsys: pytest.CaptureFixture[str], message: str, *args: str,
                break_inputs=None) -> None:
    """An existing dataset and report are left byte for byte unchanged by a failing run."""
    out, data, report = _existing_output(project)
    if break_inputs:
        break_inputs()
    capsys.readouterr()
    assert run_cli("--out", "ds.csv", *args) == 1
    err = capsys.readouterr().err
    assert f"spml: error: {message}" in err, err
    _assert_unchanged(project, out, data, report)


def test_invalid_json_fails_with_line_and_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, data, report = _existing_output(project)
    (project / "annotations" / "clip_b.json").write_text('{"annotations": [\n  {"label": "Left Step"\n]}')
    assert run_cli("--out", "ds.csv") == 1
    err = capsys.readouterr().err
    assert f"spml: error: {Path('annotations/clip_b.json')}: invalid JSON at line 3, column 1: Expecting ',' delimiter" in err
    _assert_unchanged(project, out, data, report)


def test_missing_dot_path_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"label": "Left Step", "metadata": {"system": {"frame": 1}}}
    out, data, report = _existing_output(project)
    write_annotations(project / "annotations", "clip_b", [ann("Left Step", 0, 2), bad])
    assert run_cli("--out", "ds.csv") == 1
    assert (f"{Path('annotations/clip_b.json')}: annotation 1 ('Left Step'): missing key "
            "'metadata.system.endFrame' (annotation_fields.end_frame)") in capsys.readouterr().err
    _assert_unchanged(project, out, data, report)


def test_start_after_end(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, data, report = _existing_output(project)
    write_annotations(project / "annotations", "clip_b", [ann("Left Step", 9, 4)])
    assert run_cli("--out", "ds.csv") == 1
    assert (f"{Path('annotations/clip_b.json')}: annotation 0 ('Left Step'): start 9 ('metadata.system.frame') "
            "is after end 4 ('metadata.system.endFrame')") in capsys.readouterr().err
    _assert_unchanged(project, out, data, report)


def test_ranges_past_last_frame_clipped_and_reported_or_strict_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_annotations(project / "annotations", "clip_b", [ann("Left Step", 25, 45), ann("Right Step", 50, 60)])
    assert run_cli("--out", "ok.parquet") == 0
    printed = capsys.readouterr().out
    assert "clipped in clip_b: annotation 0 (Left Step, frames 25-45)" in printed
    assert "outside in clip_b: annotation 1 (Right Step, frames 50-60)" in printed
    report = json.loads((project / "ok.parquet.report.json").read_text())
    b = report["videos"][1]
    assert [o["kind"] for o in b["outside"]] == ["clipped", "outside"] and b["labeled_frames"]["step_type"] == 5
    _fails_with(project, capsys,
                f"{Path('annotations/clip_b.json')}: annotation ranges reach past the video's keypoints "
                "(last frame 29 (0.967 s)): frames 25-45 of annotation 0 ('Left Step') is clipped; "
                "frames 50-60 of annotation 1 ('Right Step') is outside", "--strict")


def test_unknown_labels_reported_ignored_or_strict_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_annotations(project / "annotations", "clip_b", [ann("Left Step", 0, 5), ann("Jump", 3, 9)])
    assert run_cli("--out", "ok.csv") == 0
    assert "unknown labels in clip_b (ignored): Jump (1x)" in capsys.readouterr().out
    report = json.loads((project / "ok.csv.report.json").read_text())
    assert report["videos"][1]["unknown_labels"] == {"Jump": 1}
    _fails_with(project, capsys,
                f"{Path('annotations/clip_b.json')}: labels not in annotation_schema.label_class_mapping: "
                "'Jump' (1x) (add them to the mapping, or drop --strict to ignore them)", "--strict")


def test_annotation_file_matching_no_video(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_annotations(project / "annotations", "clip_z", [ann("Left Step", 0, 5)], name="clip_zz.webm")
    assert run_cli("--out", "ok.csv") == 0
    printed = capsys.readouterr().out
    assert f"annotation files matching no video (1): {Path('annotations/clip_z.json')}" in printed
    assert json.loads((project / "ok.csv.report.json").read_text())["annotations_without_videos"] == [
        str(Path("annotations/clip_z.json"))]
    _fails_with(project, capsys,
                f"{Path('annotations/clip_z.json')}: matches no keypoint file (looked for 'clip_zz' or 'clip_z' "
                "in keypoints)", "--strict")


def test_no_annotation_file_matches_any_video(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for p in (project / "annotations").iterdir():
        p.rename(p.with_name("other_" + p.name))
        data = json.loads(p.with_name("other_" + p.name).read_text())
        data["name"] = "other.mp4"
        p.with_name("other_" + p.name).write_text(json.dumps(data))
    assert run_cli("--out", "ds.csv") == 1
    assert ("none of the 2 annotation files in annotations matches a keypoint file in keypoints "
            "(annotations name ['other', 'other_clip_a', 'other_clip_b'], keypoints are ['clip_a', 'clip_b']); "
            "names must be equal video stems") in capsys.readouterr().err
    assert not (project / "ds.csv").exists()


def test_two_annotation_files_for_one_video(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(project, capsys, f"{Path('annotations/copy_of_a.json')}: annotations for video 'clip_a' also in "
                f"{Path('annotations/clip_a.json')}; keep one file per video",
                break_inputs=lambda: write_annotations(project / "annotations", "copy_of_a",
                                                       [ann("Left Step", 0, 5)], name="clip_a.mp4"))


def test_same_class_conflict_error_or_keep_later(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_annotations(project / "annotations", "clip_b",
                      [ann("Left Step", 0, 12), ann("Right Step", 10, 20), ann("Failure Weight Transfer", 0, 20)])
    keep = write_config(project, on_conflict="keep_later")
    assert run_cli("--out", "kept.parquet", "--config", str(keep)) == 0
    assert "conflict in clip_b: step_type frames 10-12: Left Step, Right Step -> kept Right Step" in \
        capsys.readouterr().out
    b = pd.read_parquet(project / "kept.parquet").query("video == 'clip_b'").set_index("frame")
    assert b.loc[9, "step_type"] == "Left Step" and b.loc[10:20, "step_type"].eq("Right Step").all()
    conflicts = json.loads((project / "kept.parquet.report.json").read_text())["videos"][1]["conflicts"]
    assert conflicts == [{"cls": "step_type", "first_frame": 10, "last_frame": 12, "frames": 3,
                          "labels": ["Left Step", "Right Step"], "annotations": [0, 1], "kept": "Right Step"}]
    error = write_config(project, on_conflict="error")
    _fails_with(project, capsys,
                f"{Path('annotations/clip_b.json')}: conflicting labels for class 'step_type' on frames 10-12: "
                "'Left Step', 'Right Step' (annotations 0, 1). Fix the annotations, or set "
                "annotation_schema.on_conflict: keep_later to keep the later one", "--config", str(error))


def test_config_yml_in_working_directory_is_used(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(project, label_class_mapping={"Left Step": "foot", "Right Step": "foot"})
    cfg.rename(project / "config.yml")
    assert run_cli("--out", "ds.parquet") == 0
    assert "annotation_schema from config.yml" in capsys.readouterr().err
    df = pd.read_parquet(project / "ds.parquet")
    assert list(df.columns[-1:]) == ["foot"] and "step_type" not in df.columns


def test_unknown_output_extension(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--out", "ds.xlsx") == 1
    assert "spml: error: ds.xlsx: unknown dataset format '.xlsx' (use .parquet or .csv)" in capsys.readouterr().err
    assert not (project / "ds.xlsx").exists() and not (project / "ds.xlsx.report.json").exists()


def test_missing_folders_and_foreign_parquet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "--keypoints", "nope", "--annotations", "annotations", "--out", "d.csv"]) == 1
    assert "spml: error: nope: keypoints folder not found" in capsys.readouterr().err
    pd.DataFrame({"a": [1]}).to_parquet(project / "keypoints" / "clip_c.parquet")
    assert run_cli("--out", "d.csv") == 1
    assert ("clip_c.parquet: Parquet file has no spml keypoint metadata (not written by `spml extract`?)"
            in capsys.readouterr().err)
    (project / "keypoints" / "clip_c.parquet").write_bytes(b"PAR1 truncated")
    assert run_cli("--out", "d.csv") == 1
    assert "clip_c.parquet: not a readable Parquet file" in capsys.readouterr().err


def test_never_a_partly_written_output(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that dies half-way (disk full) leaves the previous dataset intact and no temp file."""
    import pyarrow.csv as pacsv

    out, data, report = _existing_output(project)
    real = pacsv.write_csv

    def dies_half_way(table, path, *a, **k):
        real(table.slice(0, 5), path, *a, **k)  # some bytes reach the disk ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(pacsv, "write_csv", dies_half_way)
    df, _ = build_dataset("keypoints", "annotations", AnnotationSchema())
    with pytest.raises(SpmlError, match="ds.csv: cannot write dataset \\(No space left on device\\)"):
        write_dataset(df, out)
    _assert_unchanged(project, out, data, report)


def test_spml_run_dataset_stage(project: Path) -> None:
    import yaml

    (project / "config.yml").write_text(yaml.safe_dump({
        "pipeline": {"dataset": {"keypoints": "keypoints", "annotations": "annotations",
                                 "out": "data/dataset.csv", "include_unlabeled": False}},
    }))
    assert main(["run", str(project / "config.yml")]) == 0
    df = pd.read_csv(project / "data" / "dataset.csv")
    assert len(df) == 15 and set(df["step_type"]) == {"Right Step", "Left Step"}
    assert (project / "data" / "dataset.csv.report.json").exists()


def test_csv_blocks_are_the_bytes_of_one_pyarrow_write(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from spml_core.datasets.io import write_csv_blocks

    rng = np.random.default_rng(0)
    n = 1000
    table = pa.table({
        "video": pa.array([f'clip "{i % 7}", take 2' for i in range(n)]),
        "frame": pa.array(np.arange(n)),
        "x": pa.array(rng.random(n, dtype=np.float32)),
        "label": pa.array([None if i % 3 else "Left Step" for i in range(n)]),
    })
    pacsv.write_csv(table, tmp_path / "one.csv")
    for rows in (1, 7, 999, 1000, 4096):  # blocks of one row, uneven blocks, one block
        write_csv_blocks(table, tmp_path / "blocks.csv", block_rows=rows)
        assert (tmp_path / "blocks.csv").read_bytes() == (tmp_path / "one.csv").read_bytes(), rows
    empty = table.slice(0, 0)
    write_csv_blocks(empty, tmp_path / "empty.csv")
    pacsv.write_csv(empty, tmp_path / "empty-one.csv")
    assert (tmp_path / "empty.csv").read_bytes() == (tmp_path / "empty-one.csv").read_bytes()
