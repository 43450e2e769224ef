"""The five segmentation strategies of StreamPoseML, with its parameter names and its bugs fixed.

Each strategy picks examples from a per-frame table sorted by (video, frame) and says how an
example becomes a row; spml_core.features (spec, compute, live, offline) computes the features and builds the rows. Runs of
consecutive frames (a video, or the part of a video between frames removed upstream) bound every
example: nothing crosses a video boundary or a gap. Everything is vectorised with numpy: there is
no Python loop over frames or examples. See docs/features.md for worked examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from spml_core import (
    POOL_STATS,
    ExampleSegmenter,
    PoolStat,
    RowLayout,
    Segments,
    csr,
    example_labels,
    label_codes,
    run_starts,
    take_labels,
)
from spml_core.components import Options
from spml_core.errors import ConfigError, SpmlError

if TYPE_CHECKING:
    import pandas as pd

LabelRule = Literal["last", "majority"]


def _pool_list(v: Any) -> list[str]:
    """Accept StreamPoseML's boolean (True: mean, max and std), a comma string, or a list."""
    if v is None or v is False:
        return []
    if v is True:
        return list(POOL_STATS)
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return list(v)


class _StrategyOptions(Options):
    pool: list[PoolStat] = Field(
        default_factory=list,
        description="Pool each example's frames into one row: any of mean, max, std (StreamPoseML's "
        "pool_frame_data_by_clip; true means all three). std is a real standard deviation.",
    )

    @field_validator("pool", mode="before")
    @classmethod
    def _parse_pool(cls, v: Any) -> list[str]:
        return _pool_list(v)

    @field_validator("pool")
    @classmethod
    def _unique_stats(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"pooling statistics listed twice: {v}")
        return v


