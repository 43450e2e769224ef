"""The five strategies on small hand-made tables: which frames form each example, and its labels.

StreamPoseML's verified bugs (inventory 4.5, B7-B10) each have a test showing the fixed behaviour.
The strategies only read video, frame and the class columns, so these tables carry no keypoints;
tests/test_segmentation_example.py runs them on the real example video through the feature pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spml_core.errors import ConfigError, SpmlError
from spml_core.registry import Registry
from spml_core.features.segments import ExampleSegmenter, RowLayout


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().load()


def make(registry: Registry, name: str, **options) -> ExampleSegmenter:
    seg = registry.create("segmenter", name, options)
    assert isinstance(seg, ExampleSegmenter)
    return seg


def table(labels: dict[str, list], video: list[str] | None = None, frame: list[int] | None = None) -> pd.DataFrame:
    n = len(next(iter(labels.values())))
    video = video or ["v"] * n
    frame = frame if frame is not None else list(range(n))
    data = {"video": pd.Categorical(video), "frame": np.asarray(frame, dtype=np.int64)}
    for k, v in labels.items():
        data[k] = pd.Categorical(v)
    return pd.DataFrame(data)


def examples(seg: ExampleSegmenter, df: pd.DataFrame, labels=None) -> list[list[int]]:
    s = seg.segment(df, labels or [c for c in df.columns if c not in ("video", "frame")])
    return [s.rows[a:b].tolist() for a, b in zip(s.offsets[:-1], s.offsets[1:])]


def test_all_five_strategies_are_registered(registry):
    assert registry.names("segmenter") == ["flatten_into_columns", "flatten_on_example", "none", "split_on_label", "window"]
    assert registry.provider("segmenter", "window").distribution == "spml-segment-window"


# -- none -------------------------------------------------------------------------------------------
def test_none_is_a_row_per_frame_and_can_leave_out_unlabelled_frames(registry):
    df = table({"a": ["x", None, "y", "y"], "b": ["p", "q", None, "q"]})
    assert examples(make(registry, "none"), df) == [[0], [1], [2], [3]]
    seg = make(registry, "none", include_unlabeled_data=False)
    s = seg.segment(df, ["a", "b"])
    assert s.rows.tolist() == [0, 3]
    assert s.notes == ["left out 2 of 4 frames without a label in every class"]
    assert make(registry, "none").row_layout() == RowLayout("frame", 1)
    assert make(registry, "none", pool=True).row_layout() == RowLayout("pool", 1, ("mean", "max", "std"))


# -- split_on_label ------------------------------------------------------------------------------------
def test_split_on_label_keeps_each_runs_last_frame_in_its_run(registry):
    # StreamPoseML (B7): [L,L,L,R,R,R,L,L] -> [[L,L],[L,R,R],[R,L,L]].
    df = table({"side": list("LLLRRRLL")})
    seg = make(registry, "split_on_label", segmentation_splitter_label="side")
    assert examples(seg, df) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    s = seg.segment(df, ["side"])
    assert s.labels["side"].tolist() == ["L", "R", "L"]


def test_split_on_label_does_not_merge_across_unlabelled_gaps_or_videos(registry):
    # StreamPoseML (B8) dropped unlabelled frames first, so the two L runs became one example.
    df = table({"side": ["L", "L", None, "L", "L", "L"]}, video=["a"] * 4 + ["b"] * 2, frame=[0, 1, 2, 3, 0, 1])
    seg = make(registry, "split_on_label", segmentation_splitter_label="side")
    assert examples(seg, df) == [[0, 1], [3], [4, 5]]
    # Frames removed upstream (a gap in frame numbers) also end a run.
    gap = table({"side": list("LLLL")}, frame=[0, 1, 5, 6])
    assert examples(seg, gap) == [[0, 1], [2, 3]]


def test_split_on_label_window_keeps_the_last_frames_and_other_labels_follow_the_rule(registry):
    df = table({"side": list("LLLLLRR"), "ok": ["y", "y", "n", "n", "n", None, "y"]})
    seg = make(registry, "split_on_label", segmentation_splitter_label="side", segmentation_window=3)
    assert examples(seg, df) == [[2, 3, 4], [5, 6]]
    last = seg.segment(df, ["side", "ok"]).labels
    assert last["ok"].tolist() == ["n", "y"]
    whole = make(registry, "split_on_label", segmentation_splitter_label="side", label_rule="majority")
    assert whole.segment(df, ["side", "ok"]).labels["ok"].tolist() == ["n", "y"]  # L run: y,y,n,n,n -> n


def test_split_on_label_errors_name_the_option_and_the_classes(registry):
    df = table({"side": list("LR"), "ok": list("yn")})
    with pytest.raises(SpmlError, match=r"segmentation_splitter_label 'step' is not a class of this dataset; "
                                        r"classes: side, ok"):
        make(registry, "split_on_label", segmentation_splitter_label="step").segment(df, ["side", "ok"])
    with pytest.raises(ConfigError, match=r"needs segmentation_splitter_label \(one of the classes: side, ok\)"):
        make(registry, "split_on_label").segment(df, ["side", "ok"])


# -- flatten_on_example ------------------------------------------------------------------------------------
def test_flatten_on_example_flattens_the_last_n_frames_and_counts_short_examples(registry):
    df = table({"side": list("LLLLRRLLL")})
    seg = make(registry, "flatten_on_example", segmentation_splitter_label="side", segmentation_window=3)
    s = seg.segment(df, ["side"])
    assert [s.rows[a:b].tolist() for a, b in zip(s.offsets[:-1], s.offsets[1:])] == [[1, 2, 3], [6, 7, 8]]
    assert s.notes == ["left out 1 of 3 examples shorter than segmentation_window=3 frames (shortest: 2)"]
    assert seg.row_layout() == RowLayout("flatten", 3)


def test_flatten_on_example_needs_a_window_and_refuses_pooling(registry):
    # StreamPoseML (B10) silently returned split_on_label's result without a window.
    with pytest.raises(ConfigError, match="flatten_on_example' needs segmentation_window"):
        make(registry, "flatten_on_example", segmentation_splitter_label="side")
    seg = make(registry, "flatten_on_example", segmentation_splitter_label="side", segmentation_window=2, pool="mean")
    with pytest.raises(ConfigError, match="pooling does not apply"):
        seg.row_layout()
    with pytest.raises(SpmlError, match=r"segmentation_window=9 is longer than every side example \(longest: 4"):
        make(registry, "flatten_on_example", segmentation_splitter_label="side", segmentation_window=9).segment(
            table({"side": list("LLLLRR")}), ["side"])


# -- window / flatten_into_columns ---------------------------------------------------------------------------
def test_windows_start_at_the_first_frame_and_do_not_overlap_by_default(registry):
    # StreamPoseML (B9), W=5 on 12 frames: [1..5] was never used and windows ended at multiples of 5.
    df = table({"c": ["x"] * 12})
    seg = make(registry, "window", segmentation_window=5, segmentation_window_label="c")
    assert examples(seg, df) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    overlapping = make(registry, "window", segmentation_window=5, segmentation_window_label="c", stride=2)
    assert examples(overlapping, df) == [list(range(s, s + 5)) for s in (0, 2, 4, 6)]


def test_windows_never_cross_videos_or_gaps(registry):
    df = table({"c": ["x"] * 14}, video=["a"] * 7 + ["b"] * 7, frame=list(range(7)) + [0, 1, 2, 10, 11, 12, 13])
    seg = make(registry, "window", segmentation_window=3, segmentation_window_label="c", stride=1)
    got = examples(seg, df)
    assert got == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6], [7, 8, 9], [10, 11, 12], [11, 12, 13]]


def test_window_labels_last_or_majority_and_unlabelled_windows_left_out(registry):
    c = ["F", "F", "F", None, "S", "S", "F", "F", "S", None, None, None]
    df = table({"c": c, "d": list("abcabcabcabc")})
    last = make(registry, "window", segmentation_window=4, segmentation_window_label="c")
    s = last.segment(df, ["c", "d"])
    # windows [0-3] (last frame unlabelled: left out), [4-7] -> F, [8-11] -> left out
    assert [s.rows[a:b].tolist() for a, b in zip(s.offsets[:-1], s.offsets[1:])] == [[4, 5, 6, 7]]
    assert s.labels["c"].tolist() == ["F"] and s.labels["d"].tolist() == ["b"]
    assert s.notes == ["left out 2 of 3 windows without a c label on their last frame"]
    major = make(registry, "window", segmentation_window=4, segmentation_window_label="c", label_rule="majority")
    s = major.segment(df, ["c", "d"])
    # [0-3]: F x3 -> F; [4-7]: S,S,F,F tie -> the latest (F); [8-11]: S
    assert s.labels["c"].tolist() == ["F", "F", "S"]
    assert isinstance(s.labels["c"].dtype, pd.CategoricalDtype)


def test_window_errors(registry):
    df = table({"c": ["x"] * 6}, video=["a"] * 4 + ["b"] * 2)
    with pytest.raises(ConfigError, match="strategy 'window' needs segmentation_window"):
        make(registry, "window")
    with pytest.raises(SpmlError, match=r"segmentation_window=5 is longer than every video \(longest run of "
                                        r"consecutive frames: 4 frames in 'a'\)"):
        make(registry, "window", segmentation_window=5, segmentation_window_label="c").segment(df, ["c"])
    s = make(registry, "window", segmentation_window=3, segmentation_window_label="c").segment(df, ["c"])
    assert s.notes == ["1 of 2 runs of consecutive frames are shorter than segmentation_window=3 and gave no window"]
    with pytest.raises(ConfigError, match="needs segmentation_window_label"):
        make(registry, "window", segmentation_window=3).segment(df, ["c"])


def test_layouts_and_pool_options(registry):
    assert make(registry, "window", segmentation_window=4, pool=True).row_layout() == RowLayout(
        "pool", 4, ("mean", "max", "std"))
    assert make(registry, "window", segmentation_window=4, pool="max,std").row_layout().pool == ("max", "std")
    assert make(registry, "window", segmentation_window=4).row_layout() == RowLayout("frame", 1)
    assert make(registry, "flatten_into_columns", segmentation_window=4).row_layout() == RowLayout("flatten", 4)
    assert make(registry, "split_on_label", pool=["mean"]).row_layout() == RowLayout("pool", None, ("mean",))
    with pytest.raises(Exception, match="listed twice"):
        make(registry, "window", segmentation_window=4, pool="mean,mean")
    with pytest.raises(ConfigError, match="pooling does not apply"):
        make(registry, "flatten_into_columns", segmentation_window=4, pool=True).row_layout()


def test_strategies_are_vectorised_on_a_large_table(registry):
    # 200 videos x 3,000 frames: each strategy answers in well under a second (no per-frame Python loop).
    import time

    n_videos, n = 200, 3000
    labels = np.where((np.arange(n) // 50) % 3 == 0, None, np.where((np.arange(n) // 50) % 3 == 1, "L", "R"))
    df = table({"side": list(np.tile(labels, n_videos))}, video=[f"v{i:03d}" for i in range(n_videos) for _ in range(n)],
               frame=list(np.tile(np.arange(n), n_videos)))
    for name, opts in [("window", {"segmentation_window": 10, "segmentation_window_label": "side", "stride": 1,
                                   "label_rule": "majority"}),
                       ("split_on_label", {"segmentation_splitter_label": "side"}),
                       ("flatten_on_example", {"segmentation_splitter_label": "side", "segmentation_window": 30})]:
        t = time.perf_counter()
        s = make(registry, name, **opts).segment(df, ["side"])
        assert time.perf_counter() - t < 5.0, name
        assert s.n_examples > 0
    # 40 runs of 50 labelled frames per video, 20 of each side
    s = make(registry, "split_on_label", segmentation_splitter_label="side").segment(df, ["side"])
    assert s.n_examples == n_videos * 40 and set(s.lengths.tolist()) == {50}
