"""spml import end to end: a labelled wide keypoint CSV (per-image pose samples, pixels) -> keypoint files +
annotations -> spml dataset -> spml train -> spml predict on keypoints spml extracted from the video itself;
and StreamPoseML sequence files through the built-in importer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spml_core
from spml_core.cli.main import main

pytestmark = pytest.mark.slow


def _wide_csv(frames: pd.DataFrame, path: Path, width: int, height: int) -> Path:
    """The documented layout: image, class, then x0, y0, z0 ... x32, y32, z32 in pixels."""
    lm = frames[[c for c in frames.columns if c.endswith(("_x", "_y", "_z", "_visibility"))]]
    xyzv = lm.to_numpy(dtype=np.float64).reshape(len(frames), 33, 4)
    data = {"image": [f"frame_{i:05d}.png" for i in frames["frame"]],
            "class": frames["step_type"].astype(object).where(frames["step_type"].notna(), "")}
    for j in range(33):
        data[f"x{j}"] = np.round(xyzv[:, j, 0] * width, 2)
        data[f"y{j}"] = np.round(xyzv[:, j, 1] * height, 2)
        data[f"z{j}"] = np.round(xyzv[:, j, 2] * width, 2)
    pd.DataFrame(data).to_csv(path, index=False)
    return path


def test_labelled_csv_imports_trains_and_predicts_a_video(example_keypoints_dir, example_annotations, tmp_path,
                                                          capsys) -> None:
    from spml_core.datasets.build import build_dataset

    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    csv = _wide_csv(frames, tmp_path / "poses.csv", 1280, 720)
    imp = tmp_path / "imported"
    assert main(["import", "csv", str(csv), "--out", str(imp), "-o", "width=1280", "-o", "height=720"]) == 0
    assert "poses: 382 frames" in capsys.readouterr().out
    seq = spml_core.load_keypoints(imp / "poses.parquet")
    assert seq.source is None and seq.provenance["format"] == "csv" and seq.provenance["frame_size"] == "given"
    original = spml_core.load_keypoints(example_keypoints_dir / "example_video.parquet")
    np.testing.assert_allclose(seq.xyzv[:, :, :2], original.xyzv[:, :, :2], atol=0.01)
    ann = json.loads((imp / "annotations" / "poses.json").read_text())
    assert {a["label"] for a in ann["annotations"]} == {"Left Step", "Right Step"}
    assert "class" in (imp / "config.yml").read_text()
    ds = tmp_path / "ds.parquet"
    assert main(["dataset", "--keypoints", str(imp), "--annotations", str(imp / "annotations"),
                 "--config", str(imp / "config.yml"), "--out", str(ds), "--quiet"]) == 0
    bundle = tmp_path / "bundle"
    assert main(["train", str(ds), "--target", "class", "--model", "logistic_regression", "--folds", "3",
                 "--out", str(bundle), "--quiet"]) == 0
    out = tmp_path / "pred"
    assert main(["predict", str(example_keypoints_dir), "--model", str(bundle), "--out", str(out), "--quiet"]) == 0
    pred = pd.read_parquet(out / "example_video.predictions.parquet")
    truth = frames.set_index("frame")["step_type"].astype(object)
    ok = pred[(pred.status == "ok") & pred.frame.map(truth).notna()]
    agreement = float((ok.label.to_numpy() == ok.frame.map(truth).to_numpy()).mean())
    assert len(ok) > 200 and agreement > 0.8, agreement


def test_csv_frame_size_from_the_first_image(example_keypoints_dir, example_annotations, tmp_path) -> None:
    import cv2

    from spml_core.datasets.build import build_dataset

    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    csv = _wide_csv(frames.iloc[:20], tmp_path / "few.csv", 1280, 720)
    cv2.imwrite(str(tmp_path / "frame_00000.png"), np.zeros((720, 1280, 3), np.uint8))
    assert main(["import", "csv", str(csv), "--out", str(tmp_path / "out"), "-q"]) == 0
    seq = spml_core.load_keypoints(tmp_path / "out" / "few.parquet")
    assert (seq.width, seq.height) == (1280, 720) and seq.provenance["frame_size"] == "from image frame_00000.png"


def test_streamposeml_sequences_import(example_video, tmp_path) -> None:
    from spml_core.keypoints.batch import run_extract

    run_extract(example_video, tmp_path / "kp", "mediapipe", {"model": "lite", "max_frames": 30},
                formats=("parquet", "streamposeml"), quiet=True)
    seqs = list((tmp_path / "kp").rglob("*_sequence.json"))
    assert len(seqs) == 1
    assert main(["import", "streamposeml", str(tmp_path / "kp"), "--out", str(tmp_path / "imp"), "-q",
                 "-o", "fps=30"]) == 0
    imported = spml_core.load_keypoints(tmp_path / "imp" / "example_video.parquet")
    extracted = spml_core.load_keypoints(tmp_path / "kp" / "example_video.parquet")
    assert imported.n_frames == extracted.n_frames == 30
    np.testing.assert_allclose(imported.xyzv[:, :, :3], extracted.xyzv[:, :, :3], atol=1e-4)
    assert imported.provenance["format"] == "streamposeml" and np.isfinite(imported.timestamps_ms).all()
