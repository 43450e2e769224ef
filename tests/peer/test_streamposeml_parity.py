"""Parity with StreamPoseML 0.3.1, call for call: the same calls in its own venv and in spml's facade.

StreamPoseML runs in build/spml-ref-venv (``make setup`` creates it when PyPI is reachable; the
first run here creates it otherwise) through tests/peer/ref_probe.py, on the example video and
annotations. Both sides read the same StreamPoseML sequence JSON (its own ProcessVideosJob output),
so every difference below is a difference of the code, and each one asserted here is a row of
MIGRATING.md's table. Run alone with ``pytest -m peer``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.peer, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("ref_probe.py")
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "split_no_window": dict(segmentation_strategy="split_on_label", segmentation_splitter_label="step_type",
                            pool_frame_data_by_clip=False),
    "split_window": dict(segmentation_strategy="split_on_label", segmentation_splitter_label="step_type",
                         segmentation_window=10, pool_frame_data_by_clip=False),
    "window_pooled": dict(segmentation_strategy="window", segmentation_window=10,
                          segmentation_window_label="weight_transfer_type"),
    "flatten_columns": dict(segmentation_strategy="flatten_into_columns", segmentation_window=10,
                            segmentation_window_label="weight_transfer_type", pool_frame_data_by_clip=False),
    "flatten_example": dict(segmentation_strategy="flatten_on_example", segmentation_window=10,
                            segmentation_splitter_label="step_type", pool_frame_data_by_clip=False),
    "raw_joints": dict(segmentation_strategy="none", include_joints=True, include_angles=False,
                       include_distances=False, include_normalized=False, pool_frame_data_by_clip=False,
                       include_unlabeled_data=True),
}
ERROR_CASES = {
    "err_flatten_no_window": dict(segmentation_strategy="flatten_into_columns"),
    "err_split_no_label": dict(segmentation_strategy="split_on_label"),
    "err_window_no_label": dict(segmentation_strategy="window", segmentation_window=10),
}


def _reference() -> Any:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import _reference
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return _reference


@pytest.fixture(scope="session")
def peer(example_dir: Path, example_keypoints_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """StreamPoseML's answers (ref_probe.py in its venv), with the folders both sides read."""
    ref = _reference()
    py = ref.ref_python(required=False)
    if py is None:  # only without a package index: CI and `make setup` have one
        pytest.skip("StreamPoseML 0.3.1 cannot be installed here (no package index); make setup creates it")
    from spml_core.keypoints.sequence import load_keypoints
    from spml_core.keypoints.streamposeml import write_streamposeml

    root = tmp_path_factory.mktemp("peer")
    spml_seq = root / "spml-sequences"
    write_streamposeml(load_keypoints(example_keypoints_dir / "example_video.parquet"), root,
                       sequences_dir=spml_seq, write_keypoints=False)
    ref_seq = ref.ref_sequences(py)
    out = root / "ref.json"
    proc = subprocess.run([str(py), "-P", str(PROBE), str(example_dir), str(ref_seq), str(spml_seq), str(out)],
                          cwd=ref.ref_workdir(), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"ref": json.loads(out.read_text()), "ann": example_dir, "ref_seq": ref_seq, "work": ref.ref_workdir()}


@pytest.fixture(scope="session")
def ours(peer: dict[str, Any]) -> Any:
    """spml's facade Dataset from the same StreamPoseML sequence JSON, with the seed schema of the same folder."""
    from stream_pose_ml.jobs.build_and_format_dataset_job import BuildAndFormatDatasetJob

    return BuildAndFormatDatasetJob.build_dataset_from_data_files(
        str(peer["ann"]), str(peer["ref_seq"]), config=peer["work"] / "config.yml")


def _fmt(dataset: Any, **kw: Any) -> Any:
    from stream_pose_ml.jobs.build_and_format_dataset_job import BuildAndFormatDatasetJob

    with contextlib.redirect_stdout(io.StringIO()):
        return BuildAndFormatDatasetJob.format_dataset(dataset, **kw)


