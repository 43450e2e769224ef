"""Annotations: labelled ranges of one video, and their exact alignment to its keypoint rows.

Rules (see docs/datasets.md):
  * Frame numbers are 0-based video frame indices; ranges include both ends.
  * Times (seconds) are converted with the video's real frame timestamps, never a nominal fps:
    a range starts at the keypoint row whose timestamp is nearest to its start and ends at the
    row nearest to its end (a tie between two rows goes to the row inside the range).
  * Each class of ``label_class_mapping`` is its own column. Two different labels of one class
    on a frame are a conflict, handled by ``on_conflict``: ``error`` stops, ``keep_later``
    keeps the label of the annotation that comes later in the file.
  * Parts of a range past the last keypoint row are clipped and reported (an error when strict).
  * Labels missing from ``label_class_mapping`` are reported and ignored (an error when strict).

Assignment is vectorised: every annotation's rows are expanded at once with ``np.repeat`` and
the winner per (class, row) is the largest annotation index (``np.maximum.at``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spml_core.components import Strict
from spml_core.errors import SpmlError
from spml_core.keypoints.extract import VIDEO_EXTENSIONS

MISSING: Any = object()  # returned by resolve_dot_path when a key is absent


class AnnotationFields(Strict):
    """Dot paths, inside one annotation, to its label and its frame (or time) range."""

    label: str = "label"
    start_frame: str | None = "metadata.system.frame"
    end_frame: str | None = "metadata.system.endFrame"
    start_time: str | None = Field(None, description="Dot path to the start time in seconds")
    end_time: str | None = Field(None, description="Dot path to the end time in seconds")


class AnnotationSchema(Strict):
    """The seed's annotation_schema block, plus spml's conflict rule."""

    annotations_key: str = "annotations"
    annotation_fields: AnnotationFields = Field(default_factory=AnnotationFields)
    label_class_mapping: dict[str, str] = Field(
        default_factory=lambda: {
            "Left Step": "step_type",
            "Right Step": "step_type",
            "Successful Weight Transfer": "weight_transfer_type",
            "Failure Weight Transfer": "weight_transfer_type",
        }
    )
    on_conflict: Literal["error", "keep_later"] = Field(
        "keep_later",
        description="Two labels of one class on a frame: stop with an error, or keep the later annotation",
    )



class Annotation(BaseModel):
    """One labelled range of a video, in frames (0-based, inclusive) or in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    cls: str | None = Field(description="Class column from label_class_mapping; None if the label is unknown")
    start_frame: int | None = Field(None, ge=0)
    end_frame: int | None = Field(None, ge=0)
    start_time: float | None = Field(None, ge=0, description="Seconds from the start of the video")
    end_time: float | None = Field(None, ge=0, description="Seconds from the start of the video")
    index: int = Field(ge=0, description="0-based position of the annotation in its file")

    @model_validator(mode="after")
    def _one_range(self) -> Annotation:
        frames = self.start_frame is not None and self.end_frame is not None
        times = self.start_time is not None and self.end_time is not None
        if frames == times:
            raise ValueError("give either start_frame and end_frame, or start_time and end_time")
        if frames and self.start_frame > self.end_frame:  # type: ignore[operator]
            raise ValueError(f"start_frame {self.start_frame} is after end_frame {self.end_frame}")
        if times and self.start_time > self.end_time:  # type: ignore[operator]
            raise ValueError(f"start_time {self.start_time} is after end_time {self.end_time}")
        return self

    @property
    def in_time(self) -> bool:
        """True when the range is given in seconds rather than frames."""
        return self.start_time is not None

    @property
    def range_text(self) -> str:
        """'frames 51-96' or '1.7-3.2 s', for messages and reports."""
        if self.in_time:
            return f"{self.start_time:g}-{self.end_time:g} s"
        return f"frames {self.start_frame}-{self.end_frame}"


class VideoAnnotations(BaseModel):
    """All annotations of one video, as read from one annotation file."""

    model_config = ConfigDict(extra="forbid")

    file: Path
    video_name: str | None = Field(None, description="Stem of the file's own video name field, if any")
    annotations: list[Annotation] = Field(default_factory=list)
    fps: float | None = Field(None, gt=0, description="Frame rate the file states (checked against the keypoints)")

    @property
    def match_names(self) -> list[str]:
        """Video stems this file matches, by preference: its name field, then its own stem, each with or
        without a video extension ('clip.mp4.eaf' and 'clip.eaf' both match the video 'clip')."""
        names: list[str] = []
        for name in (self.video_name, self.file.stem):
            for n in (name, video_stem(name)) if name else ():
                if n not in names:
                    names.append(n)
        return names


def video_stem(name: str) -> str:
    """'clip.mp4' -> 'clip' (a video extension dropped); other names unchanged."""
    p = Path(name)
    return p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else name


