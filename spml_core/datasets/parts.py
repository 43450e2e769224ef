"""`spml dataset` on an executor: one task per video, each writing its rows as a part file.

The driver plans the dataset as the single-process build does (files, annotations, strict checks;
``spml_core.datasets.build.plan_dataset``). Each task (:func:`build_part`, run in a worker) builds one
video's rows with the same code as ``build_dataset`` (``fill_video_rows``), formats them when a
feature spec is given, and writes them atomically as an Arrow file into ``.<out name>.parts/``
beside the output (shared storage); it returns only small metadata. The driver then concatenates
the parts in video order into the table the single-process build makes. See docs/datasets.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.datasets.annotations import (
    AnnotationSchema,
    VideoAnnotations,
    align_annotations,
)
from spml_core.datasets.plan import DatasetPlan, inspect_keypoint_file
from spml_core.datasets.report import AlignmentReport, VideoReport
from spml_core.datasets.rows import (
    code_dtype,
    fill_video_rows,
    frame_table,
    labeled_mask,
    used_classes,
)
from spml_core.errors import ConfigError, SpmlError
from spml_core.execution import map_with_retries
from spml_core.features.offline import format_dataset_frames
from spml_core.features.spec import NOTES_ATTR, SPEC_ATTR, FeaturePipelineSpec
from spml_core.features.timegrid import GateConfig
from spml_core.keypoints.skeleton import landmark_columns
from spml_core.util.atomic import atomic_path
from spml_core.util.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.features.segments import Segments
    from spml_core.features.spec import FeaturePipelineSpec

PART_SUFFIX = ".arrow"


@dataclass(frozen=True)
class PartTask:
    """One video to build in a worker: its files and everything that decides its rows."""

    index: int  # position of the video in the dataset (its code in the "video" column)
    stems: tuple[str, ...]  # every video of the dataset: the "video" column's categories
    keypoints: Path
    annotations: VideoAnnotations | None
    cats: dict[str, list[str]]
    schema: AnnotationSchema
    strict: bool
    used: list[str] | None  # classes that make a frame labeled; None keeps every frame
    spec: FeaturePipelineSpec | None
    parts_dir: Path
    gate: GateConfig | None = None  # windows the live gate refuses are left out (as in training)

    @property
    def stem(self) -> str:
        """The video's stem."""
        return self.stems[self.index]


@dataclass
class PartResult:
    """What a worker sends back: where its rows are, and the facts the driver needs to join them."""

    index: int
    path: Path | None  # None: the video gave no rows after formatting
    frame_rows: int  # per-frame rows (the report's rows)
    report: VideoReport
    notes: list[str] = field(default_factory=list)
    spec_json: str | None = None
    n_examples: int = 0  # examples the strategy chose (frame layout numbers them across videos)
    single_frame_examples: bool = True  # every example is one frame (frame layout: no "example" column)


class _NoRows(Exception):
    """Formatting one video gave nothing, which the whole table only reports when every video does."""


# -- worker -----------------------------------------------------------------------------------------

def build_part(task: PartTask, progress: Callable[[int], None] | None) -> PartResult:
    """Build (and format) one video's rows and write them to the parts folder; runs in a worker."""
    info = inspect_keypoint_file(task.keypoints)
    n = info.rows
    landmarks = np.empty((n, len(landmark_columns())), dtype=np.float32, order="F")
    frames = np.empty(n, dtype=np.int64)
    stamps = np.empty(n, dtype=np.float64)
    codes = {c: np.full(n, -1, dtype=code_dtype(labels)) for c, labels in task.cats.items()}
    vr = fill_video_rows(task.stem, info, task.annotations, task.cats, task.schema, task.strict,
                         frames, stamps, landmarks, codes)
    video_index = np.full(n, task.index, dtype=np.int32)
    widths = np.full(n, info.width, dtype=np.int64)
    heights = np.full(n, info.height, dtype=np.int64)
    if task.used is not None:
        keep = labeled_mask(codes, task.used)
        landmarks, frames, stamps = np.asfortranarray(landmarks[keep]), frames[keep], stamps[keep]
        video_index, widths, heights = video_index[keep], widths[keep], heights[keep]
        codes = {c: v[keep] for c, v in codes.items()}
        vr.rows = int(keep.sum())
    df = frame_table(list(task.stems), task.cats, video_index, frames, stamps, widths, heights, landmarks, codes)
    result = PartResult(task.index, None, len(df), vr)
    out: pd.DataFrame | None = df
    if task.spec is not None:
        out = _format_part(df, task.spec, result, task.gate)
    if out is not None:
        result.path = _write_part(out, task.parts_dir / f"{task.index:06d}{PART_SUFFIX}")
    if progress is not None:
        progress(n)
    return result


_SPECS: dict[str, Any] = {}  # resolved specs of this worker process, by their JSON


