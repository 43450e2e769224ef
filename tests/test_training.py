"""End to end on the real example video: spml train / evaluate for both models, bundles that predict live
exactly as in training, grouped evaluation over several videos, and a leak test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import spml_core
from spml_core.keypoints.skeleton import LANDMARK_NAMES, landmark_columns
from spml_core.models.calibration import apply_temperature

pytestmark = pytest.mark.slow

XGB_SMALL = {"n_estimators": 40}
LSTM_SMALL = {"hidden_size": 16, "num_layers": 1, "max_epochs": 10, "patience": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def example_frames(example_keypoints_dir: Path, example_annotations: Path):
    """The example video's per-frame dataset (real MediaPipe keypoints + its annotation file)."""
    from spml_core.datasets.build import build_dataset

    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    return frames


@pytest.fixture(scope="module")
def example_dataset(example_frames, tmp_path_factory) -> Path:
    from spml_core.datasets.io import write_dataset

    return write_dataset(example_frames, tmp_path_factory.mktemp("ds") / "example.parquet")


def mirrored(frames, name: str):
    """A left-right mirror image of a video, with Left/Right Step labels swapped accordingly."""
    import pandas as pd

    out = frames.copy()
    swap = [LANDMARK_NAMES.index(n.replace("left", "§").replace("right", "left").replace("§", "right"))
            for n in LANDMARK_NAMES]
    lm = landmark_columns()
    xyzv = frames[lm].to_numpy().reshape(len(frames), 33, 4)[:, swap].copy()
    xyzv[:, :, 0] = 1.0 - xyzv[:, :, 0]
    out[lm] = xyzv.reshape(len(frames), -1)
    step = frames["step_type"].astype(object).map({"Left Step": "Right Step", "Right Step": "Left Step"})
    out["step_type"] = pd.Categorical(step, categories=frames["step_type"].cat.categories)
    out["video"] = name
    return out


def time_shifted(frames, name: str, shift: int):
    """The video from frame ``shift`` on, renumbered from 0 (a different recording of the same moves)."""
    out = frames.iloc[shift:].copy()
    out["frame"] = out["frame"] - shift
    out["timestamp_ms"] = out["timestamp_ms"] - out["timestamp_ms"].iloc[0]
    out["video"] = name
    return out


def concat(parts):
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    for col in ("video", "step_type", "weight_transfer_type", "subject"):
        if col in df.columns:
            df[col] = df[col].astype(object).astype("category")
    return df


def check_predictor_matches_training_rows(bundle: Path, dataset: Path, frames) -> None:
    """predict_window and the live stream give exactly the model's output on the batch-formatted row."""
    from spml_core.models.examples import load_examples

    predictor = spml_core.load_bundle(bundle)
    ex = load_examples(dataset, predictor.target, predictor.spec)
    rank = predictor.manifest.model.input_rank
    lm = landmark_columns()
    for i in np.linspace(0, len(ex) - 1, 4).astype(int):
        video = frames[frames["video"] == ex.video[i]]
        rows = video[(video["frame"] >= ex.start[i]) & (video["frame"] <= ex.end[i])]
        xyzv = rows[lm].to_numpy(np.float32).reshape(len(rows), 33, 4)
        w, h = int(rows["width"].iloc[0]), int(rows["height"].iloc[0])
        raw = predictor.model.predict_proba(ex.model_input(rank, np.array([i])))
        expected = apply_temperature(raw, predictor.temperature)[0]  # the bundle's calibration
        got = predictor.predict_window(xyzv, width=w, height=h)
        np.testing.assert_allclose([got["probabilities"][c] for c in predictor.classes], expected, rtol=1e-6)
        unknown = predictor.unknown(expected[None], predictor.select(ex.X[[i]]))[0]
        assert got["label"] == (None if unknown else predictor.classes[int(np.argmax(expected))])
        stream = predictor.new_stream(w, h)
        # Frames one grid step apart (no t_ms): the live path sees exactly these frames.
        outputs = [stream.push(frame) for frame in xyzv]
        assert all(o["label"] is None for o in outputs[:-1])
        assert outputs[-1]["status"] == ("unknown" if unknown else "ok")
        assert {k: outputs[-1][k] for k in got} == got


