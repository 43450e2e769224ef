"""`logistic_regression`: multinomial logistic regression in numpy, saved as plain JSON numbers.

The seed's ModelBuilder offered scikit-learn's ``Pipeline(StandardScaler, LogisticRegression)``;
this is the same model (standardised features, softmax over classes, L2 or L1 penalty with
scikit-learn's scaling ``C * sum(loss) + penalty``) fitted by accelerated proximal gradient
descent (FISTA), so spml_core needs no scikit-learn and the weights are just numbers in JSON.
Missing values (frames without a person) are replaced by the training mean.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core.components import Model, Options
from spml_core.errors import SpmlError
from spml_core.models.labels import balanced_weights, encode_labels, require_two_classes

WEIGHTS_FILE = "logistic_regression.json"


class LogisticOptions(Options):
    """Options of the logistic regression (names as in scikit-learn)."""

    C: float = Field(1.0, gt=0, description="Inverse regularisation strength (smaller: simpler model)")
    penalty: Literal["l2", "l1"] = Field("l2", description="l2 (ridge) or l1 (sparse weights)")
    max_iter: int = Field(1000, ge=1, le=100_000, description="Maximum gradient steps")
    tol: float = Field(1e-5, gt=0, description="Stop when the relative change of the weights is below this")
    class_weight: Literal["balanced", "none"] = Field("balanced", description="balanced: every class counts equally")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LogisticRegressionModel(Model):
    """Softmax regression on standardised feature rows; weights stored as JSON."""

    name = "logistic_regression"
    description = "multinomial logistic regression (numpy, L2 or L1), weights saved as JSON"
    Options: ClassVar[type[Options]] = LogisticOptions
    search_space: ClassVar[dict[str, list[Any]]] = {"C": [0.1, 1.0, 10.0], "penalty": ["l1", "l2"]}

    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray

    def _prepare(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 3:
            X = X.reshape(len(X), -1)
        if X.ndim != 2:
            raise SpmlError(f"expected a 2-D feature table (rows, features), got shape {X.shape}")
        if hasattr(self, "mean_") and X.shape[1] != self.mean_.size:
            raise SpmlError(f"model expects {self.mean_.size} features per row, got {X.shape[1]}")
        return X

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        return np.where(np.isfinite(Z), Z, 0.0)

    def fit(self, X: Any, y: Any, groups: Any = None) -> LogisticRegressionModel:
        """Minimise C * weighted log-loss + penalty with FISTA (step 1/L, L from the data's spectral norm)."""
        X = self._prepare(X)
        self.classes_, codes = encode_labels(y)
        require_two_classes(self.classes_)
        o = self.options
        with np.errstate(all="ignore"):
            finite = np.where(np.isfinite(X), X, np.nan)
            mean = np.nanmean(finite, axis=0)
            std = np.nanstd(finite, axis=0)
        self.mean_ = np.nan_to_num(mean, nan=0.0)
        self.scale_ = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        Z = self._standardise(X)
        n, f = Z.shape
        k = len(self.classes_)
        w = balanced_weights(codes, k) if o.class_weight == "balanced" else np.ones(n)
        Y = np.eye(k)[codes]
        Za = np.hstack([Z, np.ones((n, 1))])
        # Lipschitz constant of the weighted softmax loss gradient: <= max(w) * ||Za||^2 / 2 (times C).
        v = np.random.default_rng(0).normal(size=f + 1)
        for _ in range(30):
            v = Za.T @ (Za @ v)
            v /= np.linalg.norm(v)
        lip = o.C * w.max() * float(np.linalg.norm(Za @ v)) ** 2 / 2 + (1.0 if o.penalty == "l2" else 0.0)
        step = 1.0 / lip
        W = np.zeros((f + 1, k))
        M, t = W.copy(), 1.0
        it = 0
        for it in range(1, o.max_iter + 1):
            P = _softmax(Za @ M)
            grad = o.C * (Za.T @ ((P - Y) * w[:, None]))
            if o.penalty == "l2":
                grad[:-1] += M[:-1]
            W_new = M - step * grad
            if o.penalty == "l1":  # proximal step: soft-threshold every weight but the intercepts
                W_new[:-1] = np.sign(W_new[:-1]) * np.maximum(np.abs(W_new[:-1]) - step, 0.0)
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            M = W_new + ((t - 1) / t_new) * (W_new - W)
            change = np.linalg.norm(W_new - W) / max(np.linalg.norm(W_new), 1e-12)
            W, t = W_new, t_new
            if change < o.tol:
                break
        self.coef_, self.intercept_ = W[:-1].T.copy(), W[-1].copy()
        self.fit_info_ = {"rows": int(n), "iterations": it, "nonzero_weights": int((np.abs(self.coef_) > 0).sum())}
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax probabilities, columns in the order of classes_."""
        Z = self._standardise(self._prepare(X))
        return _softmax(Z @ self.coef_.T + self.intercept_)

    def training_summary(self) -> dict[str, Any]:
        """Iterations and non-zero weights of the last fit."""
        return dict(getattr(self, "fit_info_", {}))

    def save(self, directory: Path) -> list[str]:
        """Write standardisation statistics and weights as JSON numbers."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        data = {"mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "coef": self.coef_.tolist(),
                "intercept": self.intercept_.tolist(), "fit": self.training_summary()}
        (directory / WEIGHTS_FILE).write_text(json.dumps(data), encoding="utf-8")
        return [WEIGHTS_FILE]

    @classmethod
    def load(cls, directory: Path, options: Mapping[str, Any], classes: list[str]) -> LogisticRegressionModel:
        """Read the JSON written by save(), checking every shape."""
        path = Path(directory) / WEIGHTS_FILE
        model = cls(options)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mean = np.asarray(data["mean"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
            coef = np.asarray(data["coef"], dtype=np.float64)
            intercept = np.asarray(data["intercept"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpmlError(f"{path}: missing or invalid ({exc})") from None
        f, k = mean.size, len(classes)
        if scale.shape != (f,) or coef.shape != (k, f) or intercept.shape != (k,):
            raise SpmlError(f"{path}: weight shapes do not match {k} classes x {f} features")
        model.mean_, model.scale_, model.coef_, model.intercept_ = mean, scale, coef, intercept
        model.classes_ = list(classes)
        model.fit_info_ = dict(data.get("fit") or {})
        return model
