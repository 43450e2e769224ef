"""StreamPoseML's ModelBuilder analysis methods on the facade: filters, PCA, RFE, k-means, importances, MLflow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def csv(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> Path:
    """The seed recipe's pooled windows (23 rows, a few hundred features) written as CSV."""
    import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder

    db = data_builder.BuildAndFormatDatasetJob()
    dataset = db.build_dataset_from_data_files(str(example_annotations.parent), str(example_keypoints_dir))
    formatted = db.format_dataset(dataset, pool_frame_data_by_clip=True, segmentation_strategy="window",
                                  segmentation_window=10, segmentation_window_label="weight_transfer_type")
    return db.write_dataset_to_csv(str(tmp_path_factory.mktemp("csv")), formatted, "pooled")


def builder(csv: Path):
    import stream_pose_ml.learning.model_builder as mb

    b = mb.ModelBuilder()
    b.load_and_prep_dataset_from_csv(str(csv), "weight_transfer_type")
    b.set_train_test_split(test_size=0.3, random_state=1)
    return b


def test_validate_string_is_streamposemls_rule() -> None:
    from stream_pose_ml.learning.model_builder import ModelBuilder, ModelBuilderError

    f = {"WHITELIST": ["nose"], "BLACKLIST": ["3d"], "OR": ["angle", "distance"], "AND": ["2d"]}
    cols = ["nose_x", "nose_angle_3d", "knee_angle_2d", "knee_distance_2d", "knee_distance_3d", "hip_x"]
    assert [c for c in cols if ModelBuilder.validate_string(c, f)] == ["nose_x", "knee_angle_2d", "knee_distance_2d"]
    with pytest.raises(ModelBuilderError, match="missing AND"):
        ModelBuilder.validate_string("x", {"WHITELIST": [], "BLACKLIST": [], "OR": []})


def test_pca_projects_train_and_test_with_train_statistics(csv: Path) -> None:
    b = builder(csv)
    X_train = b.X_train.to_numpy(np.float64)
    b.run_pca(3)
    assert b.run_PCA and b.X_train.shape == (len(X_train), 3) and b.X_test.shape[1] == 3
    ratio = b.pca_explained_variance_ratio_
    assert (np.diff(ratio) <= 1e-12).all() and 0 < ratio.sum() <= 1
    np.testing.assert_allclose(b.X_train.mean().to_numpy(), 0, atol=1e-9)  # centred on the training split
    var = b.X_train.var(ddof=1).to_numpy()
    total = ((X_train - X_train.mean(0)) / np.where(X_train.std(0) == 0, 1, X_train.std(0))).var(0, ddof=1).sum()
    np.testing.assert_allclose(var / total, ratio, rtol=1e-6)
    b.train_logistic_regression()
    from stream_pose_ml.learning.model_builder import ModelBuilderError

    with pytest.raises(ModelBuilderError, match="PCA"):
        b.save_model_and_datasets(model_path=str(csv.parent))


def test_recursive_elimination_keeps_named_columns_and_saves(csv: Path, tmp_path: Path) -> None:
    import spml_core

    b = builder(csv)
    b.train_gradient_boost(n_estimators=20)
    n = b.X.shape[1]
    ranking = b.run_recursive_feature_estimation(8, step=0.5)
    assert len(ranking) == n and sum(r == 1 for _c, r in ranking) == 8
    kept = [c for c, r in ranking if r == 1]
    assert sorted(b.X_train.columns) == sorted(kept) == sorted(b.X.columns)
    imp = b.sort_and_format_feature_importances(b.model.feature_importances())
    assert len(imp) == 8 and {name for name, _v in imp} == set(kept)
    values = [v for _name, v in imp]
    assert values == sorted(values, reverse=True)
    b.evaluate_model(print_report=False)
    out = b.save_model_and_datasets(model_path=str(tmp_path))
    assert spml_core.load_bundle(out).manifest.features.columns == list(b.X.columns)
    whole = builder(csv)
    whole.train_gradient_boost(n_estimators=20)
    before = list(whole.X.columns)
    assert whole.run_recursive_feature_estimation(None, step=0.5)[0][1] == 1 and list(whole.X.columns) == before


def test_k_means_elbow_metrics_and_subset(csv: Path) -> None:
    pytest.importorskip("sklearn")  # an optional dependency of these methods (the test venv has it)
    b = builder(csv)
    X = b.X.dropna(axis=1)
    km = b.find_k_means_clusters(X=X, random_state=0, cluster_range=(1, 8))
    assert set(b.k_means_wcss) == set(range(1, 8)) and 1 <= km.n_clusters < 8
    wcss = list(b.k_means_wcss.values())
    assert wcss == sorted(wcss, reverse=True) or max(np.diff(wcss)) < 1e-6 * wcss[0]
    fixed = b.find_k_means_clusters(X=X, n_clusters=2, random_state=0)  # StreamPoseML raised TypeError here
    m = b.k_means_metrics(fixed, X)
    assert sum(m["cluster_sizes"].values()) == len(X) and -1 <= m["silhouette"] <= 1
    assert m["bcss"] > 0 and m["average_radius"] <= m["max_radius"]
    subset = b.get_cluster_subset(fixed, X, [0])
    assert len(subset) == m["cluster_sizes"][0] and list(subset.columns) == list(X.columns)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="checks the message shown without mlflow")
def test_mlflow_methods_say_how_to_get_mlflow(csv: Path) -> None:
    from stream_pose_ml.learning.model_builder import ModelBuilderError

    b = builder(csv)
    b.train_gradient_boost(n_estimators=5)
    with pytest.raises(ModelBuilderError, match="pip install mlflow"):
        b.set_model_signature()
    with pytest.raises(ModelBuilderError, match="pip install mlflow"):
        b.save_model_to_mlflow(model_path=str(csv.parent))
