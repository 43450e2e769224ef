"""The rest of StreamPoseML 0.3.1's ``ModelBuilder``: column filters, PCA, feature elimination,
k-means, feature importances and MLflow export, as a mixin of the facade's ``ModelBuilder``.

Same names, arguments, positions and defaults as StreamPoseML. Differences, on purpose (MIGRATING.md):

* ``run_pca`` standardises and projects with numpy (population std, as sklearn's StandardScaler;
  component signs fixed so the largest loading is positive). A bundle cannot hold the projection, so
  ``save_model_and_datasets`` refuses a model trained on PCA components.
* ``run_recursive_feature_estimation`` eliminates with the trained spml model itself (XGBoost total
  gain, or the logistic regression's absolute standardised weights), refitting on the training split
  after each step; the selected columns keep their names, so the model still saves as a bundle.
  Without ``num_features`` it ranks every column (``feature_ranking``) and changes nothing, as
  StreamPoseML's RFECV branch changed nothing.
* ``find_k_means_clusters`` without ``cluster_range`` works (StreamPoseML passed ``X=`` to KMeans and
  raised TypeError); the elbow is the point of the WCSS curve farthest from the chord between its ends
  (Kneedle without smoothing; kneed is not needed). Nothing is plotted: the numbers are returned.
* ``k_means_metrics`` prints what StreamPoseML printed and returns it as a dict.
* ``sort_and_format_feature_importances`` lives in model_builder.py: (name, importance) pairs.
* ``set_model_signature`` / ``save_model_to_mlflow`` need ``mlflow`` (``pip install mlflow``); without it
  they raise a ModelBuilderError saying so. The export is MLflow's XGBoost flavour in XGBoost's JSON
  format, never a pickle; the logistic regression (no pickle-free MLflow flavour) is refused.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError

if TYPE_CHECKING:
    import pandas as pd

FILTER_KEYS = ("WHITELIST", "BLACKLIST", "OR", "AND")


class ModelBuilderError(SpmlError):
    """A ModelBuilder step was called with bad input or out of order."""


def _need(module: str, what: str) -> Any:
    """Import an optional dependency or say how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"sklearn": "scikit-learn"}.get(module.split(".")[0], module.split(".")[0])
        raise ModelBuilderError(f"{what} needs {package}: pip install {package}") from None


