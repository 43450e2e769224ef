"""spml predict on the real example: batch rows equal the live path, the CLI's outputs, resuming, exports that
the interchange parsers read back as the same bouts, decisions, videos, and every bad-input message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spml_core
from spml_core.cli.main import main
from spml_core.config import AnnotationSchema
from spml_core.datasets.annotations import row_ranges
from spml_core.errors import SpmlError
from spml_core.registry import Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> Path:
    """A small logistic-regression bundle trained on the example (window 10, the default features)."""
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    root = tmp_path_factory.mktemp("predict_bundle")
    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    ds = write_dataset(frames, root / "example.parquet")
    train(ds, "step_type", root / "bundle", "logistic_regression", n_splits=3, quiet=True)
    return root / "bundle"


@pytest.fixture(scope="module")
def predicted(bundle: Path, example_keypoints_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predicted")
    rc = main(["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(out), "--csv",
               "--export", "elan,labelstudio", "--export", "dataloop", "--export", "boris", "--quiet"])
    assert rc == 0
    return out


def test_predict_sequence_equals_the_live_path(bundle: Path, example_keypoints) -> None:
    predictor = spml_core.load_bundle(bundle)
    seq = example_keypoints.model_copy(deep=True)
    seq.xyzv[200:230] = np.nan  # nobody in frames 200-229
    table = predictor.predict_sequence(seq)
    stream = predictor.new_stream(seq.width, seq.height)
    cols = [f"p_{c}" for c in predictor.classes]
    previous = None
    for i in range(seq.n_frames):
        live = stream.push(seq.xyzv[i], float(seq.timestamps_ms[i])) or previous
        previous = live
        row = table.iloc[i]
        assert row.status == live["status"], i
        if live["status"] == "ok":
            assert row.label == live["label"], i
            np.testing.assert_allclose(row[cols].to_numpy(float),
                                       [live["probabilities"][c] for c in predictor.classes], atol=1e-6)
        else:
            assert pd.isna(row.label), i
    assert table.status.iloc[0] == "warming_up" and "no_person" in set(table.status[200:230])
    assert (table.status[230:] == "ok").sum() > 100 and (table.status[:200] == "ok").sum() > 100
    assert table["frame"].tolist() == seq.frame_index.tolist()


def test_cli_outputs_and_resume(predicted: Path, bundle: Path, example_keypoints_dir: Path, capsys) -> None:
    stem = "example_video"
    table = pd.read_parquet(predicted / f"{stem}.predictions.parquet")
    assert list(table.columns) == ["frame", "timestamp_ms", "label", "status", "p_Left Step", "p_Right Step"]
    assert len(table) == 382 and {"ok", "warming_up"} <= set(table.status) <= {"ok", "warming_up", "unknown"}
    assert table.label.notna().tolist() == (table.status == "ok").tolist()
    csv = pd.read_csv(predicted / f"{stem}.predictions.csv")
    assert csv["label"].fillna("").tolist() == table["label"].fillna("").tolist()
    bouts = pd.read_csv(predicted / f"{stem}.bouts.csv")
    assert bouts["frames"].sum() == (table.status == "ok").sum()
    same = bouts["class"].to_numpy()[1:] == bouts["class"].to_numpy()[:-1]
    gap = bouts["start_frame"].to_numpy()[1:] > bouts["end_frame"].to_numpy()[:-1] + 1
    assert (gap[same]).all()  # runs are maximal: two bouts of one class have unlabelled frames between them
    summary = json.loads((predicted / "summary.json").read_text())
    assert summary["inputs"][0]["status"] == "written"
    assert summary["totals"]["Left Step"]["bouts"] == (bouts["class"] == "Left Step").sum()
    assert (predicted / f"{stem}.timeline.png").read_bytes()[:4] == b"\x89PNG"
    before = (predicted / f"{stem}.predictions.parquet").stat().st_mtime_ns
    args = ["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(predicted), "--csv",
            "--export", "elan,labelstudio,dataloop,boris", "--json", "--quiet"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "skipped"
    assert (predicted / f"{stem}.predictions.parquet").stat().st_mtime_ns == before
    # Asking for another output is not current: predicted again.
    assert main(args[:-4] + ["--export", "elan", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "written"


def _frames_of(va, seq, schema) -> list[tuple[str, int, int]]:
    lo, hi, _, outside = row_ranges(va.annotations, seq.frame_index, seq.timestamps_ms)
    assert not outside.any()
    return sorted((a.label, int(seq.frame_index[a0]), int(seq.frame_index[b0 - 1]))
                  for a, a0, b0 in zip(va.annotations, lo, hi))


@pytest.mark.parametrize("fmt,suffix,parser", [("elan", ".eaf", "elan"), ("dataloop", ".dataloop.json", "json"),
                                                ("labelstudio", ".labelstudio.json", "labelstudio_video"),
                                                ("boris", ".boris.tsv", "boris")])
def test_exports_read_back_as_the_same_bouts(predicted: Path, example_keypoints, fmt, suffix, parser) -> None:
    bouts = pd.read_csv(predicted / f"example_video.bouts.csv")
    expected = sorted(zip(bouts["class"], bouts["start_frame"].astype(int), bouts["end_frame"].astype(int)))
    schema = AnnotationSchema(label_class_mapping={"Left Step": "step_type", "Right Step": "step_type"})
    va = Registry().load().create("annotation_parser", parser).parse(predicted / f"example_video{suffix}", schema)
    assert "example_video" in va.match_names
    assert _frames_of(va, example_keypoints, schema) == expected


def test_decisions_column(bundle: Path, example_keypoints_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "decisions.yml"
    cfg.write_text("actions: {Left Step: 'on'}\nthreshold: 0.55\nmin_bout: 3\n")
    out = tmp_path / "out"
    assert main(["predict", str(example_keypoints_dir / "example_video.parquet"), "--model", str(bundle),
                 "--out", str(out), "--decisions", str(cfg), "--no-timeline", "--quiet"]) == 0
    assert not (out / "example_video.timeline.png").exists()
    t = pd.read_parquet(out / "example_video.predictions.parquet")
    on = t["decision"].notna().to_numpy()
    assert on.any() and (t.loc[on, "decision"] == "Left Step").all()
    # On only after 3 counting frames of Left Step, and never where the label is something else.
    first = int(np.flatnonzero(on)[0])
    assert (t["label"].iloc[first - 2:first + 1] == "Left Step").all()
    assert (t.loc[on, "label"] == "Left Step").all()
    cfg.write_text("actions: {}\n")
    with pytest.raises(SpmlError, match=r"decisions.yml.*actions"):
        _run_raising(["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(out),
                      "--decisions", str(cfg), "--quiet"])


def _run_raising(argv: list[str]) -> None:
    from spml_core.cli.main import build_parser

    args = build_parser().parse_args(argv)
    args._run(args)


def test_bad_inputs(bundle: Path, example_keypoints_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SpmlError, match="--export eaf: unknown export format; valid: elan, labelstudio, dataloop, boris"):
        _run_raising(["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(out),
                      "--export", "eaf"])
    assert not out.exists()
    pre = tmp_path / "preformatted"
    shutil.copytree(bundle, pre)
    manifest = json.loads((pre / "manifest.json").read_text())
    manifest["features"].update(kind="preformatted", spec=None)
    (pre / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpmlError, match="trained on preformatted columns .* cannot compute features from raw keypoints"):
        _run_raising(["predict", str(example_keypoints_dir), "--model", str(pre), "--out", str(out)])
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(SpmlError, match="notes.txt: not a video .* keypoint .parquet"):
        _run_raising(["predict", str(notes), "--model", str(bundle), "--out", str(out)])
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    rc = main(["predict", str(broken), "--model", str(bundle), "--out", str(out), "--quiet", "--retries", "0"])
    assert rc == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["status"] == "failed" and "broken.parquet" in summary["inputs"][0]["message"]
    assert not list(out.glob("broken.*"))  # nothing half-written


def test_predict_a_video_extracts_it_first(bundle: Path, cut_clips, tmp_path: Path) -> None:
    clip = cut_clips(tmp_path / "clips", 1, 40)[0]
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--model", str(bundle), "--out", str(out), "-o", "model=lite",
                 "--quiet"]) == 0
    kp = spml_core.load_keypoints(out / "keypoints" / "clip0.parquet")
    t = pd.read_parquet(out / "clip0.predictions.parquet")
    assert len(t) == kp.n_frames == 40 and (t.status == "ok").sum() > 0
    assert kp.estimator.name == "mediapipe" and kp.estimator.options["model"] == "lite"


def test_dask_executor_gives_the_same_table(predicted: Path, bundle: Path, example_keypoints_dir: Path,
                                            tmp_path: Path) -> None:
    pytest.importorskip("spml_executor_dask")
    out = tmp_path / "dask"
    assert main(["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(out),
                 "--executor", "dask", "--workers", "1", "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "example_video.predictions.parquet"),
                                  pd.read_parquet(predicted / "example_video.predictions.parquet"))


def test_streamposeml_sequence_input_predicts_like_its_parquet(predicted: Path, bundle: Path, example_keypoints,
                                                               tmp_path: Path) -> None:
    from spml_core.keypoints.streamposeml import write_streamposeml

    write_streamposeml(example_keypoints, tmp_path / "seq")
    [seq_file] = list((tmp_path / "seq").rglob("*_sequence.json"))
    out = tmp_path / "out"
    assert main(["predict", str(seq_file), "--model", str(bundle), "--out", str(out), "--quiet"]) == 0
    got = pd.read_parquet(out / "example_video.predictions.parquet")
    want = pd.read_parquet(predicted / "example_video.predictions.parquet")
    assert (got.status == "ok").sum() > 300
    agree = (got.label.fillna("") == want.label.fillna("")).mean()
    assert agree > 0.95, agree  # the JSON keeps 4 decimals and no visibility
