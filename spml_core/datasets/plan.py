"""Which keypoint file goes with which annotation file: discovery, matching by video stem, and the dataset plan."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spml_core.datasets.annotations import (
    AnnotationSchema,
    VideoAnnotations,
    class_categories,
    video_stem,
)
from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import landmark_columns

if TYPE_CHECKING:
    import pyarrow as pa
from spml_core.datasets.report import AlignmentReport
from spml_core.datasets.rows import META_COLUMNS
from spml_core.keypoints.sequence import (
    _META_KEY,
    checked_keypoint_meta,
)
from spml_core.keypoints.streamposeml import KeypointTable, read_sequence_json
from spml_core.registry import Registry

SEQUENCE_SUFFIX = "_sequence.json"


# JSON files spml writes that are never annotations: sequences, dataset reports and feature specs.
NOT_ANNOTATIONS = (SEQUENCE_SUFFIX, ".report.json", ".spec.json")


DATASET_SUFFIXES = (".parquet", ".csv")


# Files `spml predict` writes beside its exports, never annotations.
SPML_OUTPUTS = (".predictions.csv", ".bouts.csv", "summary.json")


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


def find_annotation_files(
    directory: str | os.PathLike[str], patterns: tuple[str, ...] | list[str] = ("*.json",)
) -> list[Path]:
    """The annotation files matching the parser's patterns, recursively (spml's own JSON outputs excluded), sorted."""
    directory = Path(directory)
    if not directory.exists():
        raise SpmlError(f"{directory}: annotations folder not found")
    if directory.is_file():
        return [directory]
    found = {p for pattern in patterns for p in _visible_files(directory, pattern)}
    files = sorted(p for p in found if not p.name.endswith(NOT_ANNOTATIONS) and not p.name.endswith(SPML_OUTPUTS))
    if not files:
        raise SpmlError(f"{directory}: no annotation files ({', '.join(patterns)}) found")
    return files


def check_annotation_sources(matched: dict[str, VideoAnnotations], infos: dict[str, KeypointFile],
                             videos: dict[str, Path]) -> None:
    """An annotation file that names another video than the one it matched, or another frame rate, is an error."""
    for stem, ann in matched.items():
        named = ann.video_name
        if named and stem not in (named, video_stem(named)):
            raise SpmlError(f"{ann.file}: refers to video '{named}' (its video field) but matched the keypoints "
                            f"of '{stem}' by file name; fix the file's video field or rename the file")
        info = infos.get(stem)
        meta = json.loads((info.metadata.metadata or {}).get(_META_KEY, b"{}")) if info and info.metadata else {}
        fps = meta.get("fps")
        if ann.fps and fps and abs(ann.fps - fps) > 0.01 * fps:
            raise SpmlError(f"{ann.file}: FPS {ann.fps:g} differs from the keypoints of '{stem}' "
                            f"({videos[stem]}: {fps:g} fps); was it made for another encoding of the video?")


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

    try:
        metadata = pq.read_metadata(path)  # the footer only: cheaper than opening a ParquetFile
    except Exception as exc:  # pyarrow raises several types for corrupt or foreign files
        raise SpmlError(f"{path}: not a readable Parquet file ({exc})") from None
    meta = checked_keypoint_meta(path, metadata.metadata, metadata.schema.names)
    return KeypointFile(path, int(metadata.num_rows), int(meta["width"]), int(meta["height"]), metadata=metadata)


def parse_annotations(
    files: list[Path], schema: AnnotationSchema, parser: str = "json", parser_options: dict[str, Any] | None = None,
    registry: Any = None,
) -> list[VideoAnnotations]:
    """Parse annotation files with the named annotation parser component."""

    registry = registry or Registry().load()
    component = registry.create("annotation_parser", parser, parser_options or {})
    out: list[VideoAnnotations] = []
    for path in files:
        parsed = component.parse(path, schema)  # type: ignore[attr-defined]
        # A file of several videos (e.g. a Label Studio export of many tasks) gives a list.
        out.extend(parsed if isinstance(parsed, list) else [parsed])
    return out


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
    registry = registry or Registry().load()
    patterns = getattr(registry.get("annotation_parser", parser), "file_patterns", ("*.json",))
    ann_files = find_annotation_files(annotations_dir, patterns)
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
    check_annotation_sources(matched, dict(zip(stems, infos)), videos)
    return DatasetPlan(stems, infos, matched, cats, schema, include_unlabeled, strict, report)

