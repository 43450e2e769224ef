"""One feature pipeline for offline datasets and live streams.

A :class:`FeaturePipelineSpec` says how raw keypoints become a model's input row: which feature
extractors (with options), which segmentation strategy (with options), rounding, and, once
resolved, the exact output column order. The same spec drives

* ``format_frames(frames, spec)``: the offline path, a per-frame table -> a training table;
* ``spec.transform_window(xyzv, width, height)``: one window of keypoints -> one row;
* ``LiveFeatureBuffer(spec, width, height).push(frame)``: the incremental live path, which
  computes each frame's features once and keeps them in a ring.

All three share the per-frame feature computation and the row builders below, so a live row is
byte-identical to the offline row of the same frames (tests/test_formatting.py checks it).
See docs/features.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from spml_core.errors import ConfigError, SpmlError
from spml_core.features.geometry import pixel_points
from spml_core.formatting_cli import DEFAULT_DECIMALS, DEFAULT_FEATURES
from spml_core.segments import (
    POOL_STATS,
    ExampleSegmenter,
    LayoutKind,
    PoolStat,
    RowLayout,
    Segments,
    run_starts,
    take_labels,
)
from spml_core.skeleton import N_LANDMARKS, landmark_columns

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.components import FeatureExtractor

SPEC_VERSION = 1
SPEC_ATTR = "spml_feature_spec"
NOTES_ATTR = "spml_format_notes"
# Columns of the per-frame table that are never labels.
FRAME_META = ("video", "frame", "timestamp_ms", "width", "height")
# Frames formatted per step offline, cut at run boundaries: bounds memory and keeps arrays in cache.
CHUNK_FRAMES = 8192
# Frames per block of feature arithmetic: small enough for the temporaries to stay in cache.
BLOCK_FRAMES = 1024


class FeatureRef(BaseModel):
    """A component by name with its options (as in config.yml's ``use:`` / ``options:``)."""

    model_config = ConfigDict(extra="forbid")
    use: str = Field(description="Component name, as listed by `spml plugins`")
    options: dict[str, Any] = Field(default_factory=dict)


class FeaturePipelineSpec(BaseModel):
    """How raw keypoints become model input rows; serialisable (``model_dump()``) into model bundles.

    The first four fields are what a user chooses. The rest are filled by :meth:`resolve` from the
    installed components and checked again when a resolved spec is loaded, so a bundle whose
    features no longer match the installed extractors fails loudly instead of feeding a model
    shifted columns.
    """

    model_config = ConfigDict(extra="forbid")

    spec_version: Literal[1] = SPEC_VERSION
    features: list[FeatureRef] = Field(min_length=1, description="Feature extractors, in column order")
    segmentation: FeatureRef = Field(
        default_factory=lambda: FeatureRef(use="none"), description="Segmentation strategy and its options"
    )
    decimals: int | None = Field(DEFAULT_DECIMALS, ge=0, le=12, description="Round features (None: no rounding)")
    # -- resolved ------------------------------------------------------------------------------
    layout: LayoutKind | None = Field(None, description="frame, flatten or pool (from the strategy)")
    window: int | None = Field(None, ge=1, description="Frames per live row (None: no fixed window)")
    pool: list[PoolStat] = Field(default_factory=list, description="Pooling statistics, in column order")
    history: int = Field(0, ge=0, description="Frames before the window some features need (velocities)")
    frame_columns: list[str] = Field(default_factory=list, description="Feature columns of one frame")
    columns: list[str] = Field(default_factory=list, description="Output feature columns, exact order")
    label_columns: list[str] = Field(default_factory=list, description="Class columns of the dataset")

    _runtime: Any = PrivateAttr(default=None)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[FeatureRef]) -> list[FeatureRef]:
        names = [f.use for f in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature(s) listed twice: {', '.join(dupes)}")
        return v

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_options(
        cls,
        features: Sequence[str] | None = None,
        feature_options: Mapping[str, Mapping[str, Any]] | None = None,
        strategy: str | None = None,
        strategy_options: Mapping[str, Any] | None = None,
        decimals: int | None = DEFAULT_DECIMALS,
    ) -> FeaturePipelineSpec:
        """Build a spec from CLI/config-style options (feature names, per-feature options, strategy)."""
        names = list(features) if features else list(DEFAULT_FEATURES)
        feature_options = dict(feature_options or {})
        stray = sorted(set(feature_options) - set(names))
        if stray:
            raise ConfigError(
                f"feature_options for {', '.join(stray)}, which are not among the features ({', '.join(names)})"
            )
        return cls(
            features=[FeatureRef(use=n, options=dict(feature_options.get(n, {}))) for n in names],
            segmentation=FeatureRef(use=strategy or "none", options=dict(strategy_options or {})),
            decimals=decimals,
        )

    @classmethod
    def from_stage(cls, stage: Any) -> FeaturePipelineSpec:
        """Build a spec from config.yml's ``pipeline.dataset`` (a DatasetStage)."""
        seg = stage.segmentation
        return cls.from_options(
            stage.features, stage.feature_options, seg.use if seg else None, seg.options if seg else None,
            DEFAULT_DECIMALS if stage.decimals is None else stage.decimals,
        )

    # -- resolution ----------------------------------------------------------------------------
    @property
    def is_resolved(self) -> bool:
        """True when the layout and column order are filled in."""
        return self.layout is not None and bool(self.columns)

    def resolve(self, registry: Any = None, label_columns: Sequence[str] | None = None) -> FeaturePipelineSpec:
        """A copy with layout, window, pooling and the exact column order filled in from the components."""
        extractors = _make_extractors(self.features, registry)
        frame_columns = [c for e in extractors for c in e.columns()]
        dupes = sorted(c for c, k in Counter(frame_columns).items() if k > 1)
        if dupes:
            raise ConfigError(f"features produce the same column twice: {', '.join(dupes[:5])}")
        segmenter = _make_segmenter(self.segmentation, registry)
        layout = segmenter.row_layout()
        update = {
            "layout": layout.kind,
            "window": layout.window,
            "pool": list(layout.pool),
            "history": max((int(getattr(e, "history", 0)) for e in extractors), default=0),
            "frame_columns": frame_columns,
            "columns": layout_columns(layout, frame_columns),
            "label_columns": list(label_columns) if label_columns is not None else list(self.label_columns),
        }
        if self.columns and self.columns != update["columns"]:
            raise SpmlError(_column_mismatch(self.columns, update["columns"]))
        spec = self.model_copy(update=update)
        spec._runtime = _Runtime(extractors, segmenter)
        return spec

    def _extractors(self) -> list[FeatureExtractor]:
        """Instantiated extractors (cached); a resolved spec is checked against them once."""
        if self._runtime is None:
            if not self.is_resolved:
                raise SpmlError("the feature spec is not resolved: call spec.resolve() (format_frames does)")
            extractors = _make_extractors(self.features, None)
            found = [c for e in extractors for c in e.columns()]
            if found != self.frame_columns:
                raise SpmlError(_column_mismatch(self.frame_columns, found))
            self._runtime = _Runtime(extractors, None)
        return self._runtime.extractors

    @property
    def context_frames(self) -> int:
        """Frames transform_window needs for exact agreement with the offline path: window + history."""
        return (self.window or 1) + self.history

    def layout_info(self) -> RowLayout:
        """The resolved row layout."""
        if not self.is_resolved:
            raise SpmlError("the feature spec is not resolved: call spec.resolve()")
        return RowLayout(self.layout, self.window, tuple(self.pool))  # type: ignore[arg-type]

    # -- live ----------------------------------------------------------------------------------
    def transform_window(self, xyzv_window: np.ndarray, width: int, height: int) -> np.ndarray:
        """One model input row (1-D float32, ``columns`` order) from the last ``window`` frames.

        Pass ``context_frames`` frames (window + history) to match the offline rows exactly when
        temporal features (velocities) are used; with fewer, the first frames' velocities are NaN.
        """
        spec = self if self.is_resolved else self.resolve()
        layout = spec.layout_info()
        window = _live_window(spec)
        arr = np.asarray(xyzv_window, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1] != N_LANDMARKS or arr.shape[2] != 4:
            raise SpmlError(f"transform_window expects keypoints shaped (frames, 33, 4), got {arr.shape}")
        if len(arr) < window:
            raise SpmlError(f"transform_window needs at least {window} frames (the window), got {len(arr)}")
        arr = arr[-(window + spec.history):]
        feats = frame_features(spec._extractors(), arr, width, height, temporal_blocks=None)
        rows = build_rows_fixed(feats[-window:][None], layout)
        return _finish(rows, spec.decimals)[0]

    def live_buffer(self, width: int, height: int) -> LiveFeatureBuffer:
        """A LiveFeatureBuffer for one stream of frames of this size."""
        return LiveFeatureBuffer(self, width, height)


@dataclass
class _Runtime:
    extractors: list[Any]
    segmenter: ExampleSegmenter | None
    _index: Any = None

    def columns_index(self, columns: list[str]) -> Any:
        """A pandas Index of the output columns, built once (thousands of names for flattened rows)."""
        import pandas as pd

        if self._index is None or len(self._index) != len(columns):
            self._index = pd.Index(columns)
        return self._index


def _column_mismatch(expected: list[str], found: list[str]) -> str:
    i = next((k for k, (a, b) in enumerate(zip(expected, found)) if a != b), min(len(expected), len(found)))
    a = expected[i] if i < len(expected) else "(end)"
    b = found[i] if i < len(found) else "(end)"
    return (
        f"the feature spec's columns ({len(expected)}) differ from what the installed feature extractors "
        f"produce ({len(found)}): first difference at column {i}: expected {a!r}, got {b!r}. The spec was "
        "made with other versions of the feature plugins; rebuild the dataset and retrain."
    )


def _live_window(spec: FeaturePipelineSpec) -> int:
    if spec.window is None:
        raise SpmlError(
            f"strategy '{spec.segmentation.use}' without segmentation_window pools examples of varying length, "
            "so there is no fixed live window; set segmentation_window to classify live"
        )
    return spec.window


# -- components ----------------------------------------------------------------------------------
def _registry(registry: Any) -> Any:
    if registry is None:
        from spml_core.registry import Registry

        registry = Registry().load()
    return registry


def _make_extractors(refs: Sequence[FeatureRef], registry: Any) -> list[FeatureExtractor]:
    """Instantiate feature extractors; built-ins without scanning plugins (fast live start-up)."""
    from spml_core.config import validate_options
    from spml_core.features import BUILTIN_EXTRACTORS

    builtin = {c.name: c for c in BUILTIN_EXTRACTORS}
    out = []
    for ref in refs:
        if registry is None and ref.use in builtin:
            cls = builtin[ref.use]
        else:
            registry = _registry(registry)
            cls = registry.get("feature_extractor", ref.use)
        opts = validate_options(cls, ref.options, f"features.{ref.use}.options")
        out.append(cls(opts))
    return out


def _make_segmenter(ref: FeatureRef, registry: Any) -> ExampleSegmenter:
    from spml_core.config import validate_options

    registry = _registry(registry)
    cls = registry.get("segmenter", ref.use)
    if not issubclass(cls, ExampleSegmenter):
        raise SpmlError(
            f"segmenter '{ref.use}' ({cls.__module__}.{cls.__qualname__}) does not implement "
            "spml_core.segments.ExampleSegmenter, which the feature pipeline needs"
        )
    opts = validate_options(cls, ref.options, f"segmentation.{ref.use}.options")
    return cls(opts)


# -- per-frame features --------------------------------------------------------------------------
def frame_features(
    extractors: Sequence[FeatureExtractor], xyzv: np.ndarray, width: float, height: float,
    temporal_blocks: np.ndarray | None,
) -> np.ndarray:
    """(frames, features) float64: every extractor on every frame of one frame size.

    ``temporal_blocks`` holds the start offsets of runs of consecutive frames (videos, or parts of
    a video between gaps); extractors with ``history > 0`` run on each run alone so that they never
    look across a boundary. None means the frames are one run. Per-frame extractors run on blocks
    of BLOCK_FRAMES frames, whose temporaries stay in the CPU cache (several times faster).
    """
    xyzv = np.asarray(xyzv, dtype=np.float64)
    n = len(xyzv)
    widths = [len(e.columns()) for e in extractors]
    starts = np.cumsum([0, *widths])
    out = np.empty((n, int(starts[-1])))
    # Pixel points are shared by every extractor that accepts them (computed once, not per extractor).
    shared = any(hasattr(e, "transform_points") for e in extractors)
    placed = [(e, slice(a, b)) for e, a, b in zip(extractors, starts[:-1], starts[1:])]
    per_frame = [(e, cols) for e, cols in placed if not getattr(e, "history", 0)]
    temporal = [(e, cols) for e, cols in placed if getattr(e, "history", 0)]
    if per_frame:
        for a in range(0, n, BLOCK_FRAMES):
            b = min(a + BLOCK_FRAMES, n)
            pts = pixel_points(xyzv[a:b], width, height) if shared else None
            for ext, cols in per_frame:
                out[a:b, cols] = _apply(ext, xyzv[a:b], pts, width, height)
    if temporal:
        runs = np.append(temporal_blocks if temporal_blocks is not None and len(temporal_blocks) else [0], n)
        for a, b in zip(runs[:-1], runs[1:]):
            pts = pixel_points(xyzv[a:b], width, height) if shared else None
            for ext, cols in temporal:
                out[a:b, cols] = _apply(ext, xyzv[a:b], pts, width, height)
    return out


def _apply(ext: Any, xyzv: np.ndarray, pts: np.ndarray | None, width: float, height: float) -> np.ndarray:
    fn = getattr(ext, "transform_points", None)
    if fn is not None and pts is not None:
        return fn(pts, xyzv, width, height)
    return ext.transform(xyzv, width, height)


# -- row builders (shared by the offline and live paths) -------------------------------------------
def layout_columns(layout: RowLayout, frame_columns: Sequence[str]) -> list[str]:
    """Output feature columns: per frame, ``frame-{k}-<col>`` (flatten) or ``<stat>-<col>`` (pool)."""
    if layout.kind == "frame":
        return list(frame_columns)
    if layout.kind == "flatten":
        if not layout.window:
            raise SpmlError("a flatten layout needs a window")
        return [f"frame-{k}-{c}" for k in range(1, layout.window + 1) for c in frame_columns]
    if layout.kind == "pool":
        if not layout.pool:
            raise SpmlError("a pool layout needs at least one statistic (mean, max, std)")
        return [f"{s}-{c}" for s in layout.pool for c in frame_columns]
    raise SpmlError(f"unknown row layout {layout.kind!r}")


def pool_windows(x: np.ndarray, stats: Sequence[str], lengths: np.ndarray | None = None) -> np.ndarray:
    """(n, len(stats) * F) statistics over axis 1 of (n, L, F), ignoring NaN (frames without a person).

    ``lengths`` (n,) limits example i to its first lengths[i] frames (examples of varying length,
    padded). The sums reduce axis 1 of C-contiguous arrays: numpy then adds frame after frame into
    each (example, feature) total, the same bits for one live window as for many offline windows
    (tests/test_formatting.py checks this for many shapes). std is the population standard deviation (ddof=0), a real
    square root (StreamPoseML's "std" was the variance); max is not floored at 0.
    """
    n, length, f = x.shape
    valid = ~np.isnan(x)
    if lengths is not None:
        valid &= (np.arange(length)[None, :] < lengths[:, None])[:, :, None]
    if valid.all():
        # The usual live case: every value present, so masking would change nothing (same bits).
        return _pool_dense(np.ascontiguousarray(x), stats)
    count = valid.sum(axis=1)
    has = count > 0
    total = np.where(valid, x, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.full((n, f), np.nan), where=has)
    out = []
    for stat in stats:
        if stat == "mean":
            out.append(mean)
        elif stat == "max":
            # max is exact in any order; missing values are -inf so they never win.
            out.append(np.where(has, np.where(valid, x, -np.inf).max(axis=1), np.nan))
        elif stat == "std":
            dev = np.where(valid, x - mean[:, None, :], 0.0)
            dev *= dev
            var = np.divide(dev.sum(axis=1), count, out=np.full((n, f), np.nan), where=has)
            out.append(np.sqrt(var))
        else:
            raise SpmlError(f"unknown pooling statistic {stat!r}; valid: {', '.join(POOL_STATS)}")
    return out[0] if len(out) == 1 else np.concatenate(out, axis=1)


def _pool_dense(x: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """pool_windows without missing values: the same arithmetic with fewer operations."""
    length = x.shape[1]
    mean = x.sum(axis=1) / length
    out = []
    for stat in stats:
        if stat == "mean":
            out.append(mean)
        elif stat == "max":
            out.append(x.max(axis=1))
        elif stat == "std":
            dev = x - mean[:, None, :]
            dev *= dev
            out.append(np.sqrt(dev.sum(axis=1) / length))
        else:
            raise SpmlError(f"unknown pooling statistic {stat!r}; valid: {', '.join(POOL_STATS)}")
    return out[0] if len(out) == 1 else np.concatenate(out, axis=1)


def build_rows_fixed(windows: np.ndarray, layout: RowLayout) -> np.ndarray:
    """Rows from (n, W, F) per-frame features of fixed-length examples."""
    if layout.kind == "flatten":
        return windows.reshape(len(windows), -1)
    if layout.kind == "pool":
        return pool_windows(windows, layout.pool)
    return windows[:, -1]


def _finish(rows: np.ndarray, decimals: int | None) -> np.ndarray:
    if decimals is not None:
        rows = np.round(rows, decimals)
    return rows.astype(np.float32)


# -- live ----------------------------------------------------------------------------------------
class LiveFeatureBuffer:
    """Per-stream ring of per-frame features: ``push(frame)`` returns a row once a window is full.

    Each pushed frame's features are computed once (numpy on one frame, no pandas or pydantic) and
    written into a ring of ``window`` rows; the row is then the ring in time order, flattened or
    pooled, rounded and cast exactly as the offline path does. Temporal features keep the previous
    raw frames they need.
    """

    def __init__(self, spec: FeaturePipelineSpec, width: int, height: int) -> None:
        self.spec = spec if spec.is_resolved else spec.resolve()
        self.width = float(width)
        self.height = float(height)
        self.layout = self.spec.layout_info()
        self.window = _live_window(self.spec)
        self._extractors = self.spec._extractors()
        self._decimals = self.spec.decimals
        widths = [len(e.columns()) for e in self._extractors]
        self._slices = [slice(a, a + w) for a, w in zip(np.cumsum([0, *widths[:-1]]), widths)]
        self._temporal = [int(getattr(e, "history", 0)) for e in self._extractors]
        self.n_features = sum(widths)
        depth = max(self._temporal, default=0) + 1
        self._raw = np.full((depth, N_LANDMARKS, 4), np.nan)
        self._pts = np.full((depth, N_LANDMARKS + 2, 3), np.nan)
        self._plan = [(e, sl, h, hasattr(e, "transform_points"))
                      for e, sl, h in zip(self._extractors, self._slices, self._temporal)]
        self.reset()

    def reset(self) -> None:
        """Forget all buffered frames (e.g. after a pause in the stream)."""
        self._ring = np.full((self.window, self.n_features), np.nan)
        self._raw[:] = np.nan
        self._pts[:] = np.nan
        self._pos = 0
        self._count = 0

    @property
    def frames_seen(self) -> int:
        """Frames pushed since the last reset."""
        return self._count

    def push(self, xyzv_frame: np.ndarray | None) -> np.ndarray | None:
        """Add one frame (33, 4) of raw keypoints (None or NaN: no person); a float32 row once full."""
        if xyzv_frame is None:
            frame = np.full((1, N_LANDMARKS, 4), np.nan)
        else:
            frame = np.asarray(xyzv_frame, dtype=np.float64).reshape(1, N_LANDMARKS, 4)
        raw, pts = self._raw, self._pts
        if len(raw) > 1:
            raw[:-1] = raw[1:]
            pts[:-1] = pts[1:]
        raw[-1] = frame[0]
        pts[-1] = pixel_points(frame, self.width, self.height)[0]
        slot = self._ring[self._pos]
        for ext, sl, hist, fast in self._plan:
            lo = len(raw) - hist - 1
            if fast:
                slot[sl] = ext.transform_points(pts[lo:], raw[lo:], self.width, self.height)[-1]
            else:
                slot[sl] = ext.transform(raw[lo:], self.width, self.height)[-1]
        self._pos = (self._pos + 1) % self.window
        self._count += 1
        if self._count < self.window:
            return None
        return self.current_row()

    def current_row(self) -> np.ndarray:
        """The row of the last ``window`` frames (NaN-filled before the first window is full)."""
        ring, pos = self._ring, self._pos
        ordered = ring if pos == 0 else np.concatenate((ring[pos:], ring[:pos]))
        return _finish(build_rows_fixed(ordered[None], self.layout), self._decimals)[0]


# -- offline -------------------------------------------------------------------------------------
@dataclass
class FormatResult:
    """A formatted dataset, the resolved spec that made it, and what was left out."""

    frame: pd.DataFrame
    spec: FeaturePipelineSpec
    notes: list[str] = field(default_factory=list)


def infer_label_columns(frames: pd.DataFrame) -> list[str]:
    """Class columns of a per-frame table: the text or categorical columns other than the metadata."""
    import pandas as pd

    skip = _NOT_LABELS
    out = []
    for name in frames.columns:
        if name in skip:
            continue
        dtype = frames[name].dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or dtype == object:
            out.append(str(name))
    return out


_NOT_LABELS = frozenset(FRAME_META) | frozenset(landmark_columns()) | frozenset(landmark_columns(world=True))


def _check_table(frames: pd.DataFrame) -> None:
    have = set(frames.columns)
    missing = [c for c in ("video", "frame", "width", "height") if c not in have]
    missing_lm = [c for c in landmark_columns() if c not in have]
    if missing or missing_lm:
        listed = missing + missing_lm[:4] + (["..."] if len(missing_lm) > 4 else [])
        raise SpmlError(
            f"the per-frame table lacks column(s) {', '.join(listed)}; format a table made by "
            "`spml dataset` / spml_core.dataset.build_dataset (video, frame, width, height, landmarks, classes)"
        )


def format_dataset_frames(
    frames: pd.DataFrame, spec: FeaturePipelineSpec, registry: Any = None, *, quiet: bool = True
) -> FormatResult:
    """Format a per-frame table with a spec; returns the table, the resolved spec and notes."""
    import pandas as pd

    from spml_core.progress import progress_bar

    _check_table(frames)
    labels = list(spec.label_columns) or infer_label_columns(frames)
    unknown = [c for c in labels if c not in frames.columns]
    if unknown:
        raise SpmlError(f"label column(s) {', '.join(unknown)} not in the table "
                        f"(columns: {', '.join(map(str, frames.columns[:8]))} ...)")
    runtime = spec._runtime
    if spec.is_resolved and runtime is not None and runtime.segmenter is not None:
        # Resolved already (the CLI resolves up front to fail fast): reuse its components.
        if list(spec.label_columns) != labels:
            spec = spec.model_copy(update={"label_columns": labels})
            spec._runtime = runtime
    else:
        spec = spec.resolve(registry, labels)
        runtime = spec._runtime
    if len(frames) == 0:
        raise SpmlError("the per-frame table is empty: nothing to format")
    # Sort by video then frame (stable) so windows and runs are contiguous row ranges.
    vcodes = _video_codes(frames["video"])
    frame_no = frames["frame"].to_numpy(np.int64)
    if len(frames) > 1 and not ((np.diff(vcodes) > 0) | ((np.diff(vcodes) == 0) & (np.diff(frame_no) > 0))).all():
        order = np.lexsort((frame_no, vcodes))
        frames = frames.iloc[order]
        vcodes, frame_no = vcodes[order], frame_no[order]
    if not isinstance(frames.index, pd.RangeIndex) or frames.index.start != 0 or frames.index.step != 1:
        frames = frames.reset_index(drop=True)
    dup = np.flatnonzero((np.diff(vcodes) == 0) & (np.diff(frame_no) == 0))
    if len(dup):
        r = dup[0]
        raise SpmlError(f"video {frames['video'].iloc[r]!r}: frame {frame_no[r]} appears twice in the table")

    segments = runtime.segmenter.segment(frames, labels)
    notes = list(segments.notes)
    layout = spec.layout_info()
    strategy = spec.segmentation.use
    if segments.n_examples == 0:
        raise SpmlError(f"strategy '{strategy}' found no examples" + (": " + "; ".join(notes) if notes else ""))

    starts = run_starts(vcodes, frame_no)
    width = frames["width"].to_numpy(np.int64)
    height = frames["height"].to_numpy(np.int64)
    landmarks = _landmark_array(frames)
    n_cols = len(spec.columns)
    lengths = segments.lengths
    out_rows = len(segments.rows) if layout.kind == "frame" else segments.n_examples
    out = np.empty((out_rows, n_cols), dtype=np.float32)
    # Examples in chunks of whole runs: features of ~CHUNK_FRAMES frames at a time.
    first_row = segments.rows[segments.offsets[:-1]]
    last_row = segments.rows[segments.offsets[1:] - 1]
    run_bounds = np.append(starts, len(frames))
    chunk_ends = _chunk_bounds(run_bounds, CHUNK_FRAMES)
    ex_start = 0
    out_pos = 0
    with progress_bar(total=len(frames), desc="features", unit="frame", disable=quiet) as bar:
        for r0, r1 in zip(chunk_ends[:-1], chunk_ends[1:]):
            ex_end = int(np.searchsorted(first_row, r1, side="left"))
            if np.any(last_row[ex_start:ex_end] >= r1):
                raise SpmlError(f"strategy '{strategy}' made an example that crosses a video boundary or gap")
            xyzv = np.ascontiguousarray(landmarks[r0:r1], dtype=np.float64).reshape(r1 - r0, N_LANDMARKS, 4)
            feats = _chunk_features(runtime.extractors, xyzv, width[r0:r1], height[r0:r1],
                                    starts[(starts >= r0) & (starts < r1)] - r0)
            block = _rows_for(segments, ex_start, ex_end, feats, r0, layout)
            out[out_pos:out_pos + len(block)] = _finish(block, spec.decimals)
            out_pos += len(block)
            ex_start = ex_end
            bar.update(r1 - r0)
    if out_pos != out_rows:
        raise SpmlError(f"strategy '{strategy}' returned examples out of order")

    # Meta and label columns.
    ex_of_row = np.repeat(np.arange(segments.n_examples), lengths)
    if layout.kind == "frame":
        src = segments.rows
        meta = {"video": frames["video"].array.take(src)}
        if not np.all(lengths == 1):
            meta["example"] = ex_of_row
        meta["frame"] = frame_no[src]
        if "timestamp_ms" in frames.columns:
            meta["timestamp_ms"] = frames["timestamp_ms"].to_numpy()[src]
        label_df = take_labels(frames, labels, src)
    else:
        meta = {
            "video": frames["video"].array.take(first_row),
            "example": np.arange(segments.n_examples),
            "start_frame": frame_no[first_row],
            "end_frame": frame_no[last_row],
            "n_frames": lengths,
        }
        label_df = segments.labels.reset_index(drop=True)

    empty = np.isnan(out).all(axis=1)
    n_empty = int(empty.sum())
    if n_empty:
        what = "frames" if layout.kind == "frame" else "examples"
        if n_empty == len(out):
            raise SpmlError(
                f"every one of the {len(out)} {what} of strategy '{strategy}' has only NaN features "
                "(no person detected in any of their frames): nothing to write"
            )
        notes.append(f"dropped {n_empty} of {len(out)} {what} whose frames had no person detected (all features NaN)")
        keep = ~empty
        out = out[keep]
        meta = {k: v[keep] for k, v in meta.items()}  # numpy arrays and pandas extension arrays alike
        if "example" in meta and layout.kind != "frame":
            meta["example"] = np.arange(int(keep.sum()))
        label_df = take_labels(label_df, labels, np.flatnonzero(keep))

    meta_df = pd.DataFrame(meta)
    feat_df = pd.DataFrame(out, columns=runtime.columns_index(spec.columns), copy=False)
    result = pd.concat([meta_df, label_df, feat_df], axis=1)
    # Strings in attrs: pandas deep-copies attrs on many operations, so keep them cheap to copy.
    result.attrs[SPEC_ATTR] = spec.model_dump_json()
    result.attrs[NOTES_ATTR] = tuple(notes)
    return FormatResult(result, spec, notes)


def _landmark_array(frames: pd.DataFrame) -> np.ndarray:
    """(rows, 132) landmark values; a view of the table's block when the columns are adjacent (no copy)."""
    where = {c: i for i, c in enumerate(frames.columns)}
    pos = np.array([where[c] for c in landmark_columns()])
    if (np.diff(pos) == 1).all():
        return frames.iloc[:, int(pos[0]):int(pos[-1]) + 1].to_numpy()
    return frames.iloc[:, pos].to_numpy()


def _video_codes(video: pd.Series) -> np.ndarray:
    """int64 codes of the video column, in the order of its categories (or of first appearance, sorted)."""
    import pandas as pd

    if isinstance(video.dtype, pd.CategoricalDtype):
        return video.cat.codes.to_numpy(np.int64)
    return pd.factorize(video, sort=True)[0].astype(np.int64)


def _chunk_bounds(run_bounds: np.ndarray, target: int) -> np.ndarray:
    """Row offsets cutting the table at run boundaries into chunks of about ``target`` rows."""
    total = int(run_bounds[-1])
    cuts = [0]
    # Greedy over run boundaries; runs are few compared to frames, and this runs once.
    idx = np.searchsorted(run_bounds, np.arange(target, total, target), side="right") - 1
    for b in run_bounds[np.unique(idx)]:
        if b > cuts[-1]:
            cuts.append(int(b))
    if cuts[-1] != total:
        cuts.append(total)
    return np.asarray(cuts, dtype=np.int64)


def _chunk_features(
    extractors: Sequence[FeatureExtractor], xyzv: np.ndarray, width: np.ndarray, height: np.ndarray,
    run_starts: np.ndarray,
) -> np.ndarray:
    """Features of one chunk, grouped by frame size (videos usually share one)."""
    sizes = np.stack([width, height], axis=1)
    if len(sizes) and (sizes == sizes[0]).all():
        return frame_features(extractors, xyzv, float(width[0]), float(height[0]), run_starts)
    feats: np.ndarray | None = None
    uniq, inverse = np.unique(sizes, axis=0, return_inverse=True)
    for i, (w, h) in enumerate(uniq):
        sel = np.flatnonzero(inverse.ravel() == i)
        # Runs never mix sizes (a run lies within a video), so each size's rows are whole runs.
        local_starts = np.searchsorted(sel, run_starts[np.isin(run_starts, sel)])
        part = frame_features(extractors, xyzv[sel], float(w), float(h), local_starts)
        if feats is None:
            feats = np.empty((len(xyzv), part.shape[1]))
        feats[sel] = part
    assert feats is not None
    return feats


def _rows_for(
    segments: Segments, ex_start: int, ex_end: int, feats: np.ndarray, r0: int, layout: RowLayout
) -> np.ndarray:
    """Feature rows of examples [ex_start, ex_end) from the chunk's per-frame features."""
    offs = segments.offsets[ex_start:ex_end + 1]
    rows = segments.rows[offs[0]:offs[-1]] - r0
    if layout.kind == "frame":
        return feats[rows]
    lengths = np.diff(offs)
    if len(lengths) == 0:
        return np.empty((0, feats.shape[1] * (layout.window or 1)))
    if layout.kind == "flatten" or (lengths == lengths[0]).all():
        if not (lengths == lengths[0]).all():
            raise SpmlError("flattened examples must all have the same number of frames")
        return build_rows_fixed(feats[rows.reshape(len(lengths), -1)], layout)
    # Pooling examples of varying length: pad to the longest and pool the valid prefix.
    longest = int(lengths.max())
    idx = np.zeros((len(lengths), longest), dtype=np.int64)
    pos = np.arange(len(rows)) - np.repeat(offs[:-1] - offs[0], lengths)
    idx[np.repeat(np.arange(len(lengths)), lengths), pos] = rows
    return pool_windows(feats[idx], layout.pool, lengths)


def format_frames(frames: pd.DataFrame, spec: FeaturePipelineSpec, registry: Any = None) -> pd.DataFrame:
    """The offline path: a per-frame table (from `spml dataset`) -> the formatted training table.

    Columns: video, then ``frame``/``timestamp_ms`` (per-frame rows) or ``example``, ``start_frame``,
    ``end_frame``, ``n_frames`` (one row per example), then the label columns, then ``spec.columns``.
    The resolved spec (JSON) and notes are in ``df.attrs['spml_feature_spec']`` / ``['spml_format_notes']``.
    """
    return format_dataset_frames(frames, spec, registry).frame


def formatting_step(spec: FeaturePipelineSpec, *, quiet: bool = False, registry: Any = None) -> Callable[[Any], Any]:
    """A DataFrame -> DataFrame step for spml_core.dataset.build_and_write; prints notes to stderr."""

    def step(frames: pd.DataFrame) -> pd.DataFrame:
        result = format_dataset_frames(frames, spec, registry, quiet=quiet)
        if not quiet:
            for note in result.notes:
                print(f"spml dataset: note: {note}", file=sys.stderr)
            s = result.spec
            how = {"frame": "a row per frame", "flatten": f"{s.window} frames flattened per row",
                   "pool": f"{'/'.join(s.pool)} over each example"}[s.layout or "frame"]
            print(f"spml dataset: strategy '{s.segmentation.use}' ({how}): {len(result.frame)} rows, "
                  f"{len(s.columns)} feature columns from {', '.join(f.use for f in s.features)}", file=sys.stderr)
        return result.frame

    return step


def spec_path(dataset: str | os.PathLike[str]) -> Path:
    """Where a formatted dataset's spec goes: '<dataset>.spec.json' beside it."""
    p = Path(dataset)
    return p.with_name(p.name + ".spec.json")


def write_feature_spec(df: pd.DataFrame, dataset: str | os.PathLike[str]) -> Path | None:
    """Write the resolved spec of a formatted table beside its dataset file (atomic); None if unformatted."""
    from spml_core.atomic import write_text_atomic

    raw = df.attrs.get(SPEC_ATTR)
    if not raw:
        return None
    return write_text_atomic(spec_path(dataset), json.dumps(json.loads(raw), indent=2) + "\n")


def read_feature_spec(dataset: str | os.PathLike[str]) -> FeaturePipelineSpec | None:
    """The spec a formatted dataset was made with ('<dataset>.spec.json'), or None when there is none."""
    from pydantic import ValidationError

    from spml_core.config import format_validation_error

    p = spec_path(dataset)
    if not p.is_file():
        return None
    try:
        return FeaturePipelineSpec.model_validate_json(p.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise SpmlError(format_validation_error(exc, str(p))) from None
