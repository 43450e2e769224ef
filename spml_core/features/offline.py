"""The offline path: a per-frame keypoint table -> a training table, in chunks cut at run boundaries."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.features.segments import (
    RowLayout,
    Segments,
    run_starts,
    take_labels,
)
from spml_core.keypoints.skeleton import N_LANDMARKS, landmark_columns

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.components import FeatureExtractor
from spml_core.features.compute import (
    _finish,
    build_rows_fixed,
    frame_features,
    pool_windows,
)
from spml_core.features.spec import NOTES_ATTR, SPEC_ATTR, FeaturePipelineSpec
from spml_core.features.timegrid import GateConfig, window_gate_mask
from spml_core.util.progress import progress_bar

# Columns of the per-frame table that are never labels.
FRAME_META = ("video", "frame", "timestamp_ms", "width", "height")


# Frames formatted per step offline, cut at run boundaries: bounds memory and keeps arrays in cache.
CHUNK_FRAMES = 8192


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
            "`spml dataset` / spml_core.datasets.build.build_dataset (video, frame, width, height, landmarks, classes)"
        )


def format_dataset_frames(
    frames: pd.DataFrame, spec: FeaturePipelineSpec, registry: Any = None, *, quiet: bool = True,
    gate: GateConfig | None = None,
) -> FormatResult:
    """Format a per-frame table with a spec; returns the table, the resolved spec and notes.

    With ``gate``, examples of several frames (windows) that the live gate would refuse (no person
    or low visibility in too much of them) are left out, as `spml train` leaves them out.
    """
    import pandas as pd


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
    refused = np.zeros(len(out), dtype=bool)
    if gate is not None and gate.enabled and layout.kind != "frame":
        refused = ~empty & ~window_gate_mask(frames, np.asarray(meta["video"]).astype(str), meta["start_frame"],
                                             meta["end_frame"], gate)
    n_refused = int(refused.sum())
    if n_empty or n_refused:
        what = "frames" if layout.kind == "frame" else "examples"
        if n_empty == len(out):
            raise SpmlError(
                f"every one of the {len(out)} {what} of strategy '{strategy}' has only NaN features "
                "(no person detected in any of their frames): nothing to write"
            )
        if n_empty + n_refused == len(out):
            raise SpmlError(
                f"every one of the {len(out)} {what} of strategy '{strategy}' has only NaN features or is refused "
                f"by the live gate (no person or low visibility in more than {gate.max_missing:.0%} of its frames; "
                "docs/live.md): nothing to write. Lower the gate or turn it off (spml dataset --no-gate)"
            )
        if n_empty:
            notes.append(f"dropped {n_empty} of {len(out)} {what} whose frames had no person detected "
                         "(all features NaN)")
        if n_refused:
            assert gate is not None
            notes.append(f"left out {n_refused} of {len(out)} {what} the live gate refuses (no person or joints "
                         f"{', '.join(gate.joints)} below visibility {gate.min_visibility} in more than "
                         f"{gate.max_missing:.0%} of the window)")
        keep = ~empty & ~refused
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


def formatting_step(spec: FeaturePipelineSpec, *, quiet: bool = False, registry: Any = None,
                    gate: GateConfig | None = None) -> Callable[[Any], Any]:
    """A DataFrame -> DataFrame step for spml_core.datasets.build.build_and_write; prints notes to stderr.

    ``gate`` (None: off) leaves out the windows the live gate refuses, as training does.
    """

    def step(frames: pd.DataFrame) -> pd.DataFrame:
        result = format_dataset_frames(frames, spec, registry, quiet=quiet, gate=gate)
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

