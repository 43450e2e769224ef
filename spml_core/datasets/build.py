"""Datasets: keypoint files + one annotation file per video -> one table with a row per frame.

``build_dataset`` reads every keypoint file (spml's Parquet, or StreamPoseML's
``<video>_sequence.json``), parses each annotation file with an annotation parser component,
matches them by exact video stem, aligns labels to frames (``spml_core.datasets.annotations``) and
returns the table with an ``AlignmentReport``. ``write_dataset`` writes ``.parquet`` or ``.csv``
atomically. See docs/datasets.md.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from spml_core.config import AnnotationSchema, Config
from spml_core.datasets.annotations import (
    VideoAlignment,
    VideoAnnotations,
    align_annotations,
    class_categories,
    uses_times,
)
from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import CHANNELS, LANDMARK_NAMES, landmark_columns
from spml_core.util.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SEQUENCE_SUFFIX = "_sequence.json"
# JSON files spml writes that are never annotations: sequences, dataset reports and feature specs.
NOT_ANNOTATIONS = (SEQUENCE_SUFFIX, ".report.json", ".spec.json")
DATASET_SUFFIXES = (".parquet", ".csv")
META_COLUMNS = ("video", "frame", "timestamp_ms", "width", "height")


# -- report ---------------------------------------------------------------------------------------

class VideoReport(VideoAlignment):
    """Alignment of one video: its files, its frames, and what its annotations did."""

    video: str
    keypoints: str
    annotations: str | None = None
    frames: int = 0
    rows: int = Field(0, description="Rows this video contributes to the dataset")


class AlignmentReport(BaseModel):
    """What building a dataset did, per video and overall; written as <dataset>.report.json."""

    classes: dict[str, list[str]]
    rows: int = 0
    include_unlabeled: bool = True
    strict: bool = False
    on_conflict: str = "keep_later"
    videos: list[VideoReport] = Field(default_factory=list)
    videos_without_annotations: list[str] = Field(default_factory=list)
    annotations_without_videos: list[str] = Field(default_factory=list)

    @property
    def annotations_total(self) -> int:
        """Annotations read from files matched to a video."""
        return sum(v.annotations_total for v in self.videos)

    @property
    def annotations_used(self) -> int:
        """Annotations that labelled at least one frame."""
        return sum(v.annotations_used for v in self.videos)

    def table(self, max_videos: int = 20) -> str:
        """A short plain-text table: one line per video, then totals and unmatched files."""
        classes = list(self.classes)
        head = ["video", "frames", *[f"{c} labeled" for c in classes], "annotations", "clipped", "conflicts",
                "unknown"]
        rows = []
        for v in self.videos[:max_videos]:
            rows.append([
                v.video, str(v.frames), *[str(v.labeled_frames.get(c, 0)) for c in classes],
                f"{v.annotations_used}/{v.annotations_total}" if v.annotations else "-",
                str(len(v.outside)), str(len(v.conflicts)), str(sum(v.unknown_labels.values())),
            ])
        if len(self.videos) > max_videos:
            rows.append([f"... {len(self.videos) - max_videos} more", *[""] * (len(head) - 1)])
        rows.append([
            "total", str(sum(v.frames for v in self.videos)),
            *[str(sum(v.labeled_frames.get(c, 0) for v in self.videos)) for c in classes],
            f"{self.annotations_used}/{self.annotations_total}",
            str(sum(len(v.outside) for v in self.videos)), str(sum(len(v.conflicts) for v in self.videos)),
            str(sum(sum(v.unknown_labels.values()) for v in self.videos)),
        ])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        lines = [fmt(head), *map(fmt, rows)]
        lines.append(f"{self.rows} rows ({'all frames' if self.include_unlabeled else 'labeled frames only'})")
        for title, items in (("videos without annotations", self.videos_without_annotations),
                             ("annotation files matching no video", self.annotations_without_videos)):
            if items:
                shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
                lines.append(f"{title} ({len(items)}): {shown}")
        for v in self.videos:
            for c in v.conflicts[:3]:
                lines.append(f"conflict in {v.video}: {c.cls} frames {c.first_frame}-{c.last_frame}: "
                             f"{', '.join(c.labels)} -> kept {c.kept}")
            for o in v.outside[:3]:
                lines.append(f"{o.kind} in {v.video}: annotation {o.annotation} ({o.label}, {o.range})")
            if v.unknown_labels:
                lines.append(f"unknown labels in {v.video} (ignored): "
                             + ", ".join(f"{k} ({n}x)" for k, n in v.unknown_labels.items()))
        return "\n".join(lines)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON atomically."""
        data = self.model_dump(mode="json")
        data["annotations_total"] = self.annotations_total
        data["annotations_used"] = self.annotations_used
        return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def report_path(out: str | os.PathLike[str]) -> Path:
    """Where the report of a dataset goes: '<out>.report.json' beside it."""
    out = Path(out)
    return out.with_name(out.name + ".report.json")


