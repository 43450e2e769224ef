"""Per-frame feature computation and the row builders shared by the offline and live paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.features.catalog import BUILTIN_EXTRACTORS
from spml_core.features.geometry import pixel_points
from spml_core.features.segments import (
    POOL_STATS,
    ExampleSegmenter,
    RowLayout,
)
from spml_core.features.visibility import VisibilityPolicy, mask_frames, policy_of
from spml_core.registry import Registry, validate_options

if TYPE_CHECKING:

    from spml_core.components import FeatureExtractor
    from spml_core.features.spec import FeaturePipelineSpec, FeatureRef


# Frames per block of feature arithmetic: small enough for the temporaries to stay in cache.
BLOCK_FRAMES = 1024


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

        registry = Registry().load()
    return registry


def _make_extractors(refs: Sequence[FeatureRef], registry: Any) -> list[FeatureExtractor]:
    """Instantiate feature extractors; built-ins without scanning plugins (fast live start-up)."""

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

    registry = _registry(registry)
    cls = registry.get("segmenter", ref.use)
    if not issubclass(cls, ExampleSegmenter):
        raise SpmlError(
            f"segmenter '{ref.use}' ({cls.__module__}.{cls.__qualname__}) does not implement "
            "spml_core.features.segments.ExampleSegmenter, which the feature pipeline needs"
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
    Extractors with a low_visibility policy see keypoints masked by it, run by run (visibility.py).
    """
    xyzv = np.asarray(xyzv, dtype=np.float64)
    n = len(xyzv)
    widths = [len(e.columns()) for e in extractors]
    starts = np.cumsum([0, *widths])
    out = np.empty((n, int(starts[-1])))
    placed = [(e, slice(a, b)) for e, a, b in zip(extractors, starts[:-1], starts[1:])]
    # Extractors sharing a low-visibility policy share one masked copy of the keypoints (docs/features.md).
    by_policy: dict[VisibilityPolicy | None, list[tuple[Any, slice]]] = {}
    for ext, cols in placed:
        by_policy.setdefault(policy_of(ext), []).append((ext, cols))
    for policy, members in by_policy.items():
        masked = xyzv if policy is None else mask_frames(xyzv, policy, temporal_blocks)
        _features_into(out, members, masked, width, height, temporal_blocks)
    return out


def _features_into(
    out: np.ndarray, placed: list[tuple[Any, slice]], xyzv: np.ndarray, width: float, height: float,
    temporal_blocks: np.ndarray | None,
) -> None:
    """frame_features for extractors given with their output columns, written into ``out``."""
    n = len(xyzv)
    # Pixel points are shared by every extractor that accepts them (computed once, not per extractor).
    shared = any(hasattr(e, "transform_points") for e, _ in placed)
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

