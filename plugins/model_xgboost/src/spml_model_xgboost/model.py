"""XGBoost classifiers on feature rows: gradient boosting ("xgboost") and random forests ("random_forest").

Both use XGBoost's native API (no scikit-learn needed), handle NaN features (frames without a
person) natively, and save with ``Booster.save_model`` to UBJ or JSON, formats that hold only
trees and numbers, so loading a model can never run code. The seed's ``train_random_forest``
maps onto "random_forest": XGBoost's random-forest mode (one round of ``num_parallel_tree``
trees with row and column subsampling, learning rate 1), which saves the same safe way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core import (
    balanced_weights,
    encode_labels,
    require_two_classes,
    validation_split,
)
from spml_core.components import Model, Options
from spml_core.errors import SpmlError

from spml_model_xgboost.trees import TreeEnsemble, from_booster

FITTED_FILE = "xgboost.json"
SMALL_TABLE_CELLS = 2_000_000
FAST_ROWS = 16  # up to this many rows, the numpy tree walk beats XGBoost's per-call set-up (trees.py)


def _as_rows(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 3:
        X = X.reshape(X.shape[0], -1)
    if X.ndim != 2:
        raise SpmlError(f"expected a 2-D feature table (rows, features), got an array of shape {X.shape}")
    return X


class _XGBBase(Model):
    """Shared fitting, prediction and (safe) persistence of an XGBoost booster."""

    booster_: Any
    n_features_: int
    fit_info_: dict[str, Any]

    def _params(self, n_classes: int) -> dict[str, Any]:
        raise NotImplementedError

    def _objective(self, n_classes: int) -> dict[str, Any]:
        if n_classes == 2:
            return {"objective": "binary:logistic", "eval_metric": "logloss"}
        return {"objective": "multi:softprob", "num_class": n_classes, "eval_metric": "mlogloss"}

    def _weights(self, codes: np.ndarray, n_classes: int) -> np.ndarray | None:
        return balanced_weights(codes, n_classes) if self.options.class_weight == "balanced" else None

    def _dmatrix(self, X: np.ndarray, codes: np.ndarray, weights: np.ndarray | None) -> Any:
        import xgboost as xgb

        return xgb.DMatrix(X, label=codes, weight=weights, nthread=self._threads(X))

    def _threads(self, X: np.ndarray) -> int:
        # OpenMP threads busy-wait: on small tables (or a busy machine) one thread is several
        # times faster than all cores, so all cores only pay off on large tables.
        if self.options.n_jobs:
            return int(self.options.n_jobs)
        return 0 if X.size >= SMALL_TABLE_CELLS else 1

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of classes_."""
        X = _as_rows(X)
        if X.shape[1] != self.n_features_:
            raise SpmlError(f"model expects {self.n_features_} features per row, got {X.shape[1]}")
        trees = self._trees() if X.shape[0] <= FAST_ROWS else None
        raw = trees.predict(X) if trees is not None else self.booster_.inplace_predict(X)
        p = np.asarray(raw, dtype=np.float64)
        if len(self.classes_) == 2:
            p = p.reshape(-1)
            return np.column_stack([1.0 - p, p])
        return p.reshape(X.shape[0], len(self.classes_))

    def _trees(self) -> TreeEnsemble | None:
        # Built on the first small prediction (live windows), not at fit time: training never needs it.
        booster, trees = self.__dict__.get("trees_", (None, None))
        if booster is not self.booster_:  # first call, or refitted since
            booster, trees = self.booster_, from_booster(self.booster_, self.n_features_)
            self.__dict__["trees_"] = (booster, trees)
        return trees

    importance_kind = "total gain (XGBoost), normalised to sum 1"

    def feature_importances(self) -> np.ndarray:
        """Total gain of each input column over all trees (0 for columns never split on)."""
        scores = self.booster_.get_score(importance_type="total_gain")
        out = np.zeros(self.n_features_)
        for key, value in scores.items():
            # Features without names are called f0, f1, ... by XGBoost.
            out[int(key[1:])] = float(value)
        return out

    def training_summary(self) -> dict[str, Any]:
        """Rounds, best iteration and validation rows of the last fit."""
        return dict(getattr(self, "fit_info_", {}))

    def save(self, directory: Path) -> list[str]:
        """Write the booster as UBJ or JSON (XGBoost's own formats) plus a small JSON of fitted facts."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"model.{self.options.format}"
        self.booster_.save_model(str(directory / name))
        fitted = {"n_features": self.n_features_, "model_file": name, "fit": self.training_summary()}
        (directory / FITTED_FILE).write_text(json.dumps(fitted, indent=2), encoding="utf-8")
        return [name, FITTED_FILE]

    @classmethod
    def load(cls, directory: Path, options: Mapping[str, Any], classes: list[str]) -> _XGBBase:
        """Load a booster written by save(); checks its class count and feature count."""
        import xgboost as xgb

        directory = Path(directory)
        model = cls(options)
        try:
            fitted = json.loads((directory / FITTED_FILE).read_text(encoding="utf-8"))
            name = str(fitted["model_file"])
            n_features = int(fitted["n_features"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpmlError(f"{directory / FITTED_FILE}: missing or invalid ({exc})") from None
        if name not in ("model.ubj", "model.json"):
            raise SpmlError(f"{directory / FITTED_FILE}: model_file must be model.ubj or model.json, got {name!r}")
        booster = xgb.Booster()
        try:
            booster.load_model(str(directory / name))
        except xgb.core.XGBoostError as exc:
            raise SpmlError(f"{directory / name}: not a valid XGBoost model ({str(exc).splitlines()[0]})") from None
        n_out = int(json.loads(booster.save_config())["learner"]["learner_model_param"]["num_class"])
        expected = 0 if len(classes) == 2 else len(classes)
        if n_out != expected:
            raise SpmlError(f"{directory / name}: model has {n_out or 2} output classes, manifest lists {len(classes)}")
        if booster.num_features() != n_features:
            raise SpmlError(f"{directory / name}: model has {booster.num_features()} features, expected {n_features}")
        booster.set_param({"nthread": model.options.n_jobs or 1})
        model.booster_, model.classes_, model.n_features_ = booster, list(classes), n_features
        model.fit_info_ = dict(fitted.get("fit") or {})
        return model


class XGBoostOptions(Options):
    """Options of the gradient-boosting classifier."""

    n_estimators: int = Field(300, ge=1, le=100_000, description="Maximum boosting rounds")
    max_depth: int = Field(4, ge=1, le=32, description="Depth of each tree")
    learning_rate: float = Field(0.1, gt=0, le=1, description="Shrinkage per round (eta)")
    subsample: float = Field(0.9, gt=0, le=1, description="Row fraction sampled per tree")
    colsample_bytree: float = Field(0.8, gt=0, le=1, description="Feature fraction sampled per tree")
    min_child_weight: float = Field(1.0, ge=0, description="Minimum summed weight in a leaf")
    early_stopping_rounds: int | None = Field(
        20, ge=1, description="Stop when the validation loss has not improved for this many rounds (None: off)"
    )
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of rows (whole groups when groups are given) held out for early stopping"
    )
    refit: bool = Field(True, description="After early stopping, refit on all rows with the best number of rounds")
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="balanced: weight rows so that every class counts equally"
    )
    seed: int = Field(0, description="Random seed (subsampling, validation split)")
    n_jobs: int | None = Field(None, ge=1, description="Threads (default: 1 below 2M table cells, else all cores; 1 for prediction)")
    format: Literal["ubj", "json"] = Field("ubj", description="Saved model format: ubj (compact) or json (readable)")


class XGBoostModel(_XGBBase):
    """Gradient-boosted trees on feature rows (binary or multi-class), with early stopping."""

    name = "xgboost"
    description = "XGBoost gradient-boosted trees on feature rows; early stopping on a group-respecting split"
    Options: ClassVar[type[Options]] = XGBoostOptions
    search_space: ClassVar[dict[str, list[Any]]] = {"max_depth": [3, 6], "learning_rate": [0.05, 0.2]}

    def _params(self, n_classes: int) -> dict[str, Any]:
        o = self.options
        return {
            "tree_method": "hist", "max_depth": o.max_depth, "eta": o.learning_rate, "subsample": o.subsample,
            "colsample_bytree": o.colsample_bytree, "min_child_weight": o.min_child_weight, "seed": o.seed,
            "verbosity": 0, **self._objective(n_classes),
        }

    def fit(self, X: Any, y: Any, groups: Any = None) -> XGBoostModel:
        """Fit; with early stopping, a validation split by group (or the trailing rows) picks the rounds."""
        import xgboost as xgb

        X = _as_rows(X)
        classes, codes = encode_labels(y)
        require_two_classes(classes)
        if len(codes) != X.shape[0]:
            raise SpmlError(f"X has {X.shape[0]} rows but y has {len(codes)} labels")
        o = self.options
        params = {**self._params(len(classes)), "nthread": self._threads(X)}
        weights = self._weights(codes, len(classes))
        split = validation_split(len(codes), groups, o.validation_fraction, o.seed) if o.early_stopping_rounds else None
        info: dict[str, Any] = {"rows": int(len(codes)), "max_rounds": o.n_estimators}
        if split is not None:
            tr, va = split
            w = (lambda idx: None if weights is None else weights[idx])
            dtrain = self._dmatrix(X[tr], codes[tr], w(tr))
            dvalid = self._dmatrix(X[va], codes[va], w(va))
            booster = xgb.train(params, dtrain, o.n_estimators, evals=[(dvalid, "validation")],
                                early_stopping_rounds=o.early_stopping_rounds, verbose_eval=False)
            best = int(booster.best_iteration) + 1
            info |= {"validation_rows": int(va.size), "best_rounds": best,
                     "best_validation_loss": float(booster.best_score)}
            if o.refit:
                booster = xgb.train(params, self._dmatrix(X, codes, weights), best, verbose_eval=False)
            else:
                booster = booster[:best]
            info["rounds"] = best
        else:
            booster = xgb.train(params, self._dmatrix(X, codes, weights), o.n_estimators, verbose_eval=False)
            info["rounds"] = o.n_estimators
        booster.set_param({"nthread": o.n_jobs or 1})
        self.booster_, self.classes_, self.n_features_, self.fit_info_ = booster, classes, X.shape[1], info
        return self


class RandomForestOptions(Options):
    """Options of the random-forest classifier (XGBoost's random-forest mode)."""

    n_estimators: int = Field(200, ge=1, le=100_000, description="Number of trees")
    max_depth: int = Field(8, ge=1, le=32, description="Depth of each tree")
    subsample: float = Field(0.8, gt=0, lt=1, description="Row fraction sampled per tree (bootstrap-like)")
    colsample_bynode: float = Field(0.8, gt=0, le=1, description="Feature fraction sampled per split")
    min_child_weight: float = Field(1.0, ge=0, description="Minimum summed weight in a leaf")
    class_weight: Literal["balanced", "none"] = Field("balanced", description="balanced: every class counts equally")
    seed: int = Field(0, description="Random seed")
    n_jobs: int | None = Field(None, ge=1, description="Threads (default: 1 below 2M table cells, else all cores)")
    format: Literal["ubj", "json"] = Field("ubj", description="Saved model format")


class XGBoostRandomForest(_XGBBase):
    """A random forest (XGBoost's random-forest mode): one round of many subsampled trees."""

    name = "random_forest"
    description = "Random forest via XGBoost's random-forest mode (saved as XGBoost JSON/UBJ, no pickle)"
    Options: ClassVar[type[Options]] = RandomForestOptions
    search_space: ClassVar[dict[str, list[Any]]] = {"max_depth": [6, 12], "colsample_bynode": [0.5, 0.8]}

    def _params(self, n_classes: int) -> dict[str, Any]:
        o = self.options
        return {
            "tree_method": "hist", "eta": 1.0, "num_parallel_tree": o.n_estimators, "max_depth": o.max_depth,
            "subsample": o.subsample, "colsample_bynode": o.colsample_bynode, "min_child_weight": o.min_child_weight,
            "seed": o.seed, "verbosity": 0, **self._objective(n_classes),
        }

    def fit(self, X: Any, y: Any, groups: Any = None) -> XGBoostRandomForest:
        """Fit the forest in one boosting round (no early stopping: a forest does not overfit by rounds)."""
        import xgboost as xgb

        X = _as_rows(X)
        classes, codes = encode_labels(y)
        require_two_classes(classes)
        if len(codes) != X.shape[0]:
            raise SpmlError(f"X has {X.shape[0]} rows but y has {len(codes)} labels")
        dall = self._dmatrix(X, codes, self._weights(codes, len(classes)))
        params = {**self._params(len(classes)), "nthread": self._threads(X)}
        booster = xgb.train(params, dall, 1, verbose_eval=False)
        booster.set_param({"nthread": self.options.n_jobs or 1})
        self.booster_, self.classes_, self.n_features_ = booster, classes, X.shape[1]
        self.fit_info_ = {"rows": int(len(codes)), "trees": self.options.n_estimators}
        return self
