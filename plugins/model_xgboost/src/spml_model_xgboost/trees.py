"""A booster's trees as flat numpy arrays, for classifying one live window without XGBoost's per-call cost.

``Booster.inplace_predict`` on a single row costs 0.25 ms of Python and C++ set-up on this
2-core machine (array-interface JSON, a config round trip, a proxy DMatrix), and about 1 ms when
frames arrive 33 ms apart and its state has left the CPU caches: more than computing the features.
The trees themselves are a few dozen comparisons. :class:`TreeEnsemble` walks every tree at once,
one depth level per step (vectorised over trees and rows), in XGBoost's own arithmetic: float32
features and thresholds, ``value < threshold`` goes left, a missing value follows the node's default
direction, leaf values added in float32 in tree order onto the base margin, then the objective's
sigmoid or softmax as XGBoost computes them (bit for bit on every row tried).

It is built only for what it reproduces (gbtree boosters with numerical splits and a logistic or
softmax objective) and checks itself against XGBoost on probe rows when built: any difference, and
the model keeps using XGBoost. Large batches (training, evaluation, offline prediction) always go
to XGBoost, which is faster there.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

OBJECTIVES = ("binary:logistic", "multi:softprob")
PROBE_ROWS = 64
TOLERANCE = 1e-6


class TreeEnsemble:
    """Every tree of a gbtree booster in flat arrays (global node indices; -1 marks a leaf)."""

    def __init__(self, roots: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                 threshold: np.ndarray, default_left: np.ndarray, group: np.ndarray, n_groups: int,
                 depth: int, base_margin: np.ndarray, objective: str) -> None:
        self.roots, self.left, self.right, self.feature = roots, left, right, feature
        self.threshold, self.default_left = threshold, default_left
        self.group, self.n_groups, self.depth = group, n_groups, depth
        self.base_margin, self.objective = base_margin.astype(np.float32), objective
        self._leaf = left < 0
        self._by_group = [np.flatnonzero(group == g) for g in range(n_groups)]

    def margins(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (rows, groups): the base margin plus each group's leaf values, in float32."""
        X = np.asarray(X, dtype=np.float32)
        rows = np.arange(X.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (X.shape[0], self.roots.size))
        for _ in range(self.depth):
            value = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.default_left[node], value < self.threshold[node])
            node = np.where(self._leaf[node], node, np.where(go_left, self.left[node], self.right[node]))
        leaves = self.threshold[node]  # a leaf's "split condition" is its value
        out = np.empty((X.shape[0], self.n_groups), dtype=np.float32)
        for g, trees in enumerate(self._by_group):
            terms = np.empty((X.shape[0], trees.size + 1), dtype=np.float32)
            terms[:, 0] = self.base_margin[g]
            terms[:, 1:] = leaves[:, trees]
            # A running float32 sum is sequential: XGBoost's own rounding, in tree order.
            out[:, g] = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """What ``Booster.inplace_predict`` returns: (rows,) for binary:logistic, (rows, classes) for softprob."""
        m = self.margins(X)
        # exp in double rounded to float32 is what glibc's expf gives (correctly rounded); numpy's
        # float32 exp is not, and would differ from XGBoost in the last bit.
        if self.objective == "binary:logistic":
            one = np.float32(1.0)
            return one / (one + _expf(-m[:, 0]))
        z = _expf(m - m.max(axis=1, keepdims=True))
        total = np.zeros(m.shape[0])
        for k in range(m.shape[1]):  # a double sum in class order, as XGBoost's Softmax
            total += z[:, k]
        return z / total.astype(np.float32)[:, None]


def _expf(x: np.ndarray) -> np.ndarray:
    return np.exp(x.astype(np.float64)).astype(np.float32)


def from_booster(booster: Any, n_features: int) -> TreeEnsemble | None:
    """The booster's trees as a TreeEnsemble, or None when it cannot be reproduced exactly (XGBoost then predicts)."""
    try:
        model = json.loads(booster.save_raw("json"))
        learner = model["learner"]
        objective = learner["objective"]["name"]
        gb = learner["gradient_booster"]
        if objective not in OBJECTIVES or gb.get("name") != "gbtree":
            return None
        trees = gb["model"]["trees"]
        groups = [int(g) for g in gb["model"]["tree_info"]]
    except (KeyError, TypeError, ValueError):
        return None
    if not trees:
        return None
    n_groups = max(groups) + 1
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("left", "right", "feature", "threshold", "default_left")}
    roots, offset, depth = [], 0, 0
    for tree in trees:
        if any(int(s) != 0 for s in tree.get("split_type", [])):  # categorical splits
            return None
        left = np.asarray(tree["left_children"], dtype=np.int64)
        right = np.asarray(tree["right_children"], dtype=np.int64)
        roots.append(offset)
        parts["left"].append(np.where(left < 0, -1, left + offset))
        parts["right"].append(np.where(right < 0, -1, right + offset))
        parts["feature"].append(np.asarray(tree["split_indices"], dtype=np.int64))
        parts["threshold"].append(np.asarray(tree["split_conditions"], dtype=np.float32))
        parts["default_left"].append(np.asarray(tree["default_left"], dtype=bool))
        depth = max(depth, _depth(left, right))
        offset += left.size
    flat = {k: np.concatenate(v) for k, v in parts.items()}
    if flat["feature"].size and int(flat["feature"].max()) >= n_features:
        return None
    ensemble = TreeEnsemble(np.asarray(roots, dtype=np.int64), flat["left"], flat["right"], flat["feature"],
                            flat["threshold"], flat["default_left"], np.asarray(groups), n_groups, depth,
                            np.zeros(n_groups, dtype=np.float32), objective)
    base = _base_margin(learner["learner_model_param"].get("base_score", "0.5"), objective, n_groups)
    if base is None:
        return None
    ensemble.base_margin = base
    probe = _probe_rows(n_features)
    expected = np.asarray(booster.inplace_predict(probe))
    if expected.shape != ensemble.predict(probe).shape or not np.allclose(
            ensemble.predict(probe), expected, rtol=TOLERANCE, atol=TOLERANCE):
        return None
    return ensemble


def _base_margin(text: Any, objective: str, n_groups: int) -> np.ndarray | None:
    """XGBoost's starting score per output group from the saved base_score ("0.5", "[5E-1]" or one per class)."""
    try:
        values = np.asarray([np.float32(v) for v in str(text).strip("[]").split(",")], dtype=np.float32)
    except ValueError:
        return None
    if values.size == 1:
        values = np.repeat(values, n_groups)
    if values.size != n_groups:
        return None
    if objective == "binary:logistic":  # stored as a probability; the trees add to its logit (float32 math)
        with np.errstate(all="ignore"):
            values = (-np.log((np.float32(1.0) / values - np.float32(1.0)).astype(np.float64))).astype(np.float32)
    return values.astype(np.float32)


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """Edges on the longest root-to-leaf path of one tree."""
    level, depth = np.array([0]), 0
    while True:
        children = np.concatenate([left[level], right[level]])
        level = children[children >= 0]
        if level.size == 0:
            return depth
        depth += 1


def _probe_rows(n_features: int) -> np.ndarray:
    """Rows that reach many leaves: zeros, standard-normal values at several scales, and missing values."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((PROBE_ROWS, n_features)).astype(np.float32)
    X *= np.logspace(-2, 3, PROBE_ROWS, dtype=np.float32)[:, None]
    X[0] = 0.0
    X[rng.random(X.shape) < 0.1] = np.nan
    return X
