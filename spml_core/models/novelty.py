"""Novelty: is a window like any class the model was trained on? (the second half of the "unknown" answer)

Classifiers extrapolate: a tree model asked about a body it never saw (joints in the wrong places, a
mirrored or upside-down person) still answers one of its classes, often at 99 %. So besides the
calibrated-probability threshold, a bundle stores each class's mean feature row and the pooled
within-class spread, and a window whose root-mean-square z-distance to the *nearest* class mean is
above a threshold is answered ``unknown``. The threshold is chosen by cross-validation: the ``keep``
quantile (default 0.99) of the distances of held-out rows to the means of their fold's training rows,
i.e. 99 % of genuinely new, but ordinary, windows pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SCALE = 1e-3


def fit_centroids(X: np.ndarray, y: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean rows (k, d) and the pooled within-class standard deviation per feature (d,)."""
    X = np.asarray(X, dtype=np.float64)
    centers = np.zeros((len(classes), X.shape[1]))
    resid = np.empty_like(X)
    for i, c in enumerate(classes):
        rows = y == c
        if not rows.any():
            centers[i] = np.nan
            continue
        with np.errstate(all="ignore"):
            centers[i] = np.nanmean(X[rows], axis=0)
        resid[rows] = X[rows] - centers[i]
    with np.errstate(all="ignore"):
        scale = np.sqrt(np.nanmean(resid**2, axis=0))
        overall = np.nanstd(X, axis=0)
    scale = np.where(np.isfinite(scale), scale, 1.0)
    # Features constant within classes would make any change infinitely novel: floor the spread.
    floor = np.maximum(MIN_SCALE, 0.05 * np.where(np.isfinite(overall), overall, 0.0))
    return np.nan_to_num(centers, nan=np.inf), np.maximum(scale, floor)


def distance(X: np.ndarray, centers: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """RMS z-distance of each row to the nearest class mean (NaN features, e.g. hidden joints, are skipped)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    z = (X[:, None, :] - centers[None, :, :]) / scale[None, None, :]
    with np.errstate(all="ignore"):
        # nanmean copies and counts; most live windows have no NaN and take the plain mean (the same value).
        d = np.sqrt(np.nanmean(z**2, axis=2) if np.isnan(X).any() else np.mean(z**2, axis=2))
    d = np.where(np.isfinite(d), d, np.inf)
    return d.min(axis=1)


def novelty_cv(X: np.ndarray, y: np.ndarray, classes: list[str], folds: list[Any], tested: np.ndarray,
               keep: float = 0.99) -> dict[str, Any]:
    """The distance threshold from held-out rows, and the class means of all rows for the bundle."""
    held = np.full(len(y), np.nan)
    for fold in folds:
        if fold.train.size == 0:
            continue
        centers, scale = fit_centroids(X[fold.train], y[fold.train], classes)
        held[fold.test] = distance(X[fold.test], centers, scale)
    held = held[tested & np.isfinite(held)]
    threshold = float(np.quantile(held, keep)) if held.size and np.isfinite(np.quantile(held, keep)) else None
    centers, scale = fit_centroids(X, y, classes)
    return {
        "method": "RMS z-distance to the nearest class mean; threshold = the "
                  f"{keep:.0%} quantile of held-out rows' distances to their fold's training means",
        "keep": keep, "threshold": threshold,
        "held_out_median": float(np.median(held)) if held.size else None,
        "centers": np.round(centers, 5).tolist(), "scale": np.round(scale, 6).tolist(),
    }