# -- finding and reading files --------------------------------------------------------------------

def _visible_files(directory: Path, pattern: str) -> list[Path]:
    return sorted(
        p for p in directory.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def sequence_stem(path: Path) -> str:
    """Video stem of a StreamPoseML sequence file: 'clip.webm_sequence.json' -> 'clip'."""
    return Path(path.name[: -len(SEQUENCE_SUFFIX)]).stem


def find_keypoint_files(directory: str | os.PathLike[str], sequences: bool = True) -> dict[str, Path]:
    """Video stem -> keypoint file: '<stem>.parquet', else StreamPoseML's '<video>_sequence.json'."""
    directory = Path(directory)
    if not directory.exists():
        raise SpmlError(f"{directory}: keypoints folder not found")
    if directory.is_file():
        files = [directory]
        directory = directory.parent
    else:
        files = _visible_files(directory, "*.parquet")
        if sequences:
            files += _visible_files(directory, f"*{SEQUENCE_SUFFIX}")
    found: dict[str, Path] = {}
    for path in files:
        is_seq = path.name.endswith(SEQUENCE_SUFFIX)
        stem = sequence_stem(path) if is_seq else path.stem
        other = found.get(stem)
        if other is not None:
            if is_seq and other.suffix == ".parquet":
                continue  # the Parquet beside it holds the same frames plus visibility and timestamps
            raise SpmlError(f"{path}: keypoints for video '{stem}' also in {other}; keep one")
        found[stem] = path
    if not found:
        raise SpmlError(
            f"{directory}: no keypoint files found (looked for *.parquet from `spml extract`"
            + (f" and *{SEQUENCE_SUFFIX}" if sequences else "") + ")"
        )
    return dict(sorted(found.items()))


def find_annotation_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The annotation files (*.json, recursively; sequence files, reports and specs excluded), sorted."""
    directory = Path(directory)
    if not directory.exists():
        raise SpmlError(f"{directory}: annotations folder not found")
    if directory.is_file():
        return [directory]
    files = [p for p in _visible_files(directory, "*.json") if not p.name.endswith(NOT_ANNOTATIONS)]
    if not files:
        raise SpmlError(f"{directory}: no annotation files (*.json) found")
    return files


@dataclass
class KeypointTable:
    """One video's keypoint rows as Arrow columns: frame, timestamp_ms and the landmark columns."""

    table: pa.Table
    width: int
    height: int
    has_timestamps: bool = True


@dataclass
class KeypointFile:
    """A checked keypoint file: its row count and frame size, read before its rows are."""

    path: Path
    rows: int
    width: int
    height: int
    has_timestamps: bool = True
    parsed: KeypointTable | None = None  # StreamPoseML JSON is parsed whole when inspected
    metadata: Any = None  # the Parquet footer, read once by inspect_keypoint_file

    def load(self, columns: list[str] | None = None) -> pa.Table:
        """The frame, timestamp_ms and landmark columns (or just `columns`)."""
        columns = columns or ["frame", "timestamp_ms", *landmark_columns()]
        if self.parsed is not None:
            return self.parsed.table.select(columns)
        import pyarrow.parquet as pq

        try:
            with pq.ParquetFile(self.path, metadata=self.metadata) as pf:
                # ParquetFile.read skips the dataset layer of read_table: about twice as fast on wide files.
                table = pf.read(columns=columns)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SpmlError(f"{self.path}: cannot read keypoints ({exc})") from None
        if table.num_rows != self.rows:
            raise SpmlError(f"{self.path}: changed while the dataset was being built")
        return table


def inspect_keypoint_file(path: Path) -> KeypointFile:
    """Check a keypoint file (metadata, columns) and read its size without reading its rows."""
    if path.name.endswith(SEQUENCE_SUFFIX):
        kt = read_sequence_json(path)
        return KeypointFile(path, kt.table.num_rows, kt.width, kt.height, kt.has_timestamps, parsed=kt)
    import pyarrow.parquet as pq

    from spml_core.keypoints.sequence import _META_KEY, FORMAT_VERSION

    try:
        metadata = pq.read_metadata(path)  # the footer only: cheaper than opening a ParquetFile
    except Exception as exc:  # pyarrow raises several types for corrupt or foreign files
        raise SpmlError(f"{path}: not a readable Parquet file ({exc})") from None
    raw = (metadata.metadata or {}).get(_META_KEY)
    if raw is None:
        raise SpmlError(f"{path}: Parquet file has no spml keypoint metadata (not written by `spml extract`?)")
    meta = json.loads(raw)
    if meta.get("format_version") != FORMAT_VERSION:
        raise SpmlError(f"{path}: unsupported keypoint format version {meta.get('format_version')!r}")
    names = set(metadata.schema.names)
    missing = [c for c in ["frame", "timestamp_ms", *landmark_columns()] if c not in names]
    if missing:
        raise SpmlError(f"{path}: keypoint file lacks columns {missing[:5]}")
    return KeypointFile(path, int(metadata.num_rows), int(meta["width"]), int(meta["height"]), metadata=metadata)


def read_keypoint_table(path: Path) -> KeypointTable:
    """Read a keypoint file's frame, timestamp and landmark columns (no world coordinates)."""
    info = inspect_keypoint_file(path)
    return info.parsed or KeypointTable(info.load(), info.width, info.height, info.has_timestamps)


def read_sequence_json(path: Path) -> KeypointTable:
    """Read StreamPoseML's '<video>_sequence.json' (1-based frame numbers) as 0-based keypoint rows.

    These files hold x, y, z but neither visibility (NaN here) nor timestamps (NaN: only frame
    ranges can be aligned to them).
    """
    import pyarrow as pa

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpmlError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if isinstance(frames, dict):
        frames = list(frames.values())
    if not isinstance(frames, list):
        raise SpmlError(f"{path}: not a StreamPoseML sequence file (no 'frames')")
    n = len(frames)
    numbers = np.empty(n, dtype=np.int64)
    xyzv = np.full((n, len(LANDMARK_NAMES), len(CHANNELS)), np.nan, dtype=np.float32)
    width = height = 0
    nan = float("nan")
    for i, fr in enumerate(frames):  # parsing JSON objects: one dict per frame is the file's own layout
        try:
            numbers[i] = int(fr["frame_number"])
        except (KeyError, TypeError, ValueError):
            raise SpmlError(f"{path}: frame {i} has no frame_number") from None
        joints = fr.get("joint_positions") or {}
        if joints:
            try:
                xyzv[i, :, :3] = [
                    [nan if (v := j.get(c)) is None else v for c in ("x", "y", "z")]
                    for j in (joints[name] for name in LANDMARK_NAMES)
                ]
            except KeyError as exc:
                raise SpmlError(f"{path}: frame {numbers[i]} lacks joint {exc.args[0]!r}") from None
        dims = fr.get("image_dimensions") or {}
        width, height = width or int(dims.get("width") or 0), height or int(dims.get("height") or 0)
    order = np.argsort(numbers, kind="stable")
    numbers, xyzv = numbers[order], xyzv[order]
    flat = xyzv.reshape(n, -1)
    arrays = [pa.array(numbers - 1), pa.array(np.full(n, np.nan))] + [pa.array(flat[:, j]) for j in range(flat.shape[1])]
    table = pa.Table.from_arrays(arrays, names=["frame", "timestamp_ms", *landmark_columns()])
    return KeypointTable(table, width, height, has_timestamps=False)


# -- building -------------------------------------------------------------------------------------

def parse_annotations(
    files: list[Path], schema: AnnotationSchema, parser: str = "json", parser_options: dict[str, Any] | None = None,
    registry: Any = None,
) -> list[VideoAnnotations]:
    """Parse annotation files with the named annotation parser component."""
    from spml_core.registry import Registry

    registry = registry or Registry().load()
    component = registry.create("annotation_parser", parser, parser_options or {})
    return [component.parse(path, schema) for path in files]  # type: ignore[attr-defined]


def match_annotations(
    videos: dict[str, Path], annotations: list[VideoAnnotations]
) -> tuple[dict[str, VideoAnnotations], list[VideoAnnotations]]:
    """Match annotation files to videos by exact stem (name field first, then file stem)."""
    matched: dict[str, VideoAnnotations] = {}
    unmatched: list[VideoAnnotations] = []
    for ann in annotations:
        stem = next((s for s in ann.match_names if s in videos), None)
        if stem is None:
            unmatched.append(ann)
            continue
        if stem in matched:
            raise SpmlError(
                f"{ann.file}: annotations for video '{stem}' also in {matched[stem].file}; "
                "keep one file per video"
            )
        matched[stem] = ann
    return matched, unmatched


@dataclass
class DatasetPlan:
    """What the driver decides before any keypoint row is read: videos in order, files, annotations."""

    stems: list[str]
    infos: list[KeypointFile]
    matched: dict[str, VideoAnnotations]
    cats: dict[str, list[str]]
    schema: AnnotationSchema
    include_unlabeled: bool
    strict: bool
    report: AlignmentReport

    @property
    def total_frames(self) -> int:
        """Keypoint rows of all planned videos."""
        return sum(i.rows for i in self.infos)


def plan_dataset(
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
) -> DatasetPlan:
    """Find and check the files, parse and match the annotations: everything but the rows (cheap)."""
    schema = schema or AnnotationSchema()
    cats = class_categories(schema)
    if not cats:
        raise SpmlError("annotation_schema.label_class_mapping is empty: map each label to a class column")
    clash = sorted(set(cats) & {*META_COLUMNS, *landmark_columns()})
    if clash:
        raise SpmlError(f"annotation_schema.label_class_mapping: class names {clash} collide with dataset columns")
    videos = find_keypoint_files(keypoints_dir)
    ann_files = find_annotation_files(annotations_dir)
    parsed = parse_annotations(ann_files, schema, parser, parser_options, registry)
    matched, unmatched = match_annotations(videos, parsed)
    report = AlignmentReport(classes=cats, include_unlabeled=include_unlabeled, strict=strict,
                             on_conflict=schema.on_conflict)
    report.annotations_without_videos = [str(a.file) for a in unmatched]
    if not matched:
        raise SpmlError(
            f"none of the {len(parsed)} annotation files in {annotations_dir} matches a keypoint file in "
            f"{keypoints_dir} (annotations name {sorted({n for a in parsed for n in a.match_names})[:5]}, "
            f"keypoints are {list(videos)[:5]}); names must be equal video stems"
        )
    if unmatched and strict:
        raise SpmlError(
            f"{unmatched[0].file}: matches no keypoint file (looked for "
            + " or ".join(f"'{n}'" for n in unmatched[0].match_names)
            + f" in {keypoints_dir})" + (f"; {len(unmatched) - 1} more such files" if len(unmatched) > 1 else "")
        )
    stems = list(videos)[:limit] if limit else list(videos)
    infos = [inspect_keypoint_file(videos[stem]) for stem in stems]
    return DatasetPlan(stems, infos, matched, cats, schema, include_unlabeled, strict, report)


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
                     annotations=str(ann.file) if ann else None, labeled_frames={c: 0 for c in cats})
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
    from spml_core.util.progress import progress_bar

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


