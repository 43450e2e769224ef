"""Calibrated probabilities and the "unknown" answer (docs/models.md, "Trusting a model").

Method: temperature scaling of the model's log-probabilities, ``softmax(log p / T)``, with the single
temperature ``T`` chosen to minimise the log-loss of the out-of-fold predictions of cross-validation
(a grid of 241 values from 0.05 to 20). It keeps the ranking of classes (the label never changes),
only how sure the probabilities sound. Scores "after" calibration are cross-fitted: each fold's
predictions are rescaled with the temperature fitted on the other folds, so they are not judged on
the data that chose ``T``.

The temperature is kept only when the cross-fitted log-loss is lower than the model's own; otherwise
(small or uneven folds, where the temperature fitted on some folds does not carry to the others) the
bundle keeps ``T = 1`` and ``metrics.json`` says so (``applied: false``, with both figures).

Rejection: the threshold on the calibrated top probability below which a prediction is answered
``unknown`` is the ``1 - keep`` quantile of the calibrated top probability of the *correct*
out-of-fold predictions: by default it gives up at most 5 % of the answers the model got right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TEMPERATURES = np.geomspace(0.05, 20.0, 241)
ECE_BINS = 10
EPS = 1e-6


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities (n, k): softmax(log p / T), rows summing to one."""
    p = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0)
    z = np.log(p) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the mean negative log-likelihood of integer labels ``y``."""
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0))
    z = logp[None, :, :] / TEMPERATURES[:, None, None]  # (T, n, k), all temperatures at once
    z -= z.max(axis=2, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=2))
    nll = (lse - z[:, np.arange(y.size), y]).mean(axis=1)
    return float(TEMPERATURES[int(np.argmin(nll))])


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the row-weighted gap between confidence and accuracy over equal-width bins."""
    if y.size == 0:
        return 0.0
    conf = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, conf, bins) - np.bincount(which, hit, bins))
    return float(gap.sum() / y.size) if n.sum() else 0.0


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of the squared distance to the one-hot label."""
    if y.size == 0:
        return 0.0
    onehot = np.zeros_like(proba, dtype=np.float64)
    onehot[np.arange(y.size), y] = 1.0
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def reliability_bins(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per confidence bin: mean confidence, accuracy and count (for the reliability diagram)."""
    conf = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, bins) / n
        acc = np.bincount(which, hit, bins) / n
    return {"confidence": np.nan_to_num(mean_conf).tolist(), "accuracy": np.nan_to_num(acc).tolist(),
            "count": n.astype(int).tolist()}


def rejection_threshold(proba: np.ndarray, y: np.ndarray, keep: float = 0.95) -> float:
    """Calibrated top probability below which an answer is ``unknown``: keeps ``keep`` of the correct answers."""
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == y
    if not right.any():
        return 0.0
    return float(np.quantile(conf[right], 1.0 - keep))


def calibrate_cv(
    proba: np.ndarray, y: np.ndarray, fold_of: np.ndarray, keep: float = 0.95, reject: bool = True
) -> dict[str, Any]:
    """Temperature, before/after ECE and Brier (cross-fitted by fold) and the rejection threshold.

    ``proba`` are out-of-fold probabilities of tested rows, ``y`` their integer labels and
    ``fold_of`` the fold that tested each row.
    """
    fitted = fit_temperature(proba, y)
    crossfit = np.empty_like(proba, dtype=np.float64)
    folds = np.unique(fold_of)
    for f in folds:
        test = fold_of == f
        other = ~test
        t = fit_temperature(proba[other], y[other]) if len(folds) > 1 and other.any() else fitted
        crossfit[test] = apply_temperature(proba[test], t)
    # Calibration is kept only when it helps on rows that did not choose it; on small or uneven folds
    # the temperature can swing so much that rescaled probabilities are worse than the model's own.
    nll_before, nll_after = log_loss(proba, y), log_loss(crossfit, y)
    applied = nll_after < nll_before
    final = crossfit if applied else np.asarray(proba, dtype=np.float64)
    threshold = rejection_threshold(final, y, keep) if reject else 0.0
    rejected = final.max(axis=1) < threshold
    accepted = ~rejected
    acc_kept = float((final[accepted].argmax(axis=1) == y[accepted]).mean()) if accepted.any() else None
    return {
        "method": "temperature scaling of log-probabilities, fitted on out-of-fold predictions; kept only when "
                  "the cross-fitted log-loss improves",
        "applied": bool(applied),
        "temperature": fitted if applied else 1.0,
        "fitted_temperature": fitted,
        "ece_before": expected_calibration_error(proba, y),
        "ece_after": expected_calibration_error(final, y),
        "ece_crossfit": expected_calibration_error(crossfit, y),
        "brier_before": brier_score(proba, y),
        "brier_after": brier_score(final, y),
        "log_loss_before": nll_before, "log_loss_crossfit": nll_after,
        "bins": ECE_BINS,
        "reliability_before": reliability_bins(proba, y),
        "reliability_after": reliability_bins(crossfit, y),
        "rejection": {
            "threshold": threshold, "keep_correct": keep if reject else None,
            "rejected_share": float(rejected.mean()) if y.size else 0.0,
            "accuracy_of_accepted": acc_kept,
            "accuracy_of_all": float((final.argmax(axis=1) == y).mean()) if y.size else None,
        },
        "crossfit_proba": final,
    }


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels ``y``."""
    if y.size == 0:
        return 0.0
    return float(-np.log(np.clip(proba[np.arange(y.size), y], EPS, 1.0)).mean())
