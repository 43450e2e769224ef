"""One video's rows of the per-frame table: keypoint columns, label codes and the labelled-frame mask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.datasets.annotations import (
    AnnotationSchema,
    VideoAnnotations,
    align_annotations,
    uses_times,
)
from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import landmark_columns

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.datasets.plan import KeypointFile
from spml_core.datasets.pose_info import keypoint_estimator
from spml_core.datasets.report import VideoReport

META_COLUMNS = ("video", "frame", "timestamp_ms", "width", "height")


def code_dtype(labels: list[str]) -> type[np.signedinteger[Any]]:
    """Integer type of a class column's codes (-1 = no label)."""
    return np.int16 if len(labels) < 2**15 - 1 else np.int32


def fill_video_rows(
    stem: str, info: KeypointFile, ann: VideoAnnotations | None, cats: dict[str, list[str]],
    schema: AnnotationSchema, strict: bool, frames: np.ndarray, stamps: np.ndarray, landmarks: np.ndarray,
    codes: dict[str, np.ndarray],
) -> VideoReport:
    """Read one video's keypoints into the given row arrays and label them; returns its report.

    The single-process build passes views of its preallocated table; a worker passes arrays of one
    video (spml_core.datasets.parts). Both run this, so both make the same rows.
    """
    table = info.load()
    columns = table.columns
    frames[:] = columns[0].to_numpy()
    stamps[:] = columns[1].to_numpy()
    for j, col in enumerate(columns[2:]):
        landmarks[:, j] = col.to_numpy()
    del table, columns  # release the file's Arrow buffers before the next one is read
    n = len(frames)
    vr = VideoReport(video=stem, keypoints=str(info.path), frames=n, rows=n,
                     annotations=str(ann.file) if ann else None, labeled_frames={c: 0 for c in cats},
                     estimator=keypoint_estimator(info.metadata.metadata if info.metadata is not None else None))
    if ann is None:
        return vr
    if uses_times(schema) and not info.has_timestamps:
        raise SpmlError(f"{info.path}: StreamPoseML sequence files hold no timestamps, but the "
                        "annotation_schema maps times; use the Parquet keypoints from `spml extract`")
    video_codes, alignment = align_annotations(ann, frames, stamps, schema, strict=strict)
    for c in cats:
        codes[c][:] = video_codes[c]
    return VideoReport(**{**vr.model_dump(), **alignment.model_dump()})


def used_classes(codes: dict[str, np.ndarray], cats: dict[str, list[str]]) -> list[str]:
    """Classes some frame carries a label of (all classes when none does)."""
    # Only classes some annotation uses count: one config may map labels of several studies, and a
    # class no video uses would otherwise leave no labeled frame at all.
    return [c for c in cats if (codes[c] >= 0).any()] or list(cats)


def labeled_mask(codes: dict[str, np.ndarray], used: list[str]) -> np.ndarray:
    """True where every used class has a label (StreamPoseML's rule for a labeled frame)."""
    return np.logical_and.reduce([codes[c] >= 0 for c in used])


def frame_table(
    stems: list[str], cats: dict[str, list[str]], video_index: np.ndarray, frames: np.ndarray, stamps: np.ndarray,
    widths: np.ndarray, heights: np.ndarray, landmarks: np.ndarray, codes: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The per-frame DataFrame; categories are every planned video and each class's labels."""
    import pandas as pd

    meta = pd.DataFrame({
        "video": pd.Categorical.from_codes(video_index, categories=pd.Index(stems, dtype=object)),
        "frame": frames, "timestamp_ms": stamps, "width": widths, "height": heights,
    })
    labels_df = pd.DataFrame({
        c: pd.Categorical.from_codes(codes[c], categories=pd.Index(labels, dtype=object))
        for c, labels in cats.items()
    })
    # The landmark block is adopted as is (no copy): 3M rows are 1.6 GB of float32.
    return pd.concat([meta, pd.DataFrame(landmarks, columns=landmark_columns(), copy=False), labels_df], axis=1)

