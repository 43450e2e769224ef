"""StreamPoseML's ``ModelBuilder``, on spml's models and its safe bundle format.

The seed flow keeps working::

    import stream_pose_ml.learning.model_builder as mb
    model_builder = mb.ModelBuilder()
    model_builder.load_and_prep_dataset_from_csv(path="dataset.csv", target="step_type")
    model_builder.set_train_test_split(test_size=0.2, random_state=42)
    model_builder.train_gradient_boost()
    metrics = model_builder.evaluate_model()
    model_builder.save_model_and_datasets(notes="first try", model_type="gradient-boost")

Differences from StreamPoseML 0.3.1, on purpose (see docs/models.md):

* **Saving writes an spml model bundle** (manifest.json + XGBoost UBJ or JSON weights), never a
  pickle, and no training data goes into it. ``retrieve_model_from_pickle`` refuses to unpickle;
  ``retrieve_model_from_bundle`` loads a bundle.
* **The split is group-aware**: with a ``video``/``video_id`` column holding two or more videos,
  whole videos go to the test split; with one video, the test split is the trailing block in time,
  with one window of examples dropped between train and test. Random row splits leak
  neighbouring windows into the test set.
* The target and the id/label columns never enter X (the seed left the target in X, shifting
  feature-importance names); rows are dropped only when the target is missing (features may be
  NaN: frames without a person); balancing works for any number of classes.
* ``train_random_forest`` is XGBoost's random-forest mode (saved as JSON/UBJ); its random search
  uses grouped cross-validation on the training split. ``train_logistic_regression`` is spml's
  numpy logistic regression (weights as JSON) with the seed's grid over C and penalty.
* ``evaluate_model`` returns the metrics (multi-class), and copes with a test split holding one class.
* A CSV written by ``BuildAndFormatDatasetJob.write_dataset_to_csv`` carries its feature spec
  (``<file>.csv.spec.json``), so its bundle computes the same features from raw keypoints live;
  a CSV from elsewhere gives a bundle of "preformatted columns" (``Predictor.predict_rows`` only).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_pose_ml.learning.model_analysis import ModelAnalysisMixin, ModelBuilderError

if TYPE_CHECKING:
    import pandas as pd

# Identifier, position and label columns of spml and StreamPoseML datasets: never features.
__all__ = ["ModelBuilder", "ModelBuilderError"]

META_COLUMNS = frozenset({
    "Unnamed: 0", "", "video", "video_id", "subject", "example", "start_frame", "end_frame", "n_frames",
    "frame", "frame_number", "step_frame_id", "frame_length", "timestamp_ms", "width", "height",
    "sequence_id", "type",
})
MODEL_TYPES = {
    "gradient-boost": "xgboost", "gradient_boost": "xgboost", "xgboost": "xgboost",
    "random-forest": "random_forest", "random_forest": "random_forest", "rf": "random_forest",
    "logistic-regression": "logistic_regression", "logistic_regression": "logistic_regression",
}
TYPE_NAMES = {"xgboost": "gradient-boost", "random_forest": "random-forest",
              "logistic_regression": "logistic-regression"}
# Seed RandomForestClassifier parameter names -> options of spml's random_forest.
RF_PARAMS = {"n_estimators": "n_estimators", "max_depth": "max_depth", "max_features": "colsample_bynode",
             "max_samples": "subsample", "random_state": "seed", "n_jobs": "n_jobs",
             "class_weight": "class_weight", "min_child_weight": "min_child_weight",
             "subsample": "subsample", "colsample_bynode": "colsample_bynode"}


class ModelBuilder(ModelAnalysisMixin):
    """Load a formatted dataset CSV, split it honestly, train, evaluate and save a safe bundle.

    PCA, feature elimination, k-means and MLflow export: ``model_analysis.ModelAnalysisMixin``.
    """

    def __init__(self) -> None:
        self.data: pd.DataFrame | None = None
        self.X: pd.DataFrame | None = None
        self.y: pd.Series | None = None
        self.groups: np.ndarray | None = None
        self.model: Any = None
        self.model_type: str | None = None
        self.metrics: dict[str, Any] | None = None
        self.spec: Any = None
        self.data_file: str | None = None
        self.target: str | None = None
        self._value_mapped: set[str] = set()
        self._span: tuple[np.ndarray, np.ndarray] | None = None
        self.notes: list[str] = []
        self.run_PCA = False
        self.signature: Any = None
        self.input_example: Any = None
        self.feature_importances: list[tuple[str, float]] = []
        self.permutation_feature_importances: list[tuple[str, float]] = []

    # -- data ------------------------------------------------------------------------------------
    def load_and_prep_dataset_from_csv(
        self, path: str | os.PathLike[str], target: str, value_map: dict[str, dict[Any, Any]] | None = None,
        drop_list: list[str] | None = None, column_whitelist: list[str] | None = None,
    ) -> bool:
        """Read a formatted dataset CSV; X = numeric feature columns, y = the target column.

        ``value_map`` maps values per column (unmapped values become missing, as in the seed);
        ``column_whitelist`` keeps only those feature columns; ``drop_list`` removes columns.
        Rows whose target is missing are left out and counted.
        """
        import pandas as pd

        from spml_core.features.spec import read_feature_spec

        path = Path(path)
        if not path.is_file():
            raise ModelBuilderError(f"{path}: dataset CSV not found")
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # pandas raises several types for malformed CSV
            raise ModelBuilderError(f"{path}: cannot read CSV ({exc})") from None
        if target not in df.columns:
            raise ModelBuilderError(f"{path}: no column '{target}'; columns: {', '.join(map(str, df.columns[:12]))} ...")
        for column, mapping in (value_map or {}).items():
            if column not in df.columns:
                raise ModelBuilderError(f"value_map: column '{column}' is not in {path.name}")
            df[column] = df[column].map(mapping)
            self._value_mapped.add(column)
        missing = df[target].isna()
        if missing.any():
            self.notes.append(f"left out {int(missing.sum())} of {len(df)} rows without a '{target}' value")
            df = df[~missing].reset_index(drop=True)
        if df.empty:
            raise ModelBuilderError(f"{path}: no rows carry a '{target}' value")
        features = [c for c in df.columns if c != target and str(c) not in META_COLUMNS
                    and pd.api.types.is_numeric_dtype(df[c])]
        skipped = [c for c in df.columns if c != target and str(c) not in META_COLUMNS and c not in features]
        if skipped:
            self.notes.append(f"not used as features (text columns): {', '.join(map(str, skipped[:8]))}")
        if column_whitelist is not None:
            unknown = [c for c in column_whitelist if c not in df.columns]
            if unknown:
                raise ModelBuilderError(f"column_whitelist: {unknown[:5]} not in {path.name}")
            features = [c for c in features if c in set(column_whitelist)]
        if drop_list:
            features = [c for c in features if c not in set(drop_list)]
        if not features:
            raise ModelBuilderError(f"{path}: no numeric feature columns left to train on")
        video_col = "video" if "video" in df.columns else "video_id" if "video_id" in df.columns else None
        self.groups = (df[video_col].astype(str).to_numpy(dtype=object) if video_col
                       else np.full(len(df), path.stem, dtype=object))
        start_col = next((c for c in ("start_frame", "frame_number", "frame") if c in df.columns), None)
        end_col = next((c for c in ("end_frame", "frame_number", "frame") if c in df.columns), None)
        if start_col and end_col:
            self._span = (df[start_col].to_numpy(np.int64), df[end_col].to_numpy(np.int64))
        else:
            self._span = (np.arange(len(df)), np.arange(len(df)))
        self.data, self.target, self.data_file = df, target, str(path)
        self.X = df[features].astype(np.float32)
        self.y = df[target].astype(str)
        self.spec = read_feature_spec(path)
        for note in self.notes:
            print(f"ModelBuilder: note: {note}")
        return True

    def _require(self, what: str, *attrs: str) -> None:
        for attr in attrs:
            if getattr(self, attr, None) is None:
                step = {"X": "load_and_prep_dataset_from_csv", "X_train": "set_train_test_split",
                        "model": "a train_* method"}[attr]
                raise ModelBuilderError(f"{what}: call {step}() first")

    # -- split -----------------------------------------------------------------------------------
    def set_train_test_split(
        self, test_size: float = 0.2, random_state: int | None = None, balance_off_target: bool = False,
        upsample_minority: bool = False, downsample_majority: bool = False, use_SMOTE: bool = False,
    ) -> None:
        """Split into train and test without leaks (whole videos; or the trailing block of one video).

        With ``balance_off_target``, the training split is balanced: ``upsample_minority`` resamples
        every smaller class up to the largest, ``downsample_majority`` every larger class down to
        the smallest, ``use_SMOTE`` synthesises points between same-class neighbours (k=5).
        """
        self._require("set_train_test_split", "X")
        assert self.X is not None and self.y is not None and self.groups is not None and self._span is not None
        if not 0 < test_size < 1:
            raise ModelBuilderError(f"test_size must be between 0 and 1, got {test_size}")
        n = len(self.X)
        seed = 0 if random_state is None else int(random_state)
        start, end = self._span
        uniq = np.unique(self.groups)
        if uniq.size >= 2:
            rng = np.random.default_rng(seed)
            chosen, taken = [], 0
            for g in rng.permutation(uniq):
                if taken >= test_size * n or len(chosen) == uniq.size - 1:
                    break
                chosen.append(g)
                taken += int((self.groups == g).sum())
            test = np.isin(self.groups, chosen)
            train = ~test
            self.split_note = f"group split: {len(chosen)} of {uniq.size} videos in the test split"
        else:
            order = np.argsort(end, kind="stable")
            n_test = max(1, int(round(test_size * n)))
            test = np.zeros(n, dtype=bool)
            test[order[n - n_test:]] = True
            gap = int(self.spec.window) if self.spec is not None and self.spec.window else 0
            first_test = start[test].min()
            train = ~test & (end < first_test - gap)
            self.split_note = (f"one video: the last {n_test} examples in time are the test split; "
                               f"{int((~test & ~train).sum())} examples within one window before it were dropped")
        train_idx, test_idx = np.flatnonzero(train), np.flatnonzero(test)
        if train_idx.size == 0:
            raise ModelBuilderError("set_train_test_split: no training rows left; use a smaller test_size")
        X_train = self.X.iloc[train_idx].to_numpy(np.float32)
        y_train = self.y.iloc[train_idx].to_numpy(dtype=object)
        g_train = self.groups[train_idx]
        if balance_off_target:
            X_train, y_train, g_train = _balance(X_train, y_train, g_train, seed, upsample_minority,
                                                 downsample_majority, use_SMOTE)
        import pandas as pd

        self.X_train = pd.DataFrame(X_train, columns=self.X.columns)
        self.y_train = pd.Series(y_train, name=self.target)
        self.groups_train = g_train
        self.X_test = self.X.iloc[test_idx].reset_index(drop=True)
        self.y_test = self.y.iloc[test_idx].reset_index(drop=True)
        self.train_index, self.test_index = train_idx, test_idx
        print(f"ModelBuilder: {self.split_note}; {len(self.X_train)} train / {len(self.X_test)} test rows")

    # -- training ----------------------------------------------------------------------------------
    def _fit(self, name: str, options: dict[str, Any]) -> Any:
        from spml_core.registry import Registry

        self._require("train", "X_train")
        registry = Registry().load()
        model = registry.create("model", name, options)
        model.fit(self.X_train.to_numpy(np.float32), self.y_train.to_numpy(dtype=object), groups=self.groups_train)
        self.model, self.model_type, self.model_options = model, name, model.options.model_dump(mode="json")
        self.metrics = None
        self._registry = registry
        self.feature_importances = self.sort_and_format_feature_importances()
        return model

    # -- feature importances -------------------------------------------------------------------------
    def sort_and_format_feature_importances(self, importances: Any = None) -> list[tuple[str, float]]:
        """(feature name, importance) pairs, largest first: the model's own (XGBoost total gain, summing
        to 1) unless ``importances`` (one per X column) is given. Names come from X without the target
        (the seed took them from a table that still held the target, shifting every name by one)."""
        from spml_core.models.importance import native_importance

        self._require("sort_and_format_feature_importances", "model")
        columns = [str(c) for c in self.X_train.columns]
        if importances is None:
            native = native_importance(self.model, columns, 1)
            if native is None:
                return []
            return [(f["column"], f["importance"]) for f in native["features"]]
        values = np.asarray(importances, dtype=np.float64).ravel()
        if values.size != len(columns):
            raise ModelBuilderError(f"sort_and_format_feature_importances: {values.size} importances for "
                                    f"{len(columns)} feature columns")
        order = np.argsort(-values, kind="stable")
        return [(columns[i], float(values[i])) for i in order]

    def permutation_importances(self, n_repeats: int = 3, random_state: int = 0) -> list[tuple[str, float]]:
        """(feature, mean drop in balanced accuracy on the test split when that column is shuffled), largest first.

        Works for every model; measured on held-out rows, so it shows what the model relies on for data
        it has not seen, not what it memorised.
        """
        from spml_core.models.importance import PermutationImportance

        self._require("permutation_importances", "model")
        self._require("permutation_importances", "X_train")
        columns = [str(c) for c in self.X_test.columns]
        perm = PermutationImportance([f"c{i}" for i in range(len(columns))], random_state, n_repeats)
        model_classes = list(self.model.classes_)
        classes = sorted(set(model_classes) | set(self.y_test.astype(str)))
        where = [classes.index(c) for c in model_classes]

        def predict(rows: np.ndarray) -> np.ndarray:
            out = np.zeros((rows.shape[0], len(classes)))
            out[:, where] = self.model.predict_proba(rows)
            return out

        perm(predict, self.X_test.to_numpy(np.float32), self.y_test.astype(str).to_numpy(dtype=object), classes)
        ranked = perm.report()["features"]
        self.permutation_feature_importances = [(columns[int(f["feature"][1:])], f["importance"]) for f in ranked]
        return self.permutation_feature_importances

    def _search(self, name: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        """Pick options by grouped (or blocked) CV on the training split only."""
        from spml_core.models.examples import ExampleSet
        from spml_core.registry import Registry
        from spml_core.models.training import select_options

        X = self.X_train.to_numpy(np.float32)
        y = self.y_train.to_numpy(dtype=object)
        rows = np.arange(len(y))
        span = np.arange(len(y))
        ex = ExampleSet(X=X, y=y, video=self.groups_train, groups=self.groups_train, group_column="video",
                        start=span, end=span, spec=None, columns=list(self.X_train.columns), window=1,
                        frame_features=None, frame_size=None)
        best, table = select_options(ex, rows, name, candidates, "auto", Registry().load())
        self.search_results = table
        return best

    def train_gradient_boost(self, **options: Any) -> Any:
        """XGBoost gradient boosting (spml's ``xgboost`` model); keyword options as in `spml plugins`."""
        return self._fit("xgboost", options)

    def train_random_forest(
        self, use_random_search: bool = False, params: dict[str, Any] | None = None,
        param_dist: dict[str, list[Any]] | None = None, iterations: int = 10, random_state: int = 123,
    ) -> Any:
        """A random forest (XGBoost's random-forest mode); ``param_dist`` search by grouped CV."""
        options = {"seed": random_state, **_rf_options(params or {})}
        if use_random_search:
            if not param_dist:
                raise ModelBuilderError("train_random_forest: use_random_search needs param_dist")
            dist = {k: list(v) for k, v in _rf_options(param_dist).items()}
            rng = np.random.default_rng(random_state)
            keys = list(dist)
            seen, candidates = set(), []
            for _ in range(iterations):
                combo = tuple(dist[k][rng.integers(len(dist[k]))] for k in keys)
                if combo not in seen:
                    seen.add(combo)
                    candidates.append({**options, **dict(zip(keys, combo))})
            options = self._search("random_forest", candidates)
        return self._fit("random_forest", options)

    def train_logistic_regression(self) -> Any:
        """Logistic regression on standardised features; C x penalty chosen by grouped CV (the seed's grid)."""
        candidates = [{"C": c, "penalty": p} for c in (0.1, 1.0, 10.0) for p in ("l1", "l2")]
        return self._fit("logistic_regression", self._search("logistic_regression", candidates))

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate_model(self, print_report: bool = True) -> dict[str, Any]:
        """Metrics on the test split: accuracy, balanced accuracy, macro precision/recall/F1, per class,
        confusion matrix, and ROC-AUC for two classes. Also stored as attributes (seed names)."""
        from spml_core.models.metrics import classification_metrics

        self._require("evaluate_model", "model")
        self._require("evaluate_model", "X_train")
        classes = sorted(set(self.model.classes_) | set(self.y_test.astype(str)))
        proba = self.model.predict_proba(self.X_test.to_numpy(np.float32))
        pred = np.asarray(self.model.classes_, dtype=object)[proba.argmax(axis=1)]
        truth = self.y_test.to_numpy(dtype=object)
        m = classification_metrics(truth, pred, classes)
        per = m["per_class"]
        present = [c for c in classes if per[c]["support"] > 0 or (pred == c).any()]
        m["precision"] = float(np.mean([per[c]["precision"] for c in present])) if present else 0.0
        m["recall"] = float(np.mean([per[c]["recall"] for c in present])) if present else 0.0
        m["auc_roc"] = _binary_auc(truth, proba, list(self.model.classes_))
        m["split"] = self.split_note
        m["evaluation"] = "held-out test split"
        self.metrics = m
        self.accuracy, self.precision, self.recall = m["accuracy"], m["precision"], m["recall"]
        self.f1, self.auc_roc, self.confusion_matrix = m["macro_f1"], m["auc_roc"], np.asarray(
            m["confusion_matrix"]["matrix"])
        if print_report:
            auc = "n/a" if m["auc_roc"] is None else f"{m['auc_roc']:.3f}"
            print(f"{self.split_note}\naccuracy {m['accuracy']:.3f}  balanced accuracy {m['balanced_accuracy']:.3f}  "
                  f"macro-F1 {m['macro_f1']:.3f}  ROC-AUC {auc}")
            for c, v in per.items():
                print(f"  {c}: precision {v['precision']:.3f} recall {v['recall']:.3f} F1 {v['f1']:.3f} (n={v['support']})")
            if len(set(truth.tolist())) < 2:
                print("  note: the test split holds a single class; balanced accuracy is that class's recall")
        return m

    # -- saving and loading --------------------------------------------------------------------------
    def save_model_and_datasets(
        self, notes: str = "", model_type: str | None = None, model_path: str | os.PathLike[str] = "../../data/trained_models",
        zip_bundle: bool = False,
    ) -> Path:
        """Write an spml model bundle ``<model_path>/<model_type>-<ns>/`` (no data inside, no pickle).

        The name keeps the seed's ``{model_type}-{time_ns}`` pattern; pass ``zip_bundle=True`` for a
        ``.zip`` beside it (what the web app uploads). Returns the bundle folder.
        """
        from spml_core import __version__
        from spml_core.models.bundle import Features, Manifest, ModelInfo, TrainingData, component_distribution, now_iso, write_bundle
        from spml_core.models.bundle import zip_bundle as make_zip
        from spml_core.keypoints.sequence import file_sha256

        self._require("save_model_and_datasets", "model")
        if self.run_PCA:
            raise ModelBuilderError("save_model_and_datasets: a model trained on PCA components cannot be saved as "
                                    "a bundle (it would need the projection at prediction time); train without run_pca")
        assert self.X is not None and self.data_file is not None and self.target is not None
        if model_type is not None:
            wanted = MODEL_TYPES.get(str(model_type).lower())
            if wanted is None:
                raise ModelBuilderError(f"model_type {model_type!r}: use one of {', '.join(TYPE_NAMES.values())}")
            if wanted != self.model_type:
                raise ModelBuilderError(f"model_type {model_type!r} does not match the trained model "
                                        f"({TYPE_NAMES[self.model_type or '']})")
        type_name = TYPE_NAMES[self.model_type or ""]
        columns = [str(c) for c in self.X.columns]
        spec = self.spec
        live = (spec is not None and not (self._value_mapped & set(columns))
                and set(columns) <= set(spec.columns))
        features = Features(
            kind="pipeline" if live else "preformatted",
            spec=spec.model_dump(mode="json") if live else None,
            columns=columns, window=spec.window if spec is not None else None,
            note="" if live else "trained on preformatted CSV columns: predict_rows() only, no live features",
        )
        distribution, version = component_distribution(self._registry, self.model_type or "")
        manifest = Manifest(
            schema_version=1, created_at=now_iso(), spml_version=__version__, target=self.target,
            classes=list(self.model.classes_),
            model=ModelInfo(component=self.model_type or "", distribution=distribution, version=version,
                            options=self.model_options, files=[], input_rank=2,
                            training=self.model.training_summary()),
            features=features,
            training_data=TrainingData(
                file=Path(self.data_file).name, sha256=file_sha256(self.data_file), rows=len(self.X),
                examples=len(self.X_train), groups=int(np.unique(self.groups_train).size), group_column="video",
                class_counts={str(k): int(v) for k, v in self.y_train.value_counts().items()},
            ),
            metrics=_headline(self.metrics) if self.metrics else {},
            notes=notes,
        )
        out = Path(model_path) / f"{type_name}-{time.time_ns()}"
        write_bundle(out, manifest, self.model)
        if zip_bundle:
            make_zip(out)
        print(f"ModelBuilder: saved bundle {out}" + (" (live features: yes)" if live else " (preformatted columns)"))
        return out

    def retrieve_model_from_bundle(self, file_path: str | os.PathLike[str]) -> Any:
        """Load a bundle (folder or zip) written by save_model_and_datasets or `spml train`; returns its Predictor."""
        from spml_core.models.predictor import load_bundle

        predictor = load_bundle(file_path)
        self.model, self.model_type = predictor.model, predictor.manifest.model.component
        return predictor

    def retrieve_model_from_pickle(self, file_path: str | os.PathLike[str]) -> Any:
        """Refused: unpickling a file can run arbitrary code. Load spml bundles with retrieve_model_from_bundle."""
        raise ModelBuilderError(
            f"{file_path}: spml never unpickles model files (a pickle can run arbitrary code when loaded). "
            "Re-train and save with save_model_and_datasets(), then load it with retrieve_model_from_bundle()"
        )


def _rf_options(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(RF_PARAMS))
    if unknown:
        raise ModelBuilderError(f"random forest parameters {unknown} are not supported; "
                                f"supported: {', '.join(sorted(RF_PARAMS))}")
    out = {}
    for key, value in params.items():
        if key == "max_features" and not isinstance(value, (int, float, list)):
            raise ModelBuilderError("max_features: give a fraction of the features (e.g. 0.5)")
        if key == "class_weight":
            value = "balanced" if value in ("balanced", "balanced_subsample") else "none"
        out[RF_PARAMS[key]] = value
    return out


def _balance(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, up: bool, down: bool, smote: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balance the training split: upsample, downsample, or SMOTE (k=5 same-class neighbours)."""
    if sum([up, down, smote]) != 1:
        raise ModelBuilderError("balance_off_target: choose exactly one of upsample_minority, "
                                "downsample_majority, use_SMOTE")
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y.astype(str), return_counts=True)
    by_class = {c: np.flatnonzero(y.astype(str) == c) for c in labels}
    if down:
        keep = np.concatenate([rng.choice(idx, counts.min(), replace=False) for idx in by_class.values()])
        keep.sort()
        return X[keep], y[keep], groups[keep]
    target = counts.max()
    if up:
        extra = np.concatenate([rng.choice(idx, target - idx.size, replace=True)
                                for idx in by_class.values() if idx.size < target] or [np.zeros(0, np.int64)])
        keep = np.concatenate([np.arange(len(y)), extra]).astype(np.int64)
        return X[keep], y[keep], groups[keep]
    fill = np.where(np.isfinite(X), X, np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0))
    fill = np.nan_to_num(fill)
    new_X, new_y, new_g = [X], [y], [groups]
    for c, idx in by_class.items():
        need = target - idx.size
        if need <= 0 or idx.size < 2:
            continue
        pts = fill[idx]
        d = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
        np.fill_diagonal(d, np.inf)
        k = min(5, idx.size - 1)
        neighbours = np.argsort(d, axis=1)[:, :k]
        base = rng.integers(idx.size, size=need)
        nb = neighbours[base, rng.integers(k, size=need)]
        u = rng.random((need, 1))
        new_X.append((pts[base] + u * (pts[nb] - pts[base])).astype(X.dtype))
        new_y.append(np.full(need, c, dtype=object))
        new_g.append(groups[idx][base])
    return np.concatenate(new_X), np.concatenate(new_y), np.concatenate(new_g)


def _binary_auc(truth: np.ndarray, proba: np.ndarray, classes: list[str]) -> float | None:
    """ROC-AUC of the second class (Mann-Whitney U with tied ranks); None unless two classes are present."""
    if len(classes) != 2:
        return None
    positive = truth.astype(str) == classes[1]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    scores = proba[:, 1]
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    return {"evaluation": m["evaluation"], "split": m["split"], "balanced_accuracy": m["balanced_accuracy"],
            "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "auc_roc": m["auc_roc"],
            "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()}, "n_test": m["n"]}