def check_outputs(bundle: Path, dataset: Path, model: str) -> dict:
    from spml_core.keypoints.sequence import file_sha256

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["target"] == "step_type"
    assert manifest["classes"] == ["Left Step", "Right Step"]
    assert manifest["model"]["component"] == model and manifest["model"]["version"] == "0.2.0"
    assert manifest["features"]["window"] == 10 and manifest["features"]["spec"]["window"] == 10
    assert manifest["features"]["columns"] == manifest["features"]["spec"]["columns"]
    assert manifest["training_data"]["sha256"] == file_sha256(dataset)
    for png in ("confusion_matrix.png", "timeline.png"):
        assert (bundle / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert set(metrics["overall"]["per_class"]) == {"Left Step", "Right Step"}
    assert 0.0 <= metrics["overall"]["balanced_accuracy"] <= 1.0
    assert metrics["overall"]["confusion_matrix"]["labels"] == ["Left Step", "Right Step"]
    assert metrics["onset_latency"], "onset latency is reported for the annotated steps"
    assert metrics["examples"]["evaluated"] == metrics["examples"]["n"]
    return metrics


def test_xgboost_trains_and_evaluates_on_the_example_with_blocked_splits(example_dataset, example_frames,
                                                                         tmp_path) -> None:
    from spml_core.models.evaluation import evaluate_bundle
    from spml_core.models.training import train

    result = train(example_dataset, "step_type", tmp_path / "xgb", "xgboost", XGB_SMALL, window=10, stride=2,
                   quiet=True)
    metrics = check_outputs(result.bundle, example_dataset, "xgboost")
    split = metrics["split"]
    assert split["kind"] == "blocked" and "falls back to blocked time splits" in split["note"]
    assert sum(split["purged"]) > 0  # the gap of one window between train and test blocks
    # Unlabelled frames never became examples.
    labelled = example_frames["step_type"].notna().to_numpy()
    assert metrics["examples"]["n"] <= labelled.sum()
    check_predictor_matches_training_rows(result.bundle, example_dataset, example_frames)

    # The same file: spml evaluate cross-validates the recipe instead of scoring memorised data.
    report = evaluate_bundle(result.bundle, example_dataset, quiet=True)
    assert report["same_as_training_data"] and report["split"]["kind"] == "blocked"
    assert (result.bundle / "eval-example" / "metrics.json").is_file()
    # Another recording (the mirror image): the fitted model predicts it, held out.
    other = tmp_path / "mirror.parquet"
    from spml_core.datasets.io import write_dataset

    write_dataset(concat([mirrored(example_frames, "mirror")]), other)
    report = evaluate_bundle(result.bundle, other, tmp_path / "eval", quiet=True)
    assert report["evaluation"].startswith("held-out") and not report["same_as_training_data"]
    assert (tmp_path / "eval" / "timeline.png").is_file()


def test_lstm_trains_and_evaluates_on_the_example(example_dataset, example_frames, tmp_path) -> None:
    from spml_core.models.training import train

    result = train(example_dataset, "step_type", tmp_path / "lstm", "lstm", LSTM_SMALL, window=10, stride=2,
                   quiet=True)
    metrics = check_outputs(result.bundle, example_dataset, "lstm")
    assert metrics["split"]["kind"] == "blocked"
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["model"]["input_rank"] == 3 and manifest["features"]["frame_features"] > 0
    assert sorted(p.name for p in (result.bundle / "model").iterdir()) == ["lstm.json", "weights.safetensors"]
    check_predictor_matches_training_rows(result.bundle, example_dataset, example_frames)


def test_several_videos_are_evaluated_by_video(example_frames, tmp_path) -> None:
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    frames = concat([example_frames, mirrored(example_frames, "example_mirrored"),
                     time_shifted(example_frames, "example_shifted", 25)])
    data = write_dataset(frames, tmp_path / "three.parquet")
    result = train(data, "step_type", tmp_path / "b", "xgboost", XGB_SMALL, window=10, stride=2, quiet=True)
    split = result.report["split"]
    assert split["kind"] == "group" and split["group_column"] == "video" and split["n_folds"] == 3
    tested = [f["test_groups"] for f in result.report["folds"]]
    assert sorted(g for groups in tested for g in groups) == ["example_mirrored", "example_shifted", "example_video"]
    assert all(len(groups) == 1 for groups in tested)


def test_leak_random_split_scores_high_grouped_split_does_not(example_frames, tmp_path) -> None:
    """Four recordings (distinct quarters of the example), each duplicated, with labels unrelated to the
    movement: a random split finds every test window's twin in training, a split by subject cannot."""
    import pandas as pd

    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    rng = np.random.default_rng(7)
    lm = landmark_columns()
    chunk = len(example_frames) // 4
    parts = []
    for r in range(4):
        part = example_frames.iloc[r * chunk:(r + 1) * chunk].copy()
        part["frame"] = np.arange(chunk)
        part["timestamp_ms"] = part["frame"] * 1000 / 30
        labels = np.repeat(rng.permutation(np.repeat(["a", "b"], chunk // 24 + 1)), 12)[:chunk]
        for copy in range(2):
            dup = part.copy()
            dup[lm] = dup[lm].to_numpy() + rng.normal(scale=1e-4, size=(chunk, len(lm)))
            dup = dup.copy()  # one block again after replacing 132 columns
            dup["video"] = f"rec{r}_copy{copy}"
            dup["subject"] = f"rec{r}"
            dup["step_type"] = pd.Categorical(labels)
            parts.append(dup)
    data = write_dataset(concat(parts), tmp_path / "dups.parquet")
    # No early stopping: its validation split is grouped, which would itself curb the memorising.
    opts = {"n_estimators": 100, "early_stopping_rounds": None}
    common = dict(window=4, stride=2, features=["normalized"], quiet=True)
    leaky = train(data, "step_type", tmp_path / "random", "xgboost", opts, split="random", **common).report
    honest = train(data, "step_type", tmp_path / "grouped", "xgboost", opts, **common).report
    assert leaky["split"]["kind"] == "random" and leaky["warnings"]
    assert honest["split"]["kind"] == "group" and honest["split"]["group_column"] == "subject"
    for fold in honest["folds"]:  # both copies of a recording are always on the same side
        assert len(fold["test_groups"]) == 1
    high, low = leaky["overall"]["balanced_accuracy"], honest["overall"]["balanced_accuracy"]
    assert high >= 0.9, high
    assert low <= 0.65, low


def test_cli_and_config_stages(example_dataset, tmp_path, capsys) -> None:
    from spml_core.cli.main import main
    from spml_core.pipeline import run_config

    assert main(["train", str(example_dataset), "--target", "step_type", "--out", str(tmp_path / "cli"),
                 "-o", "n_estimators=20", "--stride", "3", "--zip", "--quiet"]) == 0
    assert (tmp_path / "cli.zip").is_file()
    assert spml_core.load_bundle(tmp_path / "cli.zip").window == 10
    assert main(["evaluate", str(tmp_path / "cli.zip"), "--dataset", str(example_dataset), "--quiet"]) == 0
    assert (tmp_path / "cli-eval-example" / "metrics.json").is_file()
    assert main(["train", str(example_dataset), "--target", "nope", "--out", str(tmp_path / "x"), "-q"]) == 1
    assert "no column 'nope'" in capsys.readouterr().err

    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "pipeline:\n"
        f"  train:\n    dataset: {example_dataset}\n    target: step_type\n    out: run_bundle\n"
        "    model: {use: xgboost, options: {n_estimators: 10}}\n    stride: 5\n"
        f"  evaluate:\n    bundle: run_bundle\n    dataset: {example_dataset}\n    out: run_eval\n"
    )
    run_config(cfg)
    assert (tmp_path / "run_bundle" / "manifest.json").is_file()
    assert json.loads((tmp_path / "run_eval" / "metrics.json").read_text())["same_as_training_data"]


def test_a_table_formatted_by_spml_dataset_trains_with_its_spec(example_frames, tmp_path) -> None:
    """`spml dataset --strategy ...` output (+ its .spec.json) is accepted; the bundle predicts live the same."""
    from spml_core.datasets.io import write_dataset
    from spml_core.models.examples import default_spec
    from spml_core.features.offline import format_dataset_frames
    from spml_core.features.spec import write_feature_spec
    from spml_core.models.training import train

    spec = default_spec("step_type", ["normalized", "angles"], window=8, stride=4)
    table = format_dataset_frames(example_frames, spec).frame
    path = write_dataset(table, tmp_path / "formatted.parquet")
    write_feature_spec(table, path)
    result = train(path, "step_type", tmp_path / "b", "xgboost", {"n_estimators": 10}, quiet=True)
    assert result.report["examples"]["window"] == 8
    predictor = spml_core.load_bundle(result.bundle)
    assert predictor.spec.columns == [c for c in table.columns if c.startswith("frame-")]
    row = table[table["step_type"].notna()].iloc[3]
    frames = example_frames.set_index("frame").loc[int(row["start_frame"]):int(row["end_frame"])]
    xyzv = frames[landmark_columns()].to_numpy(np.float32).reshape(-1, 33, 4)
    got = predictor.predict_window(xyzv, 1280, 720)
    raw = predictor.model.predict_proba(row[predictor.spec.columns].to_numpy(np.float32)[None])
    expected = apply_temperature(raw, predictor.temperature)[0]
    np.testing.assert_allclose([got["probabilities"][c] for c in predictor.classes], expected, rtol=1e-6)
    (tmp_path / "formatted.parquet.spec.json").unlink()
    with pytest.raises(spml_core.errors.SpmlError, match="no landmark columns and no"):
        train(path, "step_type", tmp_path / "c", "xgboost", quiet=True)


def test_search_is_nested_and_reports_its_candidates(example_dataset, tmp_path) -> None:
    from spml_core.models.training import train

    result = train(example_dataset, "step_type", tmp_path / "s", "xgboost", {"n_estimators": 8}, window=10,
                   stride=3, n_splits=3, search=True, quiet=True)
    search = result.report["search"]
    assert len(search["candidates"]) == 4  # max_depth x learning_rate
    assert search["chosen"] in [c["options"] for c in search["candidates"]]
    assert all("options" in fold for fold in result.report["folds"])  # each outer fold chose its own
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["model"]["options"] == search["chosen"]
