"""Honest train/test splits for pose examples: by group (video or subject), by blocks of time, or random.

Neighbouring windows of one video are near-duplicates, so a random split puts copies of the test
data in the training set and inflates every score (StreamPoseML's default). spml therefore splits
by group when there are at least two groups, and otherwise cuts each video into contiguous time
blocks, dropping training examples within one window of a test block (purge gap). Random splits
exist only on explicit request and come with a warning.

Everything here is numpy-only so that the core does not depend on scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from spml_core.errors import SpmlError

SplitKind = Literal["auto", "group", "blocked", "random"]
RANDOM_WARNING = (
    "random split: windows of the same video land in both train and test, so these scores are "
    "optimistic (use --split group or blocked for honest numbers)"
)


@dataclass
class Fold:
    """Row indices of one cross-validation fold."""

    train: np.ndarray
    test: np.ndarray
    purged: int = 0


@dataclass
class SplitPlan:
    """The folds of one evaluation and a sentence explaining how they were made."""

    kind: Literal["group", "blocked", "random"]
    folds: list[Fold]
    note: str
    group_column: str | None = None
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        """JSON-able summary for metrics.json."""
        return {
            "kind": self.kind,
            "group_column": self.group_column,
            "n_folds": len(self.folds),
            "note": self.note,
            "test_sizes": [int(f.test.size) for f in self.folds],
            "train_sizes": [int(f.train.size) for f in self.folds],
            "purged": [int(f.purged) for f in self.folds],
            "warnings": list(self.warnings),
        }


def group_kfold(groups: np.ndarray, n_splits: int = 5) -> list[Fold]:
    """K folds where each group is entirely in one test fold; groups balanced by row count."""
    groups = np.asarray(groups)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    k = min(n_splits, uniq.size)
    if k < 2:
        raise SpmlError(f"grouped split needs at least two groups, got {uniq.size}")
    # Largest groups first into the currently lightest fold (deterministic, like sklearn's GroupKFold).
    load = np.zeros(k, dtype=np.int64)
    fold_of_group = np.empty(uniq.size, dtype=np.int64)
    for g in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += counts[g]
    row_fold = fold_of_group[inverse]
    idx = np.arange(groups.size)
    return [Fold(idx[row_fold != f], idx[row_fold == f]) for f in range(k)]


def blocked_folds(
    sequences: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    n_splits: int = 5,
    gap: int = 0,
) -> list[Fold]:
    """K folds of contiguous time blocks within each sequence (video), with a purge gap.

    Example i spans frames ``start[i]..end[i]`` of ``sequences[i]``. Fold f tests the f-th
    block of every sequence; training examples whose span comes within ``gap`` frames of the
    test block of the same sequence are dropped, so overlapping windows cannot leak.
    """
    sequences = np.asarray(sequences)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    n = sequences.size
    if n < 2:
        raise SpmlError(f"blocked split needs at least two examples, got {n}")
    k = max(2, min(n_splits, n))
    block = np.empty(n, dtype=np.int64)
    lo = np.full(n, 0, dtype=np.int64)
    hi = np.full(n, 0, dtype=np.int64)
    for seq in np.unique(sequences):
        rows = np.flatnonzero(sequences == seq)
        rows = rows[np.argsort(end[rows], kind="stable")]
        # Cut by rank so that every block holds about the same number of examples.
        block[rows] = (np.arange(rows.size) * k) // rows.size
        lo[rows], hi[rows] = start[rows], end[rows]
    folds = []
    for f in range(k):
        test = np.flatnonzero(block == f)
        if test.size == 0:
            continue
        keep = block != f
        purge = np.zeros(n, dtype=bool)
        for seq in np.unique(sequences[test]):
            in_seq = sequences == seq
            t = test[sequences[test] == seq]
            t_lo, t_hi = lo[t].min(), hi[t].max()
            purge |= in_seq & keep & (hi >= t_lo - gap) & (lo <= t_hi + gap)
        train = np.flatnonzero(keep & ~purge)
        folds.append(Fold(train, test, int(purge.sum())))
    return folds


def random_folds(n: int, n_splits: int = 5, seed: int = 0) -> list[Fold]:
    """K folds of shuffled rows (leaky for windows of one video: use only when asked)."""
    if n < 2:
        raise SpmlError(f"random split needs at least two examples, got {n}")
    k = max(2, min(n_splits, n))
    order = np.random.default_rng(seed).permutation(n)
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % k
    idx = np.arange(n)
    return [Fold(idx[fold != f], idx[fold == f]) for f in range(k)]


def plan_splits(
    kind: SplitKind,
    *,
    groups: np.ndarray,
    group_column: str,
    sequences: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    window: int,
    n_splits: int = 5,
    seed: int = 0,
) -> SplitPlan:
    """Choose and build the folds: auto = grouped with >= 2 groups, else blocked along time."""
    n_groups = int(np.unique(groups).size)
    if kind == "auto":
        kind = "group" if n_groups >= 2 else "blocked"
        auto_note = "" if kind == "group" else (
            f"only {n_groups} {group_column} in the data, so evaluation falls back to blocked time splits; "
        )
    else:
        auto_note = ""
    if kind == "group":
        if n_groups < 2:
            raise SpmlError(
                f"--split group needs at least two distinct values of '{group_column}', found {n_groups}; "
                "use --split blocked for a single video"
            )
        folds = group_kfold(groups, n_splits)
        note = f"grouped {len(folds)}-fold cross-validation by '{group_column}' ({n_groups} groups)"
        return SplitPlan("group", folds, note, group_column)
    if kind == "blocked":
        folds = blocked_folds(sequences, start, end, n_splits, gap=window)
        note = (auto_note + f"{len(folds)} contiguous time blocks per video, training examples within "
                f"one window ({window} frames) of the test block dropped")
        return SplitPlan("blocked", folds, note, None)
    if kind == "random":
        folds = random_folds(len(groups), n_splits, seed)
        return SplitPlan("random", folds, f"random {len(folds)}-fold split (leaky)", None, [RANDOM_WARNING])
    raise SpmlError(f"unknown split {kind!r}; choose auto, group, blocked or random")


def validation_split(
    n: int, groups: np.ndarray | None, fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Train/validation rows for early stopping, or None when the data is too small to split.

    With two or more groups, whole groups go to validation (shuffled, until about ``fraction`` of
    the rows); otherwise the trailing ``fraction`` of the rows, which callers keep in time order.
    """
    if n < 10:
        return None
    idx = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        uniq = np.unique(groups)
        if uniq.size >= 2:
            rng = np.random.default_rng(seed)
            chosen: list[object] = []
            taken = 0
            for g in rng.permutation(uniq):
                if taken >= fraction * n or len(chosen) == uniq.size - 1:
                    break
                chosen.append(g)
                taken += int((groups == g).sum())
            val = np.isin(groups, np.asarray(chosen, dtype=groups.dtype))
            return idx[~val], idx[val]
    cut = n - max(1, int(round(fraction * n)))
    return idx[:cut], idx[cut:]