def _resolved(spec: FeaturePipelineSpec) -> FeaturePipelineSpec:
    """The spec resolved once per worker process (resolving loads the plugin registry)."""
    key = spec.model_dump_json()
    if key not in _SPECS:
        _SPECS[key] = spec.resolve()
    return _SPECS[key]


class _RecordingSegmenter:
    """Wraps the strategy of one task: keeps its examples, and turns 'nothing here' into _NoRows."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.segments: Segments | None = None
        self.frame_no: np.ndarray | None = None

    def row_layout(self) -> Any:
        """The wrapped strategy's layout."""
        return self.inner.row_layout()

    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:
        """The wrapped strategy's examples of this video."""
        try:
            segments = self.inner.segment(frames, label_columns)
        except ConfigError:
            raise
        except SpmlError as exc:
            # Strategies raise for a table with nothing to segment (every run shorter than the
            # window); on the whole table that happens only when it happens for every video.
            raise _NoRows(str(exc)) from None
        self.segments = segments
        self.frame_no = frames["frame"].to_numpy(np.int64)[segments.rows]
        if segments.n_examples == 0:
            raise _NoRows("; ".join(segments.notes) or f"strategy '{self.inner.name}' found no examples")
        return segments


def _format_part(df: pd.DataFrame, spec: FeaturePipelineSpec, result: PartResult,
                 gate: GateConfig | None = None) -> pd.DataFrame | None:
    """Format one video's frames as format_dataset_frames does the whole table; None when it gives no rows."""

    if len(df) == 0:
        result.notes.append("no frames to format")
        return None
    base = _resolved(spec)
    recorder = _RecordingSegmenter(base._runtime.segmenter)
    task_spec = base.model_copy()
    # A runtime of this task's own: the recorder must not be shared by threads of one worker.
    task_spec._runtime = dataclasses.replace(base._runtime, segmenter=recorder)
    try:
        formatted = format_dataset_frames(df, task_spec, quiet=True, gate=gate)
    except _NoRows as exc:
        result.notes.append(f"no rows ({exc})")
        return None
    except SpmlError as exc:
        # Every example of this video has only NaN features (no person detected in them): the whole
        # table drops such rows and fails only when all rows are such. Matched on the text of
        # spml_core.features (spec, compute, live, offline); if that text changes, the video fails loudly instead of being dropped.
        if recorder.segments is None or not str(exc).startswith("every one of the "):
            raise
        result.n_examples = recorder.segments.n_examples
        result.single_frame_examples = bool((recorder.segments.lengths == 1).all())
        result.notes.append(f"no rows ({exc})")
        return None
    segments = recorder.segments
    assert segments is not None and recorder.frame_no is not None
    out = formatted.frame
    result.notes += formatted.notes
    result.spec_json = out.attrs[SPEC_ATTR]
    result.n_examples = segments.n_examples
    result.single_frame_examples = bool((segments.lengths == 1).all())
    if formatted.spec.layout == "frame" and "example" not in out.columns:
        # One-frame examples here, but another video may have longer ones and so the whole table an
        # "example" column: number them now (kept rows are those whose frame is in the output; a
        # frame's features, hence whether its row was dropped, do not depend on its example).
        kept = np.isin(recorder.frame_no, out["frame"].to_numpy())
        out.insert(1, "example", np.flatnonzero(kept).astype(np.int64))
    return out