def _labels(frame: pd.DataFrame, column: str) -> list[Any]:
    return frame[column].astype(object).where(frame[column].notna(), None).tolist()


# -- every public callable: same arguments, same positions, same defaults ----------------------------
def _ours_classes() -> dict[str, Any]:
    import stream_pose_ml.jobs.build_and_format_dataset_job as bf
    import stream_pose_ml.jobs.process_video_job as pvj
    import stream_pose_ml.jobs.process_videos_job as pv
    from stream_pose_ml.learning import dataset, model_builder

    return {"jobs.build_and_format_dataset_job.BuildAndFormatDatasetJob": bf.BuildAndFormatDatasetJob,
            "jobs.process_videos_job.ProcessVideosJob": pv.ProcessVideosJob,
            "jobs.process_video_job.ProcessVideoJob": pvj.ProcessVideoJob,
            "learning.model_builder.ModelBuilder": model_builder.ModelBuilder,
            "learning.dataset.Dataset": dataset.Dataset}


def test_every_public_callable_takes_the_same_calls(peer: dict[str, Any]) -> None:
    classes = _ours_classes()
    problems = []
    covered = 0
    for cls_name, methods in peer["ref"]["signatures"].items():
        cls = classes[cls_name]
        for name, theirs in methods.items():
            covered += 1
            fn = getattr(cls, name, None)
            if fn is None:
                problems.append(f"{cls_name}.{name}: missing")
                continue
            params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
            for i, (pname, kind, default, required) in enumerate(theirs):
                mine = params[i] if i < len(params) else None
                if mine is None or mine.name != pname or mine.kind.name != kind:
                    problems.append(f"{cls_name}.{name}: argument {i} is {mine and mine.name!r}, StreamPoseML's {pname!r}")
                    break
                mine_default = None if mine.default is inspect.Parameter.empty else repr(mine.default)
                if not required and mine_default != default:
                    problems.append(f"{cls_name}.{name}({pname}=...): default {mine_default}, StreamPoseML's {default}")
            for extra in params[len(theirs):]:  # spml's additions never change a StreamPoseML call
                if extra.kind is extra.POSITIONAL_OR_KEYWORD and extra.default is inspect.Parameter.empty:
                    problems.append(f"{cls_name}.{name}: extra required argument {extra.name}")
    assert not problems, "\n".join(problems)
    assert covered == 23  # 4 dataset-job + 1 + 1 video-job + 17 ModelBuilder public methods
    # Dataset's constructor differs (MIGRATING.md): its accessors do not.
    for attr in ("all_frames", "labeled_frames", "unlabeled_frames", "segmented_data"):
        assert hasattr(classes["learning.dataset.Dataset"], attr)


# -- datasets ---------------------------------------------------------------------------------------
def test_dataset_lists_match_with_the_frame_numbering_fix(peer: dict[str, Any], ours: Any) -> None:
    ref = peer["ref"]
    assert {k: [len(v) for v in getattr(ours, k)] for k in ref["dataset"]} == ref["dataset"]  # [382] [227] [155]
    mine = [[f["frame_number"], f["step_type"], f["weight_transfer_type"]] for f in ours.all_frames[0]]
    theirs = ref["frame_labels"]
    assert [m[0] for m in mine] == [t[0] for t in theirs]  # both 1-based frame numbers
    # StreamPoseML compared 0-based annotation frames with 1-based frame numbers: its labels sit one
    # frame early. Shifted by that frame, every label agrees.
    assert [m[1:] for m in mine[1:]] == [t[1:] for t in theirs[:-1]]
    assert {"video_id", "step_type", "weight_transfer_type"} <= set(ours.labeled_frames[0][0])