class _Strategy(ExampleSegmenter):
    """Shared checks and helpers."""

    def _runs(self, frames: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(start row, length) of each run of consecutive frames."""
        import pandas as pd

        video = frames["video"]
        codes = video.cat.codes.to_numpy() if isinstance(video.dtype, pd.CategoricalDtype) else pd.factorize(video)[0]
        starts = run_starts(codes, frames["frame"].to_numpy(np.int64))
        return starts, np.diff(np.append(starts, len(frames)))

    def _need_class(self, option: str, value: str | None, label_columns: list[str]) -> str:
        if not value:
            raise ConfigError(
                f"strategy '{self.name}' needs {option} (one of the classes: {', '.join(label_columns) or 'none'})"
            )
        if value not in label_columns:
            raise SpmlError(
                f"{option} '{value}' is not a class of this dataset; classes: {', '.join(label_columns) or 'none'}"
            )
        return value

    @staticmethod
    def _longest(frames: pd.DataFrame, starts: np.ndarray, lengths: np.ndarray) -> str:
        i = int(lengths.argmax())
        return f"{int(lengths[i])} frames in '{frames['video'].iloc[int(starts[i])]}'"

    def _no_flatten_pool(self) -> None:
        if self.options.pool:
            raise ConfigError(
                f"strategy '{self.name}' puts every frame's features in the row, so pooling does not apply; "
                "use strategy 'window' (or 'split_on_label') with pool, or leave pool out"
            )


# -- none ------------------------------------------------------------------------------------------
class NoSegmentation(_Strategy):
    """Every frame is its own example: a row per frame (or, pooled, a one-frame summary)."""

    name = "none"
    description = "a row per frame"

    class Options(_StrategyOptions):
        include_unlabeled_data: bool = Field(
            True, description="Keep frames where some class has no label (their class columns stay empty)"
        )

    def row_layout(self) -> RowLayout:
        """A row per frame; pooled rows summarise one frame (std 0)."""
        return RowLayout("pool", 1, tuple(self.options.pool)) if self.options.pool else RowLayout("frame", 1)

    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:
        """All frames, or with include_unlabeled_data=False those where every class has a label."""
        n = len(frames)
        notes = []
        if self.options.include_unlabeled_data or not label_columns:
            rows = np.arange(n, dtype=np.int64)
        else:
            labelled = np.logical_and.reduce([frames[c].notna().to_numpy() for c in label_columns])
            rows = np.flatnonzero(labelled).astype(np.int64)
            if len(rows) < n:
                notes.append(f"left out {n - len(rows)} of {n} frames without a label in every class")
        offsets = np.arange(len(rows) + 1, dtype=np.int64)
        return Segments(rows, offsets, take_labels(frames, label_columns, rows), notes)


# -- split_on_label / flatten_on_example -------------------------------------------------------------
class _SplitOptions(_StrategyOptions):
    segmentation_splitter_label: str | None = Field(
        None, description="Class whose runs of equal labels become the examples (e.g. step_type)"
    )
    segmentation_window: int | None = Field(
        None, ge=1, description="Keep only the last N frames of each example"
    )
    label_rule: LabelRule = Field(
        "last", description="Labels of the other classes: the example's last frame's (StreamPoseML) or majority"
    )


class SplitOnLabel(_Strategy):
    """Each run of consecutive frames sharing a label of the splitter class is one example.

    Fixes StreamPoseML: a run's last frame stays in its run (B7), and runs separated by unlabelled
    frames (or a gap) stay separate examples (B8). Two annotations of the same label that touch
    (frame 127 then 128) form one run.
    """

    name = "split_on_label"
    description = "runs of frames sharing the splitter label; a row per frame, or pooled"
    Options = _SplitOptions
    flatten: ClassVar[bool] = False

    def row_layout(self) -> RowLayout:
        """A row per frame of each example, or one pooled row per example."""
        if self.options.pool:
            return RowLayout("pool", self.options.segmentation_window, tuple(self.options.pool))
        return RowLayout("frame", 1)

    def _examples(self, frames: pd.DataFrame, label_columns: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        splitter = self._need_class("segmentation_splitter_label", self.options.segmentation_splitter_label,
                                    label_columns)
        codes, _ = label_codes(frames[splitter])
        n = len(codes)
        starts, _ = self._runs(frames)
        change = np.zeros(n, dtype=bool)
        change[starts] = True
        change[1:] |= codes[1:] != codes[:-1]
        seg_start = np.flatnonzero(change)
        seg_len = np.diff(np.append(seg_start, n))
        keep = codes[seg_start] >= 0
        seg_start, seg_len = seg_start[keep], seg_len[keep]
        notes: list[str] = []
        if len(seg_start) == 0:
            notes.append(f"no frame carries a {splitter} label")
        return seg_start, seg_len, notes

    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:
        """Runs of the splitter label, optionally cut to their last segmentation_window frames."""
        starts, lengths, notes = self._examples(frames, label_columns)
        window = self.options.segmentation_window
        if window is not None:
            cut = np.minimum(lengths, window)
            starts, lengths = starts + lengths - cut, cut
        rows, offsets = csr(starts, lengths)
        labels = example_labels(frames, label_columns, rows, offsets, self.options.label_rule)
        return Segments(rows, offsets, labels, notes)


class FlattenOnExample(SplitOnLabel):
    """split_on_label, then each example's last ``segmentation_window`` frames flattened into one row.

    StreamPoseML silently skipped the flattening without a window (B10); here the window is
    required, and examples shorter than it are left out (and counted) rather than padded.
    """

    name = "flatten_on_example"
    description = "last N frames of each labelled example, flattened into one row"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        if self.options.segmentation_window is None:
            raise ConfigError(
                "strategy 'flatten_on_example' needs segmentation_window: the number of frames "
                "(the last ones of each example) flattened into a row"
            )

    def row_layout(self) -> RowLayout:
        """segmentation_window frames side by side."""
        self._no_flatten_pool()
        return RowLayout("flatten", self.options.segmentation_window)

    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:
        """The last segmentation_window frames of every example at least that long."""
        starts, lengths, notes = self._examples(frames, label_columns)
        window = int(self.options.segmentation_window)
        long_enough = lengths >= window
        if len(lengths) and not long_enough.all():
            notes.append(
                f"left out {int((~long_enough).sum())} of {len(lengths)} examples shorter than "
                f"segmentation_window={window} frames (shortest: {int(lengths.min())})"
            )
        if len(lengths) and not long_enough.any():
            raise SpmlError(
                f"segmentation_window={window} is longer than every {self.options.segmentation_splitter_label} "
                f"example (longest: {int(lengths.max())} frames)"
            )
        starts, lengths = starts[long_enough], lengths[long_enough]
        rows, offsets = csr(starts + lengths - window, np.full(len(starts), window))
        labels = example_labels(frames, label_columns, rows, offsets, self.options.label_rule)
        return Segments(rows, offsets, labels, notes)


# -- window / flatten_into_columns ---------------------------------------------------------------------
class _WindowOptions(_StrategyOptions):
    segmentation_window: int | None = Field(None, ge=1, description="Frames per window")
    segmentation_window_label: str | None = Field(
        None, description="Class that names each window; windows without a label of it are left out"
    )
    stride: int | None = Field(
        None, ge=1, description="Frames between window starts (default: the window, i.e. no overlap)"
    )
    label_rule: LabelRule = Field(
        "last", description="A window's label: its last frame's (StreamPoseML) or the majority of its frames"
    )


class FixedWindows(_Strategy):
    """Fixed windows of ``segmentation_window`` consecutive frames, every ``stride`` frames.

    Windows start at each video's first frame (StreamPoseML skipped frame 0 and aligned ends to
    multiples of the window, B9) and never cross a video boundary or gap; frames left at the end of
    a video that do not fill a window are not used. A window's label is its last frame's label
    (``label_rule: last``, StreamPoseML's rule) or the most frequent one (``majority``); windows
    without a ``segmentation_window_label`` label are left out.
    """

    name = "window"
    description = "fixed windows of N frames (stride configurable); a row per frame, or pooled"
    Options = _WindowOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        if self.options.segmentation_window is None:
            raise ConfigError(f"strategy '{self.name}' needs segmentation_window (frames per window)")

    @property
    def window(self) -> int:
        """Frames per window."""
        return int(self.options.segmentation_window)

    @property
    def stride(self) -> int:
        """Frames between window starts."""
        return int(self.options.stride or self.window)

    def row_layout(self) -> RowLayout:
        """A row per frame of each window, or one pooled row per window."""
        if self.options.pool:
            return RowLayout("pool", self.window, tuple(self.options.pool))
        return RowLayout("frame", 1)

    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:
        """Every full window of each run whose label (by label_rule) is set."""
        label = self._need_class("segmentation_window_label", self.options.segmentation_window_label,
                                 label_columns)
        w, s = self.window, self.stride
        run_start, run_len = self._runs(frames)
        if not (run_len >= w).any():
            raise SpmlError(
                f"segmentation_window={w} is longer than every video (longest run of consecutive frames: "
                f"{self._longest(frames, run_start, run_len)})"
            )
        notes = []
        short = int((run_len < w).sum())
        if short:
            notes.append(f"{short} of {len(run_len)} runs of consecutive frames are shorter than "
                         f"segmentation_window={w} and gave no window")
        n_win = np.where(run_len >= w, (run_len - w) // s + 1, 0)
        first = np.repeat(run_start, n_win)
        k = np.arange(int(n_win.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_win) - n_win, n_win)
        starts = first + k * s
        ends = starts + (w - 1)
        if self.options.label_rule == "last":
            # Only the last frames decide: test them before building any label table.
            has = label_codes(frames[label])[0][ends] >= 0
            labels = take_labels(frames, label_columns, ends[has])
        else:
            rows, offsets = csr(starts, np.full(len(starts), w))
            labels = example_labels(frames, label_columns, rows, offsets, "majority")
            has = labels[label].notna().to_numpy()
            labels = take_labels(labels, label_columns, np.flatnonzero(has))
        if not has.all():
            where = "on their last frame" if self.options.label_rule == "last" else "on any frame"
            notes.append(f"left out {int((~has).sum())} of {len(has)} windows without a {label} label {where}")
        starts = starts[has]
        rows, offsets = csr(starts, np.full(len(starts), w))
        return Segments(rows, offsets, labels, notes)


class FlattenIntoColumns(FixedWindows):
    """The windows of ``window``, each flattened into one row: columns ``frame-{k}-<feature>``, k = 1..N."""

    name = "flatten_into_columns"
    description = "fixed windows of N frames, flattened into one row each"

    def row_layout(self) -> RowLayout:
        """segmentation_window frames side by side."""
        self._no_flatten_pool()
        return RowLayout("flatten", self.window)


STRATEGIES: tuple[type[ExampleSegmenter], ...] = (
    NoSegmentation, SplitOnLabel, FixedWindows, FlattenIntoColumns, FlattenOnExample,
)