def _write_part(df: pd.DataFrame, path: Path) -> Path:
    """Write one part atomically; never recreate a parts folder the driver removed (run stopped)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    if not path.parent.is_dir():
        raise SpmlError(f"{path.parent}: parts folder is gone (the dataset run was stopped)")
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(path) as tmp:
        feather.write_feather(table, tmp, compression="lz4")
    return path


# -- driver -----------------------------------------------------------------------------------------

def parts_dir_for(out: str | Path) -> Path:
    """The parts folder of a dataset: '.<out name>.parts' beside it, on the same storage."""
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


@contextlib.contextmanager
def parts_folder(out: str | Path) -> Iterator[Path]:
    """A fresh, empty parts folder beside `out`, removed on exit whatever happened."""
    folder = parts_dir_for(out)
    shutil.rmtree(folder, ignore_errors=True)  # left by a run that was killed
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def used_classes_of(plan: DatasetPlan) -> list[str]:
    """The classes some frame of the plan carries (as build_dataset decides), from frame numbers and times only."""
    # Per class, the highest code any video gives a frame (-1: no frame labeled), for used_classes.
    highest = {c: np.full(1, -1, dtype=np.int64) for c in plan.cats}
    for stem, info in zip(plan.stems, plan.infos, strict=True):
        ann = plan.matched.get(stem)
        if ann is None:
            continue
        table = info.load(["frame", "timestamp_ms"])
        codes, _ = align_annotations(ann, table.column(0).to_numpy(), table.column(1).to_numpy(), plan.schema,
                                     strict=plan.strict)
        for c, v in codes.items():
            if len(v):
                highest[c][0] = max(highest[c][0], int(np.max(v)))
    return used_classes(highest, plan.cats)


def _retry(result: Any) -> bool:
    # An input error (a bad keypoint file, a strict check) fails the same way every time.
    return isinstance(result, BaseException) and not isinstance(result, SpmlError)


def build_on_executor(
    plan: DatasetPlan, parts_dir: Path, executor: Any, *, spec: FeaturePipelineSpec | None = None,
    retries: int = 1, quiet: bool = True, gate: GateConfig | None = None,
) -> tuple[pd.DataFrame, AlignmentReport]:
    """Build (and format) the plan's videos as tasks on `executor`; the table equals the single-process one."""

    used = None if plan.include_unlabeled else used_classes_of(plan)
    # A spec without its runtime (extractor and strategy objects): workers resolve it themselves.
    plain = None if spec is None else FeaturePipelineSpec.model_validate(spec.model_dump())
    tasks = [
        PartTask(i, tuple(plan.stems), info.path, plan.matched.get(stem), plan.cats, plan.schema, plan.strict,
                 used, plain, parts_dir, gate)
        for i, (stem, info) in enumerate(zip(plan.stems, plan.infos, strict=True))
    ]
    results: dict[int, PartResult] = {}
    with progress_bar(total=plan.total_frames, desc="dataset", unit="frame", disable=quiet) as bar:
        runs = map_with_retries(executor, build_part, tasks, retries=retries, is_failure=_retry,
                                on_progress=bar.update)
        try:
            for task, result, attempt, final in runs:
                if isinstance(result, BaseException):
                    what = f"{type(result).__name__}: {result}" if not isinstance(result, SpmlError) else str(result)
                    if final:
                        tries = f" after {attempt} attempts" if attempt > 1 else ""
                        raise SpmlError(f"dataset stopped: video '{task.stem}' ({task.keypoints}) failed{tries}: "
                                        f"{what}") from None
                    if not quiet:
                        bar.write(f"  {task.stem}: failed on attempt {attempt} of {retries + 1}, retrying: {what}")
                    continue
                results[task.index] = result
        finally:
            runs.close()  # stops queued tasks when a video failed or the run was interrupted
    ordered = [results[i] for i in range(len(tasks))]
    return _join(plan, ordered, spec, quiet), _report(plan, ordered)


def _report(plan: DatasetPlan, parts: list[PartResult]) -> AlignmentReport:
    report = plan.report
    report.videos = [p.report for p in parts]
    report.videos_without_annotations = [p.report.video for p in parts if p.report.annotations is None]
    report.rows = sum(p.frame_rows for p in parts)
    return report


def _join(plan: DatasetPlan, parts: list[PartResult], spec: FeaturePipelineSpec | None, quiet: bool) -> pd.DataFrame:
    """Concatenate the parts in video order, with the categories and numbering of the whole-table build."""
    import pandas as pd
    import pyarrow.feather as feather


    written = [p for p in parts if p.path is not None]
    if not written:
        first = next((p for p in parts if p.notes), parts[0])
        raise SpmlError(f"strategy '{spec.segmentation.use if spec else 'none'}' gave no rows for any of the "
                        f"{len(parts)} videos (first, '{first.report.video}': {'; '.join(first.notes)})")
    frames = [feather.read_table(p.path).to_pandas() for p in written]  # type: ignore[arg-type]
    categories = {"video": pd.Index(plan.stems, dtype=object)}
    categories.update({c: pd.Index(labels, dtype=object) for c, labels in plan.cats.items()})
    for df in frames:
        for name, cats in categories.items():
            if name in df.columns:
                # Arrow gives back the labels, maybe as another string type: set the build's own.
                df[name] = df[name].cat.set_categories(cats)
    if spec is not None:
        if spec.layout == "frame":
            if all(p.single_frame_examples for p in parts):
                frames = [df.drop(columns="example") for df in frames]
            else:
                # Examples are numbered across videos, also those of videos whose rows were all dropped.
                first_example = np.cumsum([0] + [p.n_examples for p in parts])
                for df, p in zip(frames, written, strict=True):
                    df["example"] += first_example[p.index]
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if spec is not None and "example" in table.columns and spec.layout != "frame":
        table["example"] = np.arange(len(table), dtype=np.int64)  # one row per example, in order
    if spec is not None:
        notes = [f"{p.report.video}: {note}" for p in parts for note in p.notes]
        table.attrs[SPEC_ATTR] = written[0].spec_json
        table.attrs[NOTES_ATTR] = tuple(notes)
        if not quiet:
            for note in notes:
                print(f"spml dataset: note: {note}", file=sys.stderr)
            print(f"spml dataset: strategy '{spec.segmentation.use}': {len(table)} rows, {len(spec.columns)} "
                  f"feature columns from {', '.join(f.use for f in spec.features)}", file=sys.stderr)
    return table
