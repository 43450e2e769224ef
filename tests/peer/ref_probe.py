"""Run inside the StreamPoseML 0.3.1 venv (python -P, cwd with the seed config.yml): the peer suite's calls.

argv: annotations folder, StreamPoseML sequence folder, spml sequence folder, output JSON path.
Prints nothing it needs; writes one JSON document of signatures, shapes, values and errors.
"""

import contextlib
import inspect
import io
import json
import sys

import numpy as np
import pandas as pd

import stream_pose_ml.jobs.build_and_format_dataset_job as bf
import stream_pose_ml.jobs.process_video_job as pvj
import stream_pose_ml.jobs.process_videos_job as pv
from stream_pose_ml.learning import dataset as ds_mod
from stream_pose_ml.learning import model_builder as mb_mod

ANN, REF_SEQ, SPML_SEQ, OUT = sys.argv[1:5]
CLASSES = {"jobs.build_and_format_dataset_job.BuildAndFormatDatasetJob": bf.BuildAndFormatDatasetJob,
           "jobs.process_videos_job.ProcessVideosJob": pv.ProcessVideosJob,
           "jobs.process_video_job.ProcessVideoJob": pvj.ProcessVideoJob,
           "learning.model_builder.ModelBuilder": mb_mod.ModelBuilder,
           "learning.dataset.Dataset": ds_mod.Dataset}


def signature(fn):
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        out.append([p.name, p.kind.name, default, p.default is inspect.Parameter.empty])
    return out


def public(cls):
    names = [n for n, v in vars(cls).items() if not n.startswith("_") and callable(getattr(cls, n))]
    return {n: signature(getattr(cls, n)) for n in names}


def table(rows):
    df = pd.json_normalize(rows)
    labels = {c: df[c].where(df[c].notna(), None).tolist() for c in ("step_type", "weight_transfer_type") if c in df}
    return {"shape": list(df.shape), "columns": list(df.columns), "labels": labels}


def attempt(fn):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


result = {"signatures": {k: public(c) for k, c in CLASSES.items()},
          "dataset_init": signature(ds_mod.Dataset.__init__)}
db = bf.BuildAndFormatDatasetJob()
with contextlib.redirect_stdout(io.StringIO()):
    dataset = db.build_dataset_from_data_files(annotations_data_directory=ANN, sequence_data_directory=REF_SEQ)
result["dataset"] = {
    k: [len(v) for v in getattr(dataset, k)] for k in ("all_frames", "labeled_frames", "unlabeled_frames")}
first = dataset.all_frames[0]
result["frame_keys"] = sorted(first[0])
result["frame_labels"] = [[f["data"]["frame_number"], f["step_type"], f["weight_transfer_type"]] for f in first]
CASES = {
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
    "err_flatten_no_window": dict(segmentation_strategy="flatten_into_columns"),
    "err_split_no_label": dict(segmentation_strategy="split_on_label"),
    "err_window_no_label": dict(segmentation_strategy="window", segmentation_window=10),
}
formatted = {}
for name, kw in CASES.items():
    formatted[name] = attempt(lambda kw=kw: table(db.format_dataset(dataset, **kw)))
raw = db.format_dataset(dataset, **CASES["raw_joints"])
result["raw_joints_xy"] = pd.json_normalize(raw)[["joints.nose.x", "joints.nose.y", "joints.left_ankle.x"]].to_numpy().tolist()
result["formatted"] = formatted
with contextlib.redirect_stdout(io.StringIO()):
    from_spml = db.build_dataset_from_data_files(annotations_data_directory=ANN, sequence_data_directory=SPML_SEQ)
result["from_spml_json"] = attempt(lambda: table(db.format_dataset(from_spml)))

# ModelBuilder on fixed inputs
m = mb_mod.ModelBuilder()
filters = {"WHITELIST": ["nose"], "BLACKLIST": ["3d"], "OR": ["angle", "distance"], "AND": ["2d"]}
words = ["nose_x", "nose_angle_3d", "knee_angle_2d", "knee_distance_2d", "knee_distance_3d", "hip_x"]
result["validate_string"] = [m.validate_string(w, filters) for w in words]
result["validate_string_missing_key"] = attempt(lambda: m.validate_string("x", {"WHITELIST": []}))
rng = np.random.default_rng(7)
X = pd.DataFrame(rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)), columns=[f"c{i}" for i in range(6)])
m.X = X
result["importances"] = m.sort_and_format_feature_importances(np.array([0.1, 0.4, 0.05, 0.2, 0.15, 0.1]))
m.X_train, m.X_test = X.iloc[:30].reset_index(drop=True), X.iloc[30:].reset_index(drop=True)
with contextlib.redirect_stdout(io.StringIO()):
    m.run_pca(3)
result["pca_train"] = np.abs(m.X_train.to_numpy()).tolist()
result["pca_test"] = np.abs(m.X_test.to_numpy()).tolist()


class FakeKMeans:
    labels_ = np.array([0] * 15 + [1] * 15 + [2] * 10)
    cluster_centers_ = np.vstack([X.iloc[:15].mean(), X.iloc[15:30].mean(), X.iloc[30:].mean()]).astype(float)
    inertia_ = float(sum(((X.iloc[a:b] - X.iloc[a:b].mean()) ** 2).to_numpy().sum() for a, b in ((0, 15), (15, 30), (30, 40))))


buf = io.StringIO()
import matplotlib

matplotlib.use("Agg")
with contextlib.redirect_stdout(buf):
    m.k_means_metrics(FakeKMeans(), X)
result["k_means_metrics_printed"] = buf.getvalue()
result["cluster_subset"] = m.get_cluster_subset(FakeKMeans(), X, [0, 2]).index.tolist()
blobs = np.vstack([rng.normal(loc=c, scale=0.3, size=(30, 2)) for c in ((0, 0), (6, 0), (0, 6), (6, 6))])
with contextlib.redirect_stdout(io.StringIO()):
    km = attempt(lambda: m.find_k_means_clusters(X=pd.DataFrame(blobs), random_state=0, cluster_range=(1, 9)))
result["k_means_elbow"] = km if isinstance(km, dict) else int(km.n_clusters)
result["k_means_fixed"] = attempt(lambda: int(m.find_k_means_clusters(X=pd.DataFrame(blobs), n_clusters=4).n_clusters))
with open(OUT, "w") as fh:
    json.dump(result, fh)