def knee_point(x: np.ndarray, y: np.ndarray) -> int:
    """Index of the elbow of a decreasing convex curve: the point farthest below the chord of its ends."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return 0
    xn = (x - x[0]) / (x[-1] - x[0])
    span = y[0] - y[-1]
    yn = (y - y[-1]) / span if span else np.zeros_like(y)
    # On normalised axes the chord is yn = 1 - xn; a convex decreasing curve lies below it.
    return int(np.argmax((1.0 - xn) - yn))


class ModelAnalysisMixin:
    """StreamPoseML ModelBuilder methods beyond load/split/train/evaluate/save."""

    X: Any
    X_train: Any
    X_test: Any
    y_train: Any
    model: Any
    model_type: str | None
    groups_train: Any

    # -- column filters --------------------------------------------------------------------------
    @staticmethod
    def validate_string(candidate_string: str, filters: dict[str, list[str]]) -> bool:
        """True if the string matches WHITELIST, or both the OR and AND filters, and no BLACKLIST item."""
        missing = [k for k in FILTER_KEYS if k not in filters]
        if missing:
            raise ModelBuilderError(f"validate_string: filters needs the keys {', '.join(FILTER_KEYS)}; missing "
                                f"{', '.join(missing)}")
        whitelist = any(item in candidate_string for item in filters["WHITELIST"])
        blacklist = any(item in candidate_string for item in filters["BLACKLIST"])
        any_of = any(item in candidate_string for item in filters["OR"])
        all_of = all(item in candidate_string for item in filters["AND"])
        return (whitelist or (any_of and all_of)) and not blacklist

    # -- PCA -------------------------------------------------------------------------------------
    def run_pca(self, num_components: int = 5) -> None:
        """Replace X_train/X_test by their first num_components principal components (fit on train)."""
        import pandas as pd

        self._require("run_pca", "X_train")  # type: ignore[attr-defined]
        train = np.asarray(self.X_train, dtype=np.float64)
        test = np.asarray(self.X_test, dtype=np.float64)
        if not 1 <= int(num_components) <= min(train.shape):
            raise ModelBuilderError(f"run_pca: num_components must be 1..{min(train.shape)}, got {num_components}")
        if np.isnan(train).any() or np.isnan(test).any():
            raise ModelBuilderError("run_pca: the features hold missing values (frames without a person); "
                                "drop those rows or columns first")
        mean = train.mean(axis=0)
        scale = train.std(axis=0)
        scale[scale == 0] = 1.0  # constant columns stay 0, as in StandardScaler
        z_train, z_test = (train - mean) / scale, (test - mean) / scale
        _u, s, vt = np.linalg.svd(z_train, full_matrices=False)
        signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
        vt = vt * signs[:, None]
        var = s**2 / max(len(train) - 1, 1)
        ratio = var / var.sum()
        k = int(num_components)
        self.pca_components_, self.pca_mean_, self.pca_scale_ = vt[:k], mean, scale
        self.pca_explained_variance_ratio_ = ratio[:k]
        print("PCA Variance Ratio", ratio[:k])
        self.X_train = pd.DataFrame(z_train @ vt[:k].T)
        self.X_test = pd.DataFrame(z_test @ vt[:k].T)
        self.run_PCA = True

    # -- feature importances and elimination ---------------------------------------------------------
    def _importances(self, model: Any) -> np.ndarray:
        if hasattr(model, "feature_importances"):
            return np.asarray(model.feature_importances(), dtype=np.float64)
        if hasattr(model, "coef_"):  # standardised inputs: weight size is comparable across columns
            return np.abs(np.asarray(model.coef_, dtype=np.float64)).sum(axis=0)
        raise ModelBuilderError(f"model '{self.model_type}' gives no feature importances")

    def run_recursive_feature_estimation(self, num_features: int | None, *, step: int | float = 1) -> list[tuple[str, int]]:
        """Eliminate the least important columns (``step`` at a time) down to num_features, refitting the model.

        Returns (column, rank) pairs, rank 1 = kept (sklearn's RFE ranking); with num_features the
        training and test splits (and X) keep only the selected columns and the model is refitted.
        """
        from spml_core.registry import Registry

        self._require("run_recursive_feature_estimation", "model")  # type: ignore[attr-defined]
        if getattr(self, "run_PCA", False):
            raise ModelBuilderError("run_recursive_feature_estimation: run it before run_pca (columns have no names after)")
        columns = [str(c) for c in self.X_train.columns]
        target = int(num_features) if num_features else 1
        if not 1 <= target <= len(columns):
            raise ModelBuilderError(f"run_recursive_feature_estimation: num_features must be 1..{len(columns)}, "
                                f"got {num_features}")
        per_step = max(1, int(step * len(columns)) if isinstance(step, float) and step < 1 else int(step))
        registry = Registry().load()
        X = self.X_train.to_numpy(np.float32)
        y = self.y_train.to_numpy(dtype=object)
        alive = list(range(len(columns)))
        rank = np.ones(len(columns), dtype=np.int64)
        rounds: list[list[int]] = []
        while len(alive) > target:
            model = registry.create("model", self.model_type or "", getattr(self, "model_options", {}))
            model.fit(X[:, alive], y, groups=self.groups_train)
            imp = self._importances(model)
            drop = min(per_step, len(alive) - target)
            worst = np.argsort(imp, kind="stable")[:drop]
            rounds.append([alive[i] for i in worst])
            alive = [c for i, c in enumerate(alive) if i not in set(worst.tolist())]
        for r, dropped in enumerate(reversed(rounds), start=2):
            rank[dropped] = r
        ranking = sorted(zip(columns, rank.tolist()), key=lambda t: t[1])
        self.feature_ranking = ranking
        print("Feature Ranks (top 15)")
        for feature, r in ranking[:15]:
            print(f"{feature}: {r}")
        if num_features:
            keep = [columns[i] for i in sorted(alive)]
            self.X_train, self.X_test, self.X = self.X_train[keep], self.X_test[keep], self.X[keep]
            self._fit(self.model_type or "", getattr(self, "model_options", {}))  # type: ignore[attr-defined]
        return ranking

    # -- k-means -----------------------------------------------------------------------------------
    def find_k_means_clusters(
        self, X: pd.DataFrame | None = None, n_clusters: int = 3, random_state: int | None = None,
        cluster_range: tuple[int, int] | None = None,
    ) -> Any:
        """A fitted sklearn KMeans: n_clusters, or the elbow of the WCSS curve over range(*cluster_range)."""
        cluster = _need("sklearn.cluster", "find_k_means_clusters")
        data = self._cluster_input(X, "find_k_means_clusters")
        if cluster_range is not None:
            ks = list(range(int(cluster_range[0]), int(cluster_range[1])))
            if len(ks) < 1 or ks[0] < 1:
                raise ModelBuilderError(f"find_k_means_clusters: cluster_range {cluster_range} gives no cluster counts")
            wcss = {}
            for k in ks:
                wcss[k] = float(cluster.KMeans(n_init="auto", n_clusters=k, random_state=random_state).fit(data).inertia_)
            self.k_means_wcss = wcss
            n_clusters = ks[knee_point(np.array(ks), np.array(list(wcss.values())))]
            print("Optimal Number of Clusters:", n_clusters)
            print("Optimal K-means Scores:")
        kmeans = cluster.KMeans(n_init="auto", n_clusters=int(n_clusters), random_state=random_state).fit(data)
        self.k_means_metrics(kmeans=kmeans, X=X)
        return kmeans

    def _cluster_input(self, X: Any, what: str) -> np.ndarray:
        data = self.X if X is None else X
        if data is None:
            raise ModelBuilderError(f"{what}: pass X or call load_and_prep_dataset_from_csv() first")
        arr = np.asarray(data, dtype=np.float64)
        if np.isnan(arr).any():
            raise ModelBuilderError(f"{what}: X holds missing values (frames without a person); drop or fill them first")
        return arr

    def k_means_metrics(self, kmeans: Any, X: pd.DataFrame | None = None) -> dict[str, Any]:
        """Silhouette, between/within sums of squares, max/average radius and cluster sizes; printed and returned."""
        metrics = _need("sklearn.metrics", "k_means_metrics")
        data = self._cluster_input(X, "k_means_metrics")
        labels = np.asarray(kmeans.labels_)
        wcss = float(kmeans.inertia_)
        total = float(np.sum(np.var(data, axis=0) * (data.shape[0] - 1)))
        radii = np.linalg.norm(data - kmeans.cluster_centers_[labels], axis=1)
        uniq, counts = np.unique(labels, return_counts=True)
        out = {
            "silhouette": float(metrics.silhouette_score(data, labels)) if 1 < uniq.size < len(data) else None,
            "bcss": total - wcss, "sse": wcss, "max_radius": float(radii.max()),
            "average_radius": float(radii.sum() / data.shape[0]),
            "cluster_sizes": {int(k): int(v) for k, v in zip(uniq, counts)},
        }
        print("K Means Evaluation")
        print("Silhouette Score:", out["silhouette"])
        print("\nBetween Clusters Sum of Squares (BCSS):", out["bcss"])
        print("\nSum of Squares Error (SSE):", out["sse"])
        print("\nMaximum Radius:", out["max_radius"])
        print("\nAverage Radius:", out["average_radius"])
        return out

    @staticmethod
    def get_cluster_subset(kmeans: Any, X: pd.DataFrame, cluster_list: list) -> pd.DataFrame:
        """The rows of X whose k-means cluster is in cluster_list."""
        labels = np.asarray(kmeans.labels_)
        if len(labels) != len(X):
            raise ModelBuilderError(f"get_cluster_subset: kmeans was fitted on {len(labels)} rows, X has {len(X)}")
        return X[np.isin(labels, list(cluster_list))]

    # -- MLflow -------------------------------------------------------------------------------------
    def _booster(self, model: Any) -> Any:
        booster = getattr(model, "booster_", None)
        if booster is None:
            raise ModelBuilderError(
                f"MLflow export: '{self.model_type}' has no pickle-free MLflow flavour; train_gradient_boost() or "
                "train_random_forest() export as XGBoost JSON (spml bundles hold every model type)")
        return booster

    def set_model_signature(self, X_train: pd.DataFrame | None = None) -> Any:
        """MLflow's signature and a one-row input example of the model (needs mlflow); False without a model."""
        signature_mod = _need("mlflow.models.signature", "set_model_signature")
        data = self.X_train if X_train is None else X_train
        if self.model is None:
            return False
        self.signature = signature_mod.infer_signature(data, self.model.predict(np.asarray(data, dtype=np.float32)))
        self.input_example = data.head(1)
        return self.signature, self.input_example

    def save_model_to_mlflow(self, model: object | None = None, model_path: str = "../../data/trained_models") -> str:
        """Save the model as an MLflow model folder (XGBoost JSON, no pickle) and a zip of it; returns the folder."""
        mlflow_xgb = _need("mlflow.xgboost", "save_model_to_mlflow")
        booster = self._booster(model if model is not None else self.model)
        name = f"{self.model_type}-mlflow-{time.time_ns()}"
        destination = os.path.abspath(model_path)
        os.makedirs(destination, exist_ok=True)
        target = os.path.join(destination, name)
        tmp = target + ".part"
        mlflow_xgb.save_model(booster, path=tmp, model_format="json", signature=getattr(self, "signature", None),
                              input_example=getattr(self, "input_example", None))
        os.replace(tmp, target)
        print(f"Model '{name}' successfully saved to {target}")
        archive = shutil.make_archive(target + ".zip.part", "zip", target)
        os.replace(archive, target + ".zip")
        print(f"Zipped model directory to {target}.zip")
        return target
