"""The seed's ModelBuilder flow on a CSV written by the seed-compatible dataset job, saving safe bundles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import spml_core
from spml_core.keypoints.skeleton import landmark_columns

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_csv(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> Path:
    """The seed README's dataset recipe (flatten_into_columns, window 10) written with write_dataset_to_csv."""
    import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder

    db = data_builder.BuildAndFormatDatasetJob()
    dataset = db.build_dataset_from_data_files(annotations_data_directory=str(example_annotations),
                                               sequence_data_directory=str(example_keypoints_dir))
    formatted = db.format_dataset(dataset=dataset, pool_frame_data_by_clip=False, decimal_precision=4,
                                  include_unlabeled_data=True, segmentation_strategy="flatten_into_columns",
                                  segmentation_window=10, segmentation_window_label="step_type")
    out = tmp_path_factory.mktemp("csv")
    return db.write_dataset_to_csv(csv_location=str(out), formatted_dataset=formatted, filename="steps")


@pytest.fixture(scope="module")
def keypoints(example_keypoints_dir: Path):
    from spml_core.keypoints.sequence import load_keypoints

    return load_keypoints(example_keypoints_dir / "example_video.parquet")


def builder(csv: Path, **kw):
    import stream_pose_ml.learning.model_builder as mb

    b = mb.ModelBuilder()
    assert b.load_and_prep_dataset_from_csv(path=str(csv), target="step_type", **kw)
    return b


