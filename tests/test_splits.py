"""Splits: groups never straddle train and test; blocked folds keep a purge gap; auto falls back and says so."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spml_core.errors import SpmlError
from spml_core.models.splits import RANDOM_WARNING, blocked_folds, group_kfold, plan_splits, validation_split


@given(st.lists(st.integers(0, 7), min_size=4, max_size=200), st.integers(2, 6))
@settings(max_examples=60, deadline=None)
def test_group_kfold_partitions_rows_and_keeps_groups_whole(groups, k) -> None:
    groups = np.asarray(groups)
    if np.unique(groups).size < 2:
        with pytest.raises(SpmlError):
            group_kfold(groups, k)
        return
    folds = group_kfold(groups, k)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(groups.size))  # every row tested exactly once
    for f in folds:
        assert not set(groups[f.train]) & set(groups[f.test])
        assert f.train.size + f.test.size == groups.size


@given(st.integers(20, 300), st.integers(1, 15), st.integers(2, 6), st.integers(1, 3))
@settings(max_examples=60, deadline=None)
def test_blocked_folds_leave_a_gap_of_one_window(n, window, k, n_videos) -> None:
    video = np.repeat(np.arange(n_videos), n)
    end = np.tile(np.arange(n) + window - 1, n_videos)
    start = end - window + 1
    folds = blocked_folds(video, start, end, k, gap=window)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(video.size))
    for f in folds:
        for v in np.unique(video[f.test]):
            t = f.test[video[f.test] == v]
            tr = f.train[video[f.train] == v]
            lo, hi = start[t].min(), end[t].max()
            # No training window overlaps the test block or comes within one window of it.
            assert not ((end[tr] >= lo - window) & (start[tr] <= hi + window)).any()
            # Test blocks are contiguous in time.
            assert np.array_equal(np.sort(end[t]), np.arange(end[t].min(), end[t].max() + 1))


def test_auto_uses_groups_when_there_are_two_and_blocked_otherwise() -> None:
    n = 100
    one = np.array(["a"] * n, dtype=object)
    frames = np.arange(n)
    plan = plan_splits("auto", groups=one, group_column="video", sequences=one, start=frames, end=frames + 9,
                       window=10)
    assert plan.kind == "blocked" and "falls back to blocked time splits" in plan.note
    two = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    plan = plan_splits("auto", groups=two, group_column="subject", sequences=two, start=frames, end=frames,
                       window=1)
    assert plan.kind == "group" and "subject" in plan.note and len(plan.folds) == 2
    plan = plan_splits("random", groups=two, group_column="video", sequences=two, start=frames, end=frames,
                       window=1)
    assert plan.warnings == [RANDOM_WARNING]
    with pytest.raises(SpmlError, match="needs at least two distinct values of 'video'"):
        plan_splits("group", groups=one, group_column="video", sequences=one, start=frames, end=frames, window=1)


def test_validation_split_whole_groups_or_trailing_block() -> None:
    groups = np.repeat(np.array(["a", "b", "c", "d", "e"]), 20)
    tr, va = validation_split(100, groups, 0.2, seed=3)
    assert not set(groups[tr]) & set(groups[va]) and va.size == 20
    tr, va = validation_split(100, None, 0.2)
    assert va.tolist() == list(range(80, 100)) and tr.tolist() == list(range(80))
    assert validation_split(5, None) is None
