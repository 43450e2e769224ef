"""Bundles record the pose estimator of their training keypoints (issue #12): real MediaPipe keypoints of the
example video -> dataset (Parquet metadata + report) -> spml train -> features.pose -> spml predict's estimator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spml_core.config import AnnotationSchema
from spml_core.datasets.build import build_and_write
from spml_core.datasets.io import read_dataset, write_dataset
from spml_core.datasets.pose_info import DATASET_META_KEY, bundle_pose, read_dataset_pose
from spml_core.datasets.report import report_path
from spml_core.keypoints.sequence import _META_KEY

pytestmark = pytest.mark.slow

XGB_SMALL = {"n_estimators": 20}


def _with_model(src: Path, dst: Path, model: str) -> None:
    """A copy of a keypoint file whose recorded estimator used another MediaPipe model."""
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    meta = json.loads(table.schema.metadata[_META_KEY])
    meta["estimator"]["options"]["model"] = model
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, _META_KEY: json.dumps(meta).encode()}),
                   dst)


@pytest.fixture(scope="module")
def one_video_dataset(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose_ds") / "example.parquet"
    build_and_write(example_keypoints_dir, example_annotations.parent, out, AnnotationSchema(), quiet=True)
    return out


def test_dataset_records_each_videos_estimator_in_parquet_and_report(one_video_dataset: Path) -> None:
    import pyarrow.parquet as pq

    pose = json.loads(pq.read_schema(one_video_dataset).metadata[DATASET_META_KEY])["pose"]
    est = pose["example_video"]
    assert est["name"] == "mediapipe" and est["version"]
    assert est["options"]["model"] == "full" and est["options"]["smoothing"]["enabled"] is True
    report = json.loads(report_path(one_video_dataset).read_text())
    assert report["videos"][0]["estimator"] == est
    assert read_dataset_pose(one_video_dataset) == pose


def test_training_copies_the_estimator_into_the_bundle_and_predict_uses_it(one_video_dataset: Path,
                                                                            tmp_path: Path, capsys) -> None:
    from spml_core.models.bundle import read_manifest
    from spml_core.models.predict_run import estimator_of
    from spml_core.models.predictor import load_bundle
    from spml_core.models.training import train

    result = train(one_video_dataset, "step_type", tmp_path / "b", "xgboost", XGB_SMALL, window=10, quiet=True)
    pose = read_manifest(tmp_path / "b").features.pose
    assert pose["name"] == "mediapipe" and pose["model"] == "full"
    assert pose["smoothing"]["enabled"] is True and "max_frames" not in pose["options"]
    assert not [w for w in result.report["warnings"] if w["code"] == "pose_estimator"]
    assert "pose estimator" not in capsys.readouterr().err
    name, opts = estimator_of(load_bundle(tmp_path / "b"), None, None)
    assert name == "mediapipe" and opts["model"] == "full" and opts["smoothing"] == pose["smoothing"]


def test_videos_with_different_estimators_warn_and_record_the_most_common(
        example_keypoints_dir: Path, example_annotations: Path, tmp_path: Path, capsys) -> None:
    from spml_core.models.bundle import read_manifest
    from spml_core.models.training import train

    kp = tmp_path / "kp"
    kp.mkdir()
    src = example_keypoints_dir / "example_video.parquet"
    shutil.copy(src, kp / "example_video.parquet")
    shutil.copy(src, kp / "take_b.parquet")
    _with_model(src, kp / "take_lite.parquet", "lite")
    out = tmp_path / "three.parquet"
    build_and_write(kp, example_annotations.parent, out, AnnotationSchema(), quiet=True)
    assert {v: e["options"]["model"] for v, e in read_dataset_pose(out).items()} == {
        "example_video": "full", "take_b": "full", "take_lite": "lite"}

    result = train(out, "step_type", tmp_path / "b", "xgboost", XGB_SMALL, window=10, quiet=True)
    assert read_manifest(tmp_path / "b").features.pose["model"] == "full"
    warned = [w["message"] for w in result.report["warnings"] if w["code"] == "pose_estimator"]
    assert len(warned) == 1 and "take_lite" in warned[0] and "model=lite" in warned[0] and "2 of 3" in warned[0]
    assert "take_lite" in capsys.readouterr().err


def test_old_datasets_without_estimators_train_without_pose(one_video_dataset: Path, tmp_path: Path) -> None:
    from spml_core.models.bundle import read_manifest
    from spml_core.models.training import train

    old = write_dataset(read_dataset(one_video_dataset), tmp_path / "old.parquet")  # no metadata, no report
    assert read_dataset_pose(old) is None
    train(old, "step_type", tmp_path / "b", "xgboost", XGB_SMALL, window=10, quiet=True)
    assert read_manifest(tmp_path / "b").features.pose is None


def test_csv_dataset_reads_estimators_from_its_report(example_keypoints_dir: Path, example_annotations: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "example.csv"
    build_and_write(example_keypoints_dir, example_annotations.parent, out, AnnotationSchema(), quiet=True)
    assert read_dataset_pose(out)["example_video"]["options"]["model"] == "full"


def test_bundle_pose_ignores_videos_without_estimator_but_says_so() -> None:
    est = {"name": "mediapipe", "version": "0.10", "options": {"model": "heavy", "max_frames": 5}}
    pose, warnings = bundle_pose({"a": est, "b": None})
    assert pose == {"name": "mediapipe", "version": "0.10", "options": {"model": "heavy"}, "model": "heavy"}
    assert len(warnings) == 1 and "b" in warnings[0]
    # A session recorded by spml serve: where pose ran is not an estimator option; an unknown model is left out.
    session = {"name": "mediapipe", "options": {"model": None, "where": "browser"}}
    assert bundle_pose({"s": session})[0] == {"name": "mediapipe", "version": "", "options": {}}
    assert bundle_pose({"a": None}) == (None, [])
    assert bundle_pose(None) == (None, [])


def test_a_dataset_built_on_an_executor_records_the_same_estimators(example_keypoints_dir: Path,
                                                                     example_annotations: Path, tmp_path: Path) -> None:
    out = tmp_path / "parts.parquet"
    build_and_write(example_keypoints_dir, example_annotations.parent, out, AnnotationSchema(), quiet=True,
                    executor="local", executor_options={"workers": 1})
    assert read_dataset_pose(out)["example_video"]["options"]["model"] == "full"
