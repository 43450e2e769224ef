"""Training examples for one target: the bridge from a dataset file to model inputs.

``load_examples`` reads a dataset (a per-frame table from `spml dataset`, or a table already
formatted by it with its ``<dataset>.spec.json``), computes features through the feature-pipeline
spec, keeps only examples that carry a label of the target, and returns an :class:`ExampleSet`:
the feature rows, labels, groups (``subject`` column when present, else video), each example's
frame span, and the per-frame annotations used for onset latency and timelines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.datasets.io import read_dataset
from spml_core.errors import SpmlError
from spml_core.features.offline import format_dataset_frames
from spml_core.features.spec import FeaturePipelineSpec, read_feature_spec
from spml_core.features.timegrid import GateConfig, grid_fps, resample_frames_table, window_gate_mask
from spml_core.keypoints.skeleton import landmark_columns

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.features.spec import FeaturePipelineSpec

DEFAULT_WINDOW = 10
SUBJECT_COLUMN = "subject"


@dataclass
class ExampleSet:
    """Feature rows of one target with everything evaluation needs to split and report honestly."""

    X: np.ndarray
    y: np.ndarray
    video: np.ndarray
    groups: np.ndarray
    group_column: str
    start: np.ndarray
    end: np.ndarray
    spec: FeaturePipelineSpec | None
    columns: list[str]
    window: int
    frame_features: int | None
    frame_size: tuple[int, int] | None
    fps: dict[str, float] = field(default_factory=dict)
    grid_fps: float | None = None  # the rate every video was resampled to (the bundle's time grid)
    frame_labels: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows_in_file: int = 0
    background: str | None = None  # the class given to unlabelled frames (--background), if any

    def __len__(self) -> int:
        return int(self.y.size)

    @property
    def classes(self) -> list[str]:
        """Sorted labels present."""
        return sorted(set(self.y.tolist()))

    def class_counts(self) -> dict[str, int]:
        """Examples per label."""
        labels, counts = np.unique(self.y.astype(str), return_counts=True)
        return {str(k): int(v) for k, v in zip(labels, counts)}

    def model_input(self, rank: int, idx: np.ndarray | None = None) -> np.ndarray:
        """X for a model: rows (rank 2) or (n, frames, features per frame) sequences (rank 3)."""
        return self.shape_input(rank, self.X if idx is None else self.X[idx])

    def shape_input(self, rank: int, X: np.ndarray) -> np.ndarray:
        """Feature rows shaped for a model of ``rank`` (2: as is; 3: frames of the window)."""
        if rank == 2:
            return X
        if not self.frame_features:
            raise SpmlError(
                "this model reads sequences of frames, but the rows are pooled statistics; "
                "use flattened windows (no --pool) for sequence models"
            )
        return X.reshape(X.shape[0], -1, self.frame_features)


def default_spec(
    target: str,
    features: Sequence[str] | None = None,
    window: int = DEFAULT_WINDOW,
    stride: int = 1,
    pool: Sequence[str] | None = None,
    label_rule: str = "last",
    feature_options: dict[str, dict[str, Any]] | None = None,
) -> FeaturePipelineSpec:
    """The spec `spml train` uses: windows of ``window`` frames every ``stride`` frames, named by
    the target's label on the window's last frame, flattened (or pooled with ``pool``)."""

    if window < 1 or stride < 1:
        raise SpmlError(f"--window and --stride must be at least 1 (got {window} and {stride})")
    if window == 1 and not pool:
        strategy, opts = "none", {"include_unlabeled_data": True}
    else:
        strategy = "window" if pool else "flatten_into_columns"
        opts = {"segmentation_window": window, "segmentation_window_label": target, "stride": stride,
                "label_rule": label_rule}
        if pool:
            opts["pool"] = list(pool)
    return FeaturePipelineSpec.from_options(features, feature_options, strategy, opts)


def _fps(df: pd.DataFrame) -> dict[str, float]:
    if "timestamp_ms" not in df.columns:
        return {}
    out = {}
    for video, part in df.groupby("video", observed=True, sort=False):
        t = part["timestamp_ms"].to_numpy(np.float64)
        f = part["frame"].to_numpy(np.float64)
        ok = np.isfinite(t)
        if ok.sum() < 2:
            continue
        # Over the whole span: per-frame differences are rounded to whole milliseconds. The rate
        # is the keypoints' (the video's over its extraction stride, the smallest frame step).
        span_ms, span_frames = t[ok][-1] - t[ok][0], f[ok][-1] - f[ok][0]
        steps = np.diff(f[ok])
        stride = float(steps[steps > 0].min()) if (steps > 0).any() else 1.0
        if span_ms > 0 and span_frames > 0:
            out[str(video)] = float(1000.0 * span_frames / span_ms / stride)
    return out


def _groups(df: pd.DataFrame, video: np.ndarray) -> tuple[np.ndarray, str]:
    """Group of each example: the video's subject when a subject column exists, else the video."""
    if SUBJECT_COLUMN not in df.columns:
        return video, "video"
    per_video = df.groupby("video", observed=True)[SUBJECT_COLUMN].nunique(dropna=False)
    mixed = per_video[per_video > 1]
    if len(mixed):
        raise SpmlError(f"column '{SUBJECT_COLUMN}' changes within video {mixed.index[0]!r}; "
                        "a subject must be constant per video")
    mapping = df.groupby("video", observed=True)[SUBJECT_COLUMN].first().astype(str).to_dict()
    return np.asarray([mapping[v] for v in video], dtype=object), SUBJECT_COLUMN


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a dataset file (.parquet or .csv) with a clear error."""

    try:
        return read_dataset(path)
    except SpmlError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt files
        raise SpmlError(f"{path}: cannot read dataset ({exc})") from None


def load_examples(
    dataset: str | os.PathLike[str] | pd.DataFrame,
    target: str,
    spec: FeaturePipelineSpec | None = None,
    *,
    registry: Any = None,
    quiet: bool = True,
    background: str | None = None,
    gate: GateConfig | None = None,
) -> ExampleSet:
    """Feature rows and labels of ``target`` from a dataset file (or DataFrame), through ``spec``.

    A per-frame table is formatted with ``spec`` (default: :func:`default_spec`); a table already
    formatted by `spml dataset` is used as is with the spec stored beside it. Examples without a
    label of the target are left out (and counted in ``notes``).
    """

    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        df = read_table(path)
        name = str(path)
    else:
        df, path, name = dataset, None, "dataset"
    if target not in df.columns:
        raise SpmlError(f"{name}: no column '{target}' (the target); class columns are the text columns, "
                        f"e.g. {', '.join(c for c in df.columns[:12] if df[c].dtype == object or str(df[c].dtype) == 'category') or 'none'}")
    if "video" not in df.columns:
        raise SpmlError(f"{name}: no 'video' column; use a dataset written by `spml dataset`")
    rows_in_file = len(df)
    notes: list[str] = []
    if background is not None:
        df = with_background(df, target, background, name)
    per_frame = all(c in df.columns for c in landmark_columns())
    frame_size = None
    if per_frame:
        spec = spec or default_spec(target)
        spec = spec.model_copy(update={"label_columns": [target]})
        labelled = df[target].notna()
        if not labelled.any():
            raise SpmlError(f"{name}: no frame has a '{target}' label")
        rates = _fps(df)
        grid = grid_fps(rates, df.groupby("video", observed=True).size().rename(str).to_dict()) if rates else None
        off = {v for v, r in rates.items() if grid and abs(r - grid) > 0.02 * grid}
        if off:
            # Time is the unit: windows must span the same duration in every video (docs/live.md).
            df = resample_frames_table(df, grid, off)
            notes.append(f"resampled {len(off)} video(s) to {grid:.2f} fps (the rate of most frames): "
                         + ", ".join(f"{v} {rates[v]:.2f} fps" for v in sorted(off)[:5]))
        result = format_dataset_frames(df, spec, registry, quiet=quiet)
        table, spec, notes = result.frame, result.spec, notes + list(result.notes)
        if "width" in df.columns and "height" in df.columns:
            sizes = df[["width", "height"]].value_counts()
            frame_size = (int(sizes.index[0][0]), int(sizes.index[0][1]))
        frame_source = df
    else:
        stored = read_feature_spec(path) if path is not None else None
        if stored is None:
            raise SpmlError(
                f"{name}: has no landmark columns and no '{Path(name).name}.spec.json' beside it. `spml train` "
                "needs the per-frame dataset from `spml dataset` (or one it formatted), so that the model bundle "
                "can compute the same features live. For a StreamPoseML CSV use "
                "stream_pose_ml.learning.model_builder.ModelBuilder"
            )
        if spec is not None and spec.columns and spec.columns != stored.columns:
            raise SpmlError(f"{name}: is already formatted with another feature spec than the one given")
        spec, table, frame_source = stored, df, None
        missing = [c for c in spec.columns if c not in table.columns]
        if missing:
            raise SpmlError(f"{name}: lacks feature columns of its spec, e.g. {missing[:3]}")

    if gate is not None and frame_source is not None and "start_frame" in table.columns:
        # The live gate on training windows: a window live prediction would refuse is not learned from.
        passed = window_gate_mask(frame_source, table["video"].to_numpy(), table["start_frame"].to_numpy(np.int64),
                                  table["end_frame"].to_numpy(np.int64), gate)
        if not passed.all():
            notes.append(f"left out {int((~passed).sum())} of {len(passed)} examples the live gate refuses "
                         f"(no person or low visibility in more than {gate.max_missing:.0%} of the window)")
            table = table[passed].reset_index(drop=True)
    keep = table[target].notna().to_numpy()
    if not keep.all():
        notes.append(f"left out {int((~keep).sum())} of {len(keep)} examples without a '{target}' label")
    table = table[keep].reset_index(drop=True)
    if len(table) == 0:
        raise SpmlError(f"{name}: no examples carry a '{target}' label")
    video = table["video"].astype(str).to_numpy(dtype=object)
    if "start_frame" in table.columns:
        start = table["start_frame"].to_numpy(np.int64)
        end = table["end_frame"].to_numpy(np.int64)
    else:
        start = end = table["frame"].to_numpy(np.int64)
    groups, group_column = _groups(frame_source if frame_source is not None else table, video)
    layout = spec.layout or "frame"
    window = int(spec.window or 1)
    frame_features = len(spec.frame_columns) if layout in ("flatten", "frame") else None

    if frame_source is not None:
        labels_of = frame_source[["video", "frame", target]]
    else:
        labels_of = table.assign(frame=end)[["video", "frame", target]]
    frame_labels = {
        str(v): (part["frame"].to_numpy(np.int64), part[target].astype(object).where(part[target].notna(), None)
                 .to_numpy(dtype=object))
        for v, part in labels_of.groupby("video", observed=True, sort=False)
    }
    X = table[spec.columns].to_numpy(np.float32)
    y = table[target].astype(str).to_numpy(dtype=object)
    return ExampleSet(
        X=X, y=y, video=video, groups=np.asarray(groups, dtype=object), group_column=group_column,
        start=start, end=end, spec=spec, columns=list(spec.columns), window=window,
        frame_features=frame_features, frame_size=frame_size,
        fps=rates if frame_source is not None else {}, grid_fps=grid if frame_source is not None else None,
        frame_labels=frame_labels,
        notes=notes, rows_in_file=rows_in_file, background=background,
    )


def with_background(df: pd.DataFrame, target: str, background: str, name: str = "dataset") -> pd.DataFrame:
    """A copy of the table whose unlabelled rows carry ``background`` as an explicit class of ``target``."""
    present = set(df[target].dropna().astype(str).unique().tolist())
    if background in present:
        raise SpmlError(f"{name}: --background {background!r} is already a label of '{target}'; choose a new name")
    if df[target].notna().all():
        raise SpmlError(f"{name}: --background {background!r}: every row has a '{target}' label, so there are no "
                        "unlabelled frames to learn it from (build the dataset with include_unlabeled)")
    df = df.copy()
    df[target] = df[target].astype(object).where(df[target].notna(), background)
    return df
