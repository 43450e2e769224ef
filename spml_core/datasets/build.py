"""Datasets: keypoint files + one annotation file per video -> one table with a row per frame, written with its alignment report (docs/datasets.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.datasets.annotations import AnnotationSchema
from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import landmark_columns

if TYPE_CHECKING:
    import pandas as pd

from spml_core.datasets.io import write_dataset
from spml_core.datasets.parts import build_on_executor, parts_folder
from spml_core.datasets.plan import DATASET_SUFFIXES, DatasetPlan, plan_dataset
from spml_core.datasets.pose_info import dataset_metadata
from spml_core.datasets.report import AlignmentReport, report_path
from spml_core.datasets.rows import (
    code_dtype,
    fill_video_rows,
    frame_table,
    labeled_mask,
    used_classes,
)
from spml_core.execution import DEFAULT_RETRIES, create_executor
from spml_core.features.spec import spec_path, write_feature_spec
from spml_core.registry import Registry
from spml_core.util.progress import progress_bar


def build_dataset(
    keypoints_dir: str | os.PathLike[str],
    annotations_dir: str | os.PathLike[str],
    schema: AnnotationSchema | None = None,
    parser: str = "json",
    include_unlabeled: bool = True,
    strict: bool = False,
    registry: Any = None,
    *,
    parser_options: dict[str, Any] | None = None,
    limit: int | None = None,
    quiet: bool = True,
) -> tuple[pd.DataFrame, AlignmentReport]:
    """Merge keypoints and annotations into one DataFrame (a row per frame) and an AlignmentReport."""
    plan = plan_dataset(keypoints_dir, annotations_dir, schema, parser, include_unlabeled, strict, registry,
                        parser_options=parser_options, limit=limit)
    return build_planned(plan, quiet=quiet)


def build_planned(plan: DatasetPlan, *, quiet: bool = True) -> tuple[pd.DataFrame, AlignmentReport]:
    """Build the rows of a plan in this process: one preallocated table, filled video by video."""

    stems, infos, cats, report = plan.stems, plan.infos, plan.cats, plan.report
    sizes = np.array([i.rows for i in infos], dtype=np.int64)
    total = int(sizes.sum())
    # Rows go straight into preallocated columns (Fortran order: each landmark column contiguous),
    # so each file's Arrow buffers are released at once and pandas adopts the block without a copy.
    landmarks = np.empty((total, len(landmark_columns())), dtype=np.float32, order="F")
    frames = np.empty(total, dtype=np.int64)
    stamps = np.empty(total, dtype=np.float64)
    codes = {c: np.full(total, -1, dtype=code_dtype(labels)) for c, labels in cats.items()}
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    with progress_bar(total=total, desc="dataset", unit="frame", disable=quiet) as bar:
        for i, (off, n) in enumerate(zip(offsets[:-1], sizes, strict=True)):
            rows = slice(int(off), int(off + n))
            vr = fill_video_rows(stems[i], infos[i], plan.matched.get(stems[i]), cats, plan.schema, plan.strict,
                                 frames[rows], stamps[rows], landmarks[rows], {c: v[rows] for c, v in codes.items()})
            if vr.annotations is None:
                report.videos_without_annotations.append(vr.video)
            report.videos.append(vr)
            bar.update(int(n))

    video_index = np.repeat(np.arange(len(stems), dtype=np.int32), sizes)
    widths = np.repeat(np.array([i.width for i in infos], dtype=np.int64), sizes)
    heights = np.repeat(np.array([i.height for i in infos], dtype=np.int64), sizes)
    if not plan.include_unlabeled:
        keep = labeled_mask(codes, used_classes(codes, cats))
        landmarks, frames, stamps = np.asfortranarray(landmarks[keep]), frames[keep], stamps[keep]
        video_index, widths, heights = video_index[keep], widths[keep], heights[keep]
        codes = {c: v[keep] for c, v in codes.items()}
        kept = np.bincount(video_index, minlength=len(stems))
        for vr, k in zip(report.videos, kept, strict=True):
            vr.rows = int(k)
    frame = frame_table(stems, cats, video_index, frames, stamps, widths, heights, landmarks, codes)
    report.rows = len(frame)
    return frame, report


def build_and_write(
    keypoints: Path, annotations: Path, out: Path, schema: AnnotationSchema, *, parser: str = "json",
    parser_options: dict[str, Any] | None = None, include_unlabeled: bool = True, strict: bool = False,
    formatting: Any = None, quiet: bool = False, registry: Any = None, feature_spec: Any = None,
    executor: str | None = None, executor_options: dict[str, Any] | None = None, retries: int | None = None,
    gate: Any = None,
) -> tuple[pd.DataFrame, AlignmentReport]:
    """Build, optionally format, write the dataset and its report, and print the report table.

    Without `executor` the dataset is built in this process (the fast default) and formatted with
    the `formatting` step. With one (``local`` or ``dask``) each video is built and formatted with
    `feature_spec` and `gate` (a GateConfig, as the `formatting` step was given) in a worker
    (spml_core.datasets.parts); the table is the same.
    """
    out = Path(out)
    if out.suffix.lower() not in DATASET_SUFFIXES:
        raise SpmlError(f"{out}: unknown dataset format '{out.suffix}' (use .parquet or .csv)")
    plan = plan_dataset(keypoints, annotations, schema, parser, include_unlabeled, strict, registry,
                        parser_options=parser_options)
    if executor is None:
        df, report = build_planned(plan, quiet=quiet)
        if formatting is not None:
            df = formatting(df)
        _write_outputs(df, report, out, formatted=formatting is not None)
    else:

        if formatting is not None and feature_spec is None:
            raise SpmlError("a dataset built on an executor is formatted from its feature spec: pass feature_spec")
        ex = create_executor(registry or Registry().load(), executor, executor_options or {})
        with parts_folder(out) as parts:
            df, report = build_on_executor(plan, parts, ex, spec=feature_spec, gate=gate,
                                           retries=DEFAULT_RETRIES if retries is None else retries, quiet=quiet)
            _write_outputs(df, report, out, formatted=feature_spec is not None)
    if not quiet:
        print(report.table())
        print(f"spml dataset: {len(df)} rows x {df.shape[1]} columns -> {out} (report: {report_path(out)})",
              file=sys.stderr)
    return df, report


def _write_outputs(df: pd.DataFrame, report: AlignmentReport, out: Path, formatted: bool) -> None:
    """The dataset, its report and (formatted) its feature spec, each written atomically."""

    write_dataset(df, out, metadata=dataset_metadata({v.video: v.estimator for v in report.videos}))
    report.write(report_path(out))
    if formatted:
        # A formatted table carries its resolved feature spec; models need it beside the dataset.
        write_feature_spec(df, out)
    else:
        # A spec left by an earlier formatted build would describe columns this table lacks.
        spec_path(out).unlink(missing_ok=True)