# -- writing --------------------------------------------------------------------------------------

def write_dataset(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write a dataset to .parquet or .csv atomically (never a partly written file)."""
    import pyarrow as pa

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in DATASET_SUFFIXES:
        raise SpmlError(f"{out}: unknown dataset format '{out.suffix}' (use .parquet or .csv)")
    table = dataframe_to_arrow(df)
    try:
        with atomic_path(out) as tmp:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                # Dictionary pages only for dictionary (categorical) columns: on floats they cost
                # size and decoding time (see spml_core.keypoints.sequence).
                dict_cols = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
                pq.write_table(table, tmp, compression="lz4", use_dictionary=dict_cols or False)
            else:

                # CSV has no dictionary type: write categories as their text; missing labels stay empty.
                cols = [col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
                        for col in table.columns]
                write_csv_blocks(pa.Table.from_arrays(cols, names=table.column_names), tmp)
    except OSError as exc:
        raise SpmlError(f"{out}: cannot write dataset ({exc.strerror or exc})") from None
    return out


CSV_BLOCK_ROWS = 16_384


def write_csv_blocks(table: pa.Table, path: Path, block_rows: int = CSV_BLOCK_ROWS) -> None:
    """Write a table as CSV, formatting blocks of rows on all cores (the same bytes as one pyarrow write).

    Formatting floats as text is the whole cost of a CSV (about 70 ns a value); pyarrow releases
    the GIL while it formats, so blocks format in parallel threads and are written in order, with
    at most two blocks per thread in memory.
    """
    import io
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.csv as pacsv

    starts = range(0, table.num_rows, block_rows)
    threads = min(os.cpu_count() or 1, len(starts))
    if threads < 2:
        pacsv.write_csv(table, path)
        return

    def block(start: int) -> bytes:
        buf = io.BytesIO()
        pacsv.write_csv(table.slice(start, block_rows), buf, pacsv.WriteOptions(include_header=start == 0))
        return buf.getvalue()

    with ThreadPoolExecutor(threads) as pool, open(path, "wb") as fh:
        pending: deque[Any] = deque()
        for start in starts:
            pending.append(pool.submit(block, start))
            if len(pending) >= 2 * threads:
                fh.write(pending.popleft().result())
        while pending:
            fh.write(pending.popleft().result())


def dataframe_to_arrow(df: pd.DataFrame) -> pa.Table:
    """An Arrow table of a DataFrame's columns (no index); NaN becomes null, categoricals dictionaries.

    Numeric columns are converted a dtype group at a time from one 2-D view, which is several
    times faster than ``pa.Table.from_pandas`` on tables with ~140 columns.
    """
    import pandas as pd
    import pyarrow as pa

    arrays: list[Any] = [None] * df.shape[1]
    groups: dict[np.dtype, list[int]] = {}
    for j, dtype in enumerate(df.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            groups.setdefault(dtype, []).append(j)
            continue
        col = df.iloc[:, j]
        if isinstance(dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy()
            values = pa.array(dtype.categories.to_numpy(dtype=object), from_pandas=True)
            arrays[j] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), values)
        else:
            arrays[j] = pa.array(col, from_pandas=True)
    for dtype, idx in groups.items():
        block = df.iloc[:, idx].to_numpy(dtype=dtype).T  # (columns, rows): each row is one column
        for j, values in zip(idx, block, strict=True):
            arrays[j] = pa.array(values, from_pandas=True)
    return pa.Table.from_arrays(arrays, names=[str(c) for c in df.columns])


def read_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a dataset written by write_dataset (.parquet or .csv)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise SpmlError(f"{path}: dataset not found")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise SpmlError(f"{path}: unknown dataset format '{path.suffix}' (use .parquet or .csv)")


# -- frames dataset (the seed API's Dataset) -------------------------------------------------------

@dataclass
class FrameDataset:
    """A built dataset: the per-frame table, its alignment report and class columns.

    ``all_frames``, ``labeled_frames`` (every class labeled, StreamPoseML's rule) and
    ``unlabeled_frames`` mirror StreamPoseML's Dataset, as DataFrames.
    """

    frames: pd.DataFrame
    report: AlignmentReport
    classes: list[str] = field(default_factory=list)

    @property
    def all_frames(self) -> pd.DataFrame:
        """Every frame."""
        return self.frames

    @property
    def labeled_mask(self) -> np.ndarray:
        """True for frames where every class column that holds any label holds one."""
        present = [self.frames[c].notna().to_numpy() for c in self.classes]
        used = [m for m in present if m.any()]
        if not used:
            return np.zeros(len(self.frames), dtype=bool)
        return np.logical_and.reduce(used)

    @property
    def labeled_frames(self) -> pd.DataFrame:
        """Frames where every class column holds a label."""
        return self.frames[self.labeled_mask]

    @property
    def unlabeled_frames(self) -> pd.DataFrame:
        """Frames where some class column is empty."""
        return self.frames[~self.labeled_mask]


# -- commands and pipeline stage --------------------------------------------------------------------

def build_and_write(
    keypoints: Path, annotations: Path, out: Path, schema: AnnotationSchema, *, parser: str = "json",
    parser_options: dict[str, Any] | None = None, include_unlabeled: bool = True, strict: bool = False,
    formatting: Any = None, quiet: bool = False, registry: Any = None, feature_spec: Any = None,
    executor: str | None = None, executor_options: dict[str, Any] | None = None, retries: int | None = None,
) -> tuple[pd.DataFrame, AlignmentReport]:
    """Build, optionally format, write the dataset and its report, and print the report table.

    Without `executor` the dataset is built in this process (the fast default) and formatted with
    the `formatting` step. With one (``local`` or ``dask``) each video is built and formatted with
    `feature_spec` in a worker (spml_core.datasets.parts); the table is the same.
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
        from spml_core.datasets.parts import build_on_executor, parts_folder
        from spml_core.execution import DEFAULT_RETRIES, create_executor
        from spml_core.registry import Registry

        if formatting is not None and feature_spec is None:
            raise SpmlError("a dataset built on an executor is formatted from its feature spec: pass feature_spec")
        ex = create_executor(registry or Registry().load(), executor, executor_options or {})
        with parts_folder(out) as parts:
            df, report = build_on_executor(plan, parts, ex, spec=feature_spec,
                                           retries=DEFAULT_RETRIES if retries is None else retries, quiet=quiet)
            _write_outputs(df, report, out, formatted=feature_spec is not None)
    if not quiet:
        print(report.table())
        print(f"spml dataset: {len(df)} rows x {df.shape[1]} columns -> {out} (report: {report_path(out)})",
              file=sys.stderr)
    return df, report


def _write_outputs(df: pd.DataFrame, report: AlignmentReport, out: Path, formatted: bool) -> None:
    """The dataset, its report and (formatted) its feature spec, each written atomically."""
    from spml_core.features.spec import spec_path, write_feature_spec

    write_dataset(df, out)
    report.write(report_path(out))
    if formatted:
        # A formatted table carries its resolved feature spec; models need it beside the dataset.
        write_feature_spec(df, out)
    else:
        # A spec left by an earlier formatted build would describe columns this table lacks.
        spec_path(out).unlink(missing_ok=True)


def run_dataset_stage(cfg: Config, stage: Any) -> tuple[pd.DataFrame, AlignmentReport]:
    """The `dataset` stage of `spml run`: build, format when configured, write dataset and report."""
    formatting = spec = None
    # --- features/segmentation formatting: owned by spml_core.features (spec, compute, live, offline) (docs/features.md) -------
    if stage.features or stage.feature_options or stage.segmentation is not None or stage.decimals is not None:
        from spml_core.features.offline import formatting_step
        from spml_core.features.spec import FeaturePipelineSpec

        # Resolved now, so unknown feature or strategy names fail before any keypoints are read.
        spec = FeaturePipelineSpec.from_stage(stage).resolve()
        formatting = formatting_step(spec)
    # -----------------------------------------------------------------------------------------------
    ex = stage.executor  # absent: the single-process build (fastest for most datasets)
    return build_and_write(
        cfg.resolve(stage.keypoints), cfg.resolve(stage.annotations), cfg.resolve(stage.out),
        cfg.annotation_schema, parser=stage.parser.use, parser_options=stage.parser.options,
        include_unlabeled=stage.include_unlabeled, strict=stage.strict, formatting=formatting,
        feature_spec=spec, executor=ex.use if ex else None, executor_options=ex.options if ex else None,
        retries=stage.retries,
    )