def check_live_matches_csv(bundle: Path, csv: Path, keypoints) -> None:
    """The saved bundle, fed raw keypoints, reproduces the model's output on the CSV's rows."""
    import pandas as pd

    predictor = spml_core.load_bundle(bundle)
    assert predictor.info()["live"]
    df = pd.read_csv(csv)
    for i in (0, len(df) // 2, len(df) - 1):
        row = df.iloc[i]
        window = keypoints.xyzv[int(row["start_frame"]):int(row["end_frame"]) + 1]
        got = predictor.predict_window(window, keypoints.width, keypoints.height)
        expected = predictor.model.predict_proba(df[predictor.manifest.features.columns].iloc[[i]].to_numpy(np.float32))[0]
        np.testing.assert_allclose([got["probabilities"][c] for c in predictor.classes], expected, rtol=1e-5)


def test_seed_flow_saves_a_safe_live_bundle(seed_csv, keypoints, tmp_path) -> None:
    b = builder(seed_csv)
    assert "step_type" not in b.X.columns and "video" not in b.X.columns  # the target never enters X (seed bug)
    b.set_train_test_split(test_size=0.2, random_state=42)
    assert "last" in b.split_note  # one video: a trailing block in time, not a random split
    end = b.data["end_frame"].to_numpy()
    start = b.data["start_frame"].to_numpy()
    # Test windows come after every training window, with at least one window (10 frames) between.
    assert start[b.test_index].min() > end[b.train_index].max() + 10
    b.train_gradient_boost(n_estimators=30)
    metrics = b.evaluate_model()
    assert set(metrics) >= {"accuracy", "balanced_accuracy", "macro_f1", "precision", "recall", "confusion_matrix"}
    assert b.accuracy == metrics["accuracy"]
    out = b.save_model_and_datasets(notes="seed flow", model_type="gradient-boost", model_path=tmp_path)
    assert out.name.startswith("gradient-boost-")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["manifest.json", "model/model.ubj", "model/xgboost.json"]  # no data, no pickle
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"] == "seed flow" and manifest["metrics"]["evaluation"] == "held-out test split"
    assert manifest["features"]["kind"] == "pipeline"
    check_live_matches_csv(out, seed_csv, keypoints)
    assert b.retrieve_model_from_bundle(out).classes == ["Left Step", "Right Step"]


def test_random_forest_search_logistic_regression_and_a_column_subset(seed_csv, keypoints, tmp_path) -> None:
    import pandas as pd

    columns = [c for c in pd.read_csv(seed_csv, nrows=0).columns if c.startswith("frame-10-")]
    b = builder(seed_csv, column_whitelist=columns)
    assert list(b.X.columns) == columns
    b.set_train_test_split(test_size=0.25, random_state=0)
    b.train_random_forest(use_random_search=True, param_dist={"max_depth": [3, 6], "max_features": [0.3, 0.8]},
                          iterations=3, params={"n_estimators": 20})
    assert len(b.search_results) >= 2
    b.evaluate_model(print_report=False)
    rf = b.save_model_and_datasets(notes="", model_type="random-forest", model_path=tmp_path)
    check_live_matches_csv(rf, seed_csv, keypoints)  # live rows are cut down to the whitelisted columns

    b.train_logistic_regression()
    b.evaluate_model(print_report=False)
    lr = b.save_model_and_datasets(notes="", model_type="logistic-regression", model_path=tmp_path)
    assert (lr / "model" / "logistic_regression.json").is_file()
    check_live_matches_csv(lr, seed_csv, keypoints)
    with pytest.raises(spml_core.errors.SpmlError, match="does not match the trained model"):
        b.save_model_and_datasets(notes="", model_type="gradient-boost", model_path=tmp_path)


def test_several_videos_split_by_video_and_value_map(seed_csv, tmp_path) -> None:
    import pandas as pd

    df = pd.read_csv(seed_csv)
    other = df.copy()
    other["video"] = "second_take"
    csv = tmp_path / "two.csv"
    pd.concat([df, other]).to_csv(csv, index=False)
    b = builder(csv, value_map={"step_type": {"Left Step": 0, "Right Step": 1}})
    b.set_train_test_split(test_size=0.5, random_state=1)
    test_videos = set(b.data.iloc[b.test_index]["video"])
    train_videos = set(b.groups_train)
    assert len(test_videos) == 1 and not test_videos & train_videos
    b.train_gradient_boost(n_estimators=10)
    assert b.model.classes_ == ["0", "1"]
    assert b.evaluate_model(print_report=False)["auc_roc"] is not None


def test_balancing_the_training_split(seed_csv) -> None:
    for flag in ("upsample_minority", "downsample_majority", "use_SMOTE"):
        b = builder(seed_csv)
        b.set_train_test_split(test_size=0.2, random_state=0, balance_off_target=True, **{flag: True})
        counts = b.y_train.value_counts()
        assert counts.nunique() == 1, (flag, counts.to_dict())
    b = builder(seed_csv)
    with pytest.raises(spml_core.errors.SpmlError, match="exactly one"):
        b.set_train_test_split(balance_off_target=True, upsample_minority=True, use_SMOTE=True)


def test_preformatted_csv_bundle_and_single_class_test_split(seed_csv, tmp_path) -> None:
    import pandas as pd

    df = pd.read_csv(seed_csv)
    csv = tmp_path / "foreign.csv"  # no .spec.json beside it: a CSV from elsewhere
    df.to_csv(csv)  # with an index column, as StreamPoseML wrote it
    b = builder(csv)
    assert "Unnamed: 0" not in b.X.columns
    b.set_train_test_split(test_size=0.1, random_state=0)
    b.train_gradient_boost(n_estimators=10)
    m = b.evaluate_model(print_report=False)
    assert len(set(b.y_test)) == 1 and 0.0 <= m["balanced_accuracy"] <= 1.0  # one class in the test split
    out = b.save_model_and_datasets(notes="", model_path=tmp_path)
    predictor = spml_core.load_bundle(out)
    assert predictor.manifest.features.kind == "preformatted"
    with pytest.raises(spml_core.errors.SpmlError, match="preformatted columns"):
        predictor.predict_window(np.zeros((10, 33, 4), np.float32), 640, 480)
    rows = df[predictor.manifest.features.columns].to_numpy(np.float32)[:3]
    np.testing.assert_allclose(predictor.predict_rows(rows), b.model.predict_proba(rows))


def test_pickles_are_never_loaded(tmp_path) -> None:
    import stream_pose_ml.learning.model_builder as mb

    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "Gradient-Boost-1.pickle"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(spml_core.errors.SpmlError, match="never unpickles"):
        mb.ModelBuilder().retrieve_model_from_pickle(str(path))
    with pytest.raises(spml_core.errors.SpmlError, match="pickle"):
        mb.ModelBuilder().retrieve_model_from_bundle(path)
    assert not marker.exists()


def test_landmark_columns_are_features_of_a_raw_per_frame_csv(example_keypoints_dir, example_annotations,
                                                              tmp_path) -> None:
    """A raw per-frame dataset (no formatting) trains on the landmark coordinates, id columns excluded."""
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset

    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    csv = write_dataset(frames, tmp_path / "frames.csv")
    b = builder(csv)
    assert list(b.X.columns) == landmark_columns()
    b.set_train_test_split(test_size=0.3)
    b.train_gradient_boost(n_estimators=10)
    assert b.evaluate_model(print_report=False)["n"] == len(b.X_test)