@pytest.mark.parametrize("case", list(CASES))
def test_format_dataset_rows_and_labels(case: str, peer: dict[str, Any], ours: Any) -> None:
    theirs = peer["ref"]["formatted"][case]
    result = _fmt(ours, **CASES[case])
    assert isinstance(result, list) and isinstance(result[0], dict)  # StreamPoseML's kind: a list of rows
    frame = result.frame
    assert frame.shape[0] == theirs["shape"][0]
    mine = _labels(frame, "weight_transfer_type")
    ref = theirs["labels"]["weight_transfer_type"]
    if case in ("window_pooled", "flatten_columns"):
        # Windows start at frame 0 in spml (StreamPoseML skipped it and aligned window ends to
        # multiples of the window, B9): same count, the one window that straddles a label edge differs.
        assert sum(a == b for a, b in zip(mine, ref)) == len(ref) - 1
    elif case == "raw_joints":
        # Every frame: labels agree once StreamPoseML's one-frame shift is undone; it wrote the
        # string "NULL" where a frame has no label, spml leaves the cell empty.
        assert "NULL" in ref and None not in ref
        assert mine[1:] == [None if v == "NULL" else v for v in ref[:-1]]
    else:
        assert mine == ref
    # Features: spml computes its own sets (MIGRATING.md); both give far more than the 5 id/label columns.
    assert frame.shape[1] > 60 and theirs["shape"][1] > 60


def test_raw_joint_values_are_identical(peer: dict[str, Any], ours: Any) -> None:
    frame = _fmt(ours, **CASES["raw_joints"]).frame
    np.testing.assert_allclose(frame[["nose_x", "nose_y", "left_ankle_x"]].to_numpy(),
                               np.array(peer["ref"]["raw_joints_xy"]), atol=1e-6)


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_missing_label_or_window_raises_as_in_streamposeml(case: str, peer: dict[str, Any], ours: Any) -> None:
    from stream_pose_ml.jobs.build_and_format_dataset_job import BuildAndFormatDatasetJobError

    assert peer["ref"]["formatted"][case]["error"] == "SegmentationServiceError"
    with pytest.raises(BuildAndFormatDatasetJobError, match="needs segmentation_(window|splitter_label|window_label)"):
        _fmt(ours, **ERROR_CASES[case])


def test_streamposeml_reads_spml_sequence_json_with_features(peer: dict[str, Any]) -> None:
    theirs = peer["ref"]["from_spml_json"]
    assert "error" not in theirs, theirs
    assert theirs["shape"] == peer["ref"]["formatted"]["default"]["shape"]  # 227 x 247, as from its own JSON
    cols = theirs["columns"]
    assert sum(".angle_2d_degrees" in c for c in cols) == 3 * 35 and sum(".distance_2d" in c for c in cols) >= 3 * 23


def test_extracted_keypoints_agree_within_tolerance(peer: dict[str, Any], example_keypoints_dir: Path) -> None:
    # Same video, different pipelines (RGB vs BGR frames, CLAHE, MediaPipe Tasks vs solutions): normalised
    # image coordinates agree to a few thousandths, at worst a few hundredths (MIGRATING.md).
    kp = pd.read_parquet(example_keypoints_dir / "example_video.parquet")
    theirs = np.array(peer["ref"]["raw_joints_xy"])
    diff = np.abs(kp[["nose_x", "nose_y", "left_ankle_x"]].to_numpy() - theirs)
    assert len(kp) == len(theirs) == 382
    assert np.nanmedian(diff) < 0.01 and np.nanmax(diff) < 0.05


# -- ModelBuilder --------------------------------------------------------------------------------------
def _builder_with(X: pd.DataFrame) -> Any:
    from stream_pose_ml.learning.model_builder import ModelBuilder

    m = ModelBuilder()
    m.X = X
    return m


def _probe_matrix() -> pd.DataFrame:
    rng = np.random.default_rng(7)  # the probe's numbers, drawn the same way
    return pd.DataFrame(rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)), columns=[f"c{i}" for i in range(6)])