# -- parsing records (shared by annotation parsers) --------------------------------------------

def uses_times(schema: AnnotationSchema) -> bool:
    """Whether the schema's ranges are times: start_time/end_time mapped and frames not chosen explicitly."""
    f = schema.annotation_fields
    if f.start_time is None or f.end_time is None:
        return False
    explicit = f.model_fields_set
    frames_given = ("start_frame" in explicit and f.start_frame) or ("end_frame" in explicit and f.end_frame)
    return not frames_given


def resolve_dot_path(obj: Any, path: str | Sequence[str]) -> Any:
    """Follow a dot path ('metadata.system.frame') through dicts (and list indices); MISSING if absent."""
    cur = obj
    for part in path.split(".") if isinstance(path, str) else path:
        if type(cur) is dict or isinstance(cur, Mapping):
            if part not in cur:
                return MISSING
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(cur) <= i < len(cur):
                return MISSING
            cur = cur[i]
        else:
            return MISSING
    return cur


def _number(value: Any, what: str, where: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpmlError(f"{where}: {what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise SpmlError(f"{where}: {what} must be finite, got {value!r}")
    if integer:
        if value != int(value):
            raise SpmlError(f"{where}: {what} must be a whole frame number, got {value!r}")
        value = int(value)
    if value < 0:
        raise SpmlError(f"{where}: {what} must not be negative, got {value!r}")
    return value


def annotations_from_records(
    records: Sequence[Any], schema: AnnotationSchema, file: Path, key: str | None = None
) -> list[Annotation]:
    """Turn raw annotation records into Annotations using the schema's dot paths; errors name file, index, path."""
    fields = schema.annotation_fields
    times = uses_times(schema)
    if times:
        names = ("start_time", "end_time")
        paths = (fields.start_time, fields.end_time)
    else:
        if not fields.start_frame or not fields.end_frame:
            raise SpmlError(
                "annotation_schema.annotation_fields: set start_frame and end_frame, "
                "or start_time and end_time (seconds)"
            )
        names = ("start_frame", "end_frame")
        paths = (fields.start_frame, fields.end_frame)
    label_parts = fields.label.split(".")
    start_parts, end_parts = (p.split(".") for p in paths)  # type: ignore[union-attr]
    mapping = schema.label_class_mapping
    out: list[Annotation] = []
    # Messages are only formatted on failure: a study can hold 100k annotations.
    for i, rec in enumerate(records):
        if type(rec) is not dict and not isinstance(rec, Mapping):
            raise SpmlError(f"{file}: annotation {i} ({key}[{i}]): expected an object, got {type(rec).__name__}")
        label = resolve_dot_path(rec, label_parts)
        if type(label) is not str:
            if label is MISSING:
                raise SpmlError(f"{file}: annotation {i}: missing key '{fields.label}' (annotation_fields.label)")
            if isinstance(label, int) and not isinstance(label, bool):
                label = str(label)
            else:
                raise SpmlError(f"{file}: annotation {i}: label at '{fields.label}' must be text, got {label!r}")
        bounds = []
        for name, path, parts in zip(names, paths, (start_parts, end_parts)):
            v = resolve_dot_path(rec, parts)
            if v is MISSING:
                raise SpmlError(f"{file}: annotation {i} ({label!r}): missing key '{path}' (annotation_fields.{name})")
            if type(v) is not int or v < 0:
                v = _number(v, f"{name} '{path}'", f"{file}: annotation {i} ({label!r})", integer=not times)
            bounds.append(v)
        start, end = bounds
        if start > end:
            unit = "s" if times else ""
            raise SpmlError(
                f"{file}: annotation {i} ({label!r}): start {start}{unit} ('{paths[0]}') "
                f"is after end {end}{unit} ('{paths[1]}')"
            )
        out.append(Annotation(label=label, cls=mapping.get(label), index=i, **{names[0]: start, names[1]: end}))
    return out


# -- alignment ------------------------------------------------------------------------------------

class OutsideRange(BaseModel):
    """An annotation whose range reaches past the keypoint rows (clipped) or lies wholly outside them."""

    annotation: int
    label: str
    range: str
    kind: Literal["clipped", "outside"]


class Conflict(BaseModel):
    """Different labels of one class on the same frames of one video."""

    cls: str
    first_frame: int
    last_frame: int
    frames: int
    labels: list[str]
    annotations: list[int]
    kept: str | None = Field(description="Label kept on those frames (keep_later), None when it is an error")


class VideoAlignment(BaseModel):
    """What aligning one video's annotations did."""

    annotations_total: int = 0
    annotations_used: int = 0
    labeled_frames: dict[str, int] = Field(default_factory=dict)
    outside: list[OutsideRange] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    unknown_labels: dict[str, int] = Field(default_factory=dict)


def class_categories(schema: AnnotationSchema) -> dict[str, list[str]]:
    """Class column -> its labels, in label_class_mapping order."""
    out: dict[str, list[str]] = {}
    for label, cls in schema.label_class_mapping.items():
        out.setdefault(cls, []).append(label)
    return out


def _nearest_rows(ts: np.ndarray, t: np.ndarray, inward: Literal["up", "down"]) -> np.ndarray:
    """Index of the row whose timestamp is nearest to each t; ties go up (starts) or down (ends)."""
    n = len(ts)
    hi = np.clip(np.searchsorted(ts, t, side="left"), 1, n - 1) if n > 1 else np.zeros(len(t), dtype=np.int64)
    if n == 1:
        return hi
    lo = hi - 1
    d_lo, d_hi = np.abs(t - ts[lo]), np.abs(ts[hi] - t)
    pick_hi = d_hi < d_lo if inward == "down" else d_hi <= d_lo
    return np.where(pick_hi, hi, lo)


def row_ranges(
    anns: Sequence[Annotation], frame_index: np.ndarray, timestamps_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half-open row ranges [lo, hi) per annotation, plus masks: clipped (partly outside), outside (wholly)."""
    k = len(anns)
    n = len(frame_index)
    lo = np.zeros(k, dtype=np.int64)
    hi = np.zeros(k, dtype=np.int64)
    clipped = np.zeros(k, dtype=bool)
    outside = np.ones(k, dtype=bool)
    if k == 0 or n == 0:
        return lo, hi, clipped, outside
    is_time = np.fromiter((a.in_time for a in anns), dtype=bool, count=k)
    fr = ~is_time
    if fr.any():
        s = np.array([a.start_frame for a in anns if not a.in_time], dtype=np.int64)
        e = np.array([a.end_frame for a in anns if not a.in_time], dtype=np.int64)
        # With a strided extraction the video's last frames may follow the last row by step-1.
        step = int(np.median(np.diff(frame_index))) if n > 1 else 1
        first, last = int(frame_index[0]), int(frame_index[-1]) + max(step, 1) - 1
        lo[fr] = np.searchsorted(frame_index, s, side="left")
        hi[fr] = np.searchsorted(frame_index, e, side="right")
        clipped[fr] = (s < first) | (e > last)
        outside[fr] = (e < first) | (s > last)
    if is_time.any():
        s = np.array([a.start_time for a in anns if a.in_time], dtype=np.float64) * 1000.0
        e = np.array([a.end_time for a in anns if a.in_time], dtype=np.float64) * 1000.0
        half = 0.5 * float(np.median(np.diff(timestamps_ms))) if n > 1 else 0.0
        first, last = float(timestamps_ms[0]) - half, float(timestamps_ms[-1]) + half
        a = _nearest_rows(timestamps_ms, s, "up")
        b = _nearest_rows(timestamps_ms, e, "down")
        lo[is_time] = a
        hi[is_time] = np.maximum(b + 1, a)
        clipped[is_time] = (s < first) | (e > last)
        outside[is_time] = (e < first) | (s > last)
        hi[is_time] = np.where(outside[is_time], lo[is_time], hi[is_time])
    return lo, hi, clipped & ~outside, outside


def assign_intervals(
    n_rows: int, lo: np.ndarray, hi: np.ndarray, group: np.ndarray, code: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised interval painting: per (group, row) the code of the covering interval with the largest index.

    Returns ``codes`` (n_groups, n_rows), -1 where no interval covers, and ``conflict``
    (n_groups, n_rows) True where intervals with different codes cover the same row.
    """
    lengths = np.maximum(hi - lo, 0)
    total = int(lengths.sum())
    codes = np.full(n_groups * n_rows, -1, dtype=np.int64)
    if total == 0:
        none = np.zeros((n_groups, n_rows), dtype=bool)
        return codes.reshape(n_groups, n_rows), none
    ids = np.repeat(np.arange(len(lo)), lengths)
    starts = np.cumsum(lengths) - lengths
    rows = np.arange(total) - np.repeat(starts - lo, lengths)
    keys = group[ids] * n_rows + rows
    winner = np.full(n_groups * n_rows, -1, dtype=np.int64)
    np.maximum.at(winner, keys, ids)
    covered = winner >= 0
    codes[covered] = code[winner[covered]]
    # Different codes on one row <=> min code != max code among its covering intervals.
    cmin = np.full(n_groups * n_rows, np.iinfo(np.int64).max, dtype=np.int64)
    cmax = np.full(n_groups * n_rows, -1, dtype=np.int64)
    np.minimum.at(cmin, keys, code[ids])
    np.maximum.at(cmax, keys, code[ids])
    conflict = covered & (cmin != cmax)
    return codes.reshape(n_groups, n_rows), conflict.reshape(n_groups, n_rows)


def align_annotations(
    video: VideoAnnotations,
    frame_index: np.ndarray,
    timestamps_ms: np.ndarray,
    schema: AnnotationSchema,
    strict: bool = False,
) -> tuple[dict[str, np.ndarray], VideoAlignment]:
    """Label each keypoint row of one video: class -> int codes into class_categories (-1 = no label)."""
    frame_index = np.asarray(frame_index, dtype=np.int64)
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.float64)
    n = len(frame_index)
    if n > 1 and not (np.diff(frame_index) > 0).all():
        raise SpmlError(f"{video.file}: keypoint frame indices are not increasing; cannot align annotations")
    cats = class_categories(schema)
    classes = list(cats)
    report = VideoAlignment(annotations_total=len(video.annotations))

    unknown = [a for a in video.annotations if a.cls is None]
    for a in unknown:
        report.unknown_labels[a.label] = report.unknown_labels.get(a.label, 0) + 1
    if unknown and strict:
        listing = ", ".join(f"{lab!r} ({c}x)" for lab, c in report.unknown_labels.items())
        raise SpmlError(
            f"{video.file}: labels not in annotation_schema.label_class_mapping: {listing} "
            "(add them to the mapping, or drop --strict to ignore them)"
        )
    known = [a for a in video.annotations if a.cls is not None]
    lo, hi, clipped, outside = row_ranges(known, frame_index, timestamps_ms)
    for a, c, o in zip(known, clipped, outside, strict=True):
        if c or o:
            report.outside.append(OutsideRange(annotation=a.index, label=a.label, range=a.range_text,
                                               kind="outside" if o else "clipped"))
    if report.outside and strict:
        last = f"frame {frame_index[-1]} ({timestamps_ms[-1] / 1000:.3f} s)" if n else "no frames"
        items = "; ".join(f"{o.range} of annotation {o.annotation} ({o.label!r}) is {o.kind}"
                          for o in report.outside[:5])
        raise SpmlError(
            f"{video.file}: annotation ranges reach past the video's keypoints (last {last}): {items}"
            + (f" and {len(report.outside) - 5} more" if len(report.outside) > 5 else "")
        )
    group = np.array([classes.index(a.cls) for a in known], dtype=np.int64)
    code = np.array([cats[a.cls].index(a.label) for a in known], dtype=np.int64)
    codes, conflict = assign_intervals(n, lo, hi, group, code, len(classes))
    report.annotations_used = int(((hi - lo) > 0).sum())
    if conflict.any():
        report.conflicts = _describe_conflicts(conflict, codes, known, lo, hi, group, cats, frame_index,
                                               schema.on_conflict)
        if schema.on_conflict == "error":
            c = report.conflicts[0]
            more = f" (and {len(report.conflicts) - 1} more conflicts)" if len(report.conflicts) > 1 else ""
            raise SpmlError(
                f"{video.file}: conflicting labels for class '{c.cls}' on frames {c.first_frame}-{c.last_frame}: "
                + ", ".join(f"{lab!r}" for lab in c.labels)
                + f" (annotations {', '.join(map(str, c.annotations))}){more}. "
                "Fix the annotations, or set annotation_schema.on_conflict: keep_later to keep the later one"
            )
    out = {cls: codes[g] for g, cls in enumerate(classes)}
    report.labeled_frames = {cls: int((codes[g] >= 0).sum()) for g, cls in enumerate(classes)}
    return out, report


def _describe_conflicts(
    conflict: np.ndarray, codes: np.ndarray, known: list[Annotation], lo: np.ndarray, hi: np.ndarray,
    group: np.ndarray, cats: dict[str, list[str]], frame_index: np.ndarray, on_conflict: str,
) -> list[Conflict]:
    out: list[Conflict] = []
    for g, cls in enumerate(cats):
        mask = conflict[g]
        if not mask.any():
            continue
        # Runs of consecutive conflicting rows (a few per video at most): loop over runs, not frames.
        # A run also ends where the kept label changes.
        idx = np.flatnonzero(mask)
        breaks = np.flatnonzero((np.diff(idx) != 1) | (np.diff(codes[g, idx]) != 0)) + 1
        starts = idx[np.concatenate(([0], breaks))]
        stops = idx[np.concatenate((breaks - 1, [len(idx) - 1]))] + 1
        for start, stop in zip(starts, stops, strict=True):
            members = [i for i in range(len(known)) if group[i] == g and lo[i] < stop and hi[i] > start]
            kept = None if on_conflict == "error" else cats[cls][int(codes[g, stop - 1])]
            out.append(Conflict(
                cls=cls, first_frame=int(frame_index[start]), last_frame=int(frame_index[stop - 1]),
                frames=int(stop - start), labels=list(dict.fromkeys(known[i].label for i in members)),
                annotations=[known[i].index for i in members], kept=kept,
            ))
    return out