def test_model_builder_analysis_matches(peer: dict[str, Any]) -> None:
    from stream_pose_ml.learning.model_builder import ModelBuilder, ModelBuilderError

    ref = peer["ref"]
    filters = {"WHITELIST": ["nose"], "BLACKLIST": ["3d"], "OR": ["angle", "distance"], "AND": ["2d"]}
    words = ["nose_x", "nose_angle_3d", "knee_angle_2d", "knee_distance_2d", "knee_distance_3d", "hip_x"]
    assert [ModelBuilder.validate_string(w, filters) for w in words] == ref["validate_string"]
    assert ref["validate_string_missing_key"]["error"] == "KeyError"
    with pytest.raises(ModelBuilderError, match="BLACKLIST"):
        ModelBuilder.validate_string("x", {"WHITELIST": []})
    X = _probe_matrix()
    m = _builder_with(X)
    m.X_train, m.y_train = X, pd.Series(np.where(X["c0"] > X["c0"].median(), "a", "b"))
    m.groups_train = np.zeros(len(X), dtype=object)
    m._fit("logistic_regression", {})
    importances = m.sort_and_format_feature_importances(np.array([0.1, 0.4, 0.05, 0.2, 0.15, 0.1]))
    # Same values, largest first (ties in either order); spml gives (name, importance) pairs,
    # StreamPoseML {name: "40.0%"} dicts.
    theirs = {name: float(v[:-1]) for d in ref["importances"] for name, v in d.items()}
    assert {name: v * 100 for name, v in importances} == pytest.approx(theirs)
    values = [v for _n, v in importances]
    assert values == sorted(values, reverse=True) and len(importances) == len(theirs)
    m.X_train, m.X_test = X.iloc[:30].reset_index(drop=True), X.iloc[30:].reset_index(drop=True)
    with contextlib.redirect_stdout(io.StringIO()):
        m.run_pca(3)
    # Component signs are a convention (spml: largest loading positive); magnitudes agree.
    np.testing.assert_allclose(np.abs(m.X_train.to_numpy()), np.array(ref["pca_train"]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(m.X_test.to_numpy()), np.array(ref["pca_test"]), rtol=1e-6, atol=1e-9)


def test_model_builder_k_means_matches(peer: dict[str, Any]) -> None:
    pytest.importorskip("sklearn")  # an optional dependency of the k-means methods, as in StreamPoseML
    ref = peer["ref"]
    X = _probe_matrix()
    m = _builder_with(X)

    class FakeKMeans:
        labels_ = np.array([0] * 15 + [1] * 15 + [2] * 10)
        cluster_centers_ = np.vstack([X.iloc[:15].mean(), X.iloc[15:30].mean(), X.iloc[30:].mean()]).astype(float)
        inertia_ = float(sum(((X.iloc[a:b] - X.iloc[a:b].mean()) ** 2).to_numpy().sum()
                             for a, b in ((0, 15), (15, 30), (30, 40))))

    with contextlib.redirect_stdout(io.StringIO()):
        got = m.k_means_metrics(FakeKMeans(), X)
    printed = dict(re.findall(r"^([A-Za-z ()]+): (-?[\d.e+-]+)$", ref["k_means_metrics_printed"], re.M))
    np.testing.assert_allclose(
        [got["silhouette"], got["bcss"], got["sse"], got["max_radius"], got["average_radius"]],
        [float(printed[k]) for k in ("Silhouette Score", "Between Clusters Sum of Squares (BCSS)",
                                      "Sum of Squares Error (SSE)", "Maximum Radius", "Average Radius")], rtol=1e-9)
    assert m.get_cluster_subset(FakeKMeans(), X, [0, 2]).index.tolist() == ref["cluster_subset"]
    rng = np.random.default_rng(7)
    rng.normal(size=(40, 6)), rng.normal(size=(6, 6))  # the probe drew these first
    blobs = np.vstack([rng.normal(loc=c, scale=0.3, size=(30, 2)) for c in ((0, 0), (6, 0), (0, 6), (6, 6))])
    with contextlib.redirect_stdout(io.StringIO()):
        elbow = m.find_k_means_clusters(X=pd.DataFrame(blobs), random_state=0, cluster_range=(1, 9))
        fixed = m.find_k_means_clusters(X=pd.DataFrame(blobs), n_clusters=4)
    assert elbow.n_clusters == ref["k_means_elbow"] == 4
    # StreamPoseML's branch without cluster_range passed X= to KMeans and always raised.
    assert ref["k_means_fixed"]["error"] == "TypeError" and fixed.n_clusters == 4
