"""BorisParser: BORIS's tabular events export (TSV or CSV) of one observation of one video.

State behaviours have a START and a STOP row (a range); point behaviours a POINT row (one frame).
Times are seconds from the start of the media file; the export's FPS is checked against the
keypoints. Both the BORIS 8 columns (``Behavior type``, ``Media file name``) and the older ones
(``Status``, ``Media file path``) are read.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from spml_core import VideoAnnotations
from spml_core.components import AnnotationParser
from spml_core.components import Options as BaseOptions
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError
from spml_annotations_interchange.common import annotation, media_stem, read_text

STATUS = ("Behavior type", "Status")
MEDIA = ("Media file name", "Media file path", "Media file", "Source")


class BorisParser(AnnotationParser):
    """Reads one BORIS tabular events export per video."""

    name: ClassVar[str] = "boris"
    description: ClassVar[str] = "BORIS tabular events (TSV/CSV): state events -> ranges, point events -> frames"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.tsv", "*.csv")

    class Options(BaseOptions):
        """Options of the BORIS parser."""

        subjects: list[str] | None = Field(None, description="Read only these subjects (default: all)")

    def parse(self, path: Path, schema: AnnotationSchema) -> VideoAnnotations:
        """Parse one export; errors name the file, the row and the column at fault."""
        path = Path(path)
        text = read_text(path, "utf-8-sig")
        delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in text.split("\n", 1)[0] else ","
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        head = next((i for i, r in enumerate(rows) if "Behavior" in r and "Time" in r), None)
        if head is None:
            raise SpmlError(f"{path}: not a BORIS tabular events export (no header row with 'Behavior' and 'Time')")
        cols = rows[head]
        status = next((c for c in STATUS if c in cols), None)
        if status is None:
            raise SpmlError(f"{path}: no '{STATUS[0]}' (or '{STATUS[1]}') column saying START, STOP or POINT")
        media = next((c for c in MEDIA if c in cols), None)
        at = {c: i for i, c in enumerate(cols)}
        subjects = self.options.subjects  # type: ignore[attr-defined]
        open_: dict[tuple[str, str], tuple[float, int]] = {}
        out = []
        videos: dict[str, int] = {}
        fps_seen: dict[float, int] = {}
        for n, row in enumerate(rows[head + 1:], start=head + 2):
            if not any(cell.strip() for cell in row):
                continue
            rec = {c: (row[i].strip() if i < len(row) else "") for c, i in at.items()}
            where = f"{path}: row {n}"
            subject = rec.get("Subject", "")
            if subjects is not None and subject not in subjects:
                continue
            behavior, kind = rec["Behavior"], rec[status].upper()
            try:
                t = float(rec["Time"])
            except ValueError:
                raise SpmlError(f"{where}: Time {rec['Time']!r} is not a number of seconds") from None
            if media and rec.get(media):
                name = media_stem(rec[media].split(":", 1)[-1] if media == "Source" else rec[media]) or ""
                videos.setdefault(name, n)
            if rec.get("FPS"):
                try:
                    fps_seen.setdefault(round(float(rec["FPS"]), 3), n)
                except ValueError:
                    raise SpmlError(f"{where}: FPS {rec['FPS']!r} is not a number") from None
            key = (subject, behavior)
            if kind == "START":
                if key in open_:
                    raise SpmlError(f"{where}: {behavior!r} starts again before its STOP "
                                    f"(started at row {open_[key][1]})")
                open_[key] = (t, n)
            elif kind == "STOP":
                if key not in open_:
                    raise SpmlError(f"{where}: STOP of {behavior!r} without a START")
                t0, _ = open_.pop(key)
                out.append(annotation(schema, behavior, len(out), where, start_time=t0, end_time=t))
            elif kind == "POINT":
                out.append(annotation(schema, behavior, len(out), where, start_time=t, end_time=t))
            else:
                raise SpmlError(f"{where}: {status} {rec[status]!r}; expected START, STOP or POINT")
        if open_:
            (subject, behavior), (_, n) = next(iter(open_.items()))
            raise SpmlError(f"{path}: row {n}: {behavior!r} starts but never stops")
        if len(videos) > 1:
            (a, ra), (b, rb) = list(videos.items())[:2]
            raise SpmlError(f"{path}: events of two media files, {a!r} (row {ra}) and {b!r} (row {rb}); "
                            "export one observation of one video per file")
        if len(fps_seen) > 1:
            (a, ra), (b, rb) = list(fps_seen.items())[:2]
            raise SpmlError(f"{path}: FPS {a:g} (row {ra}) and {b:g} (row {rb}) in one file")
        fps = next(iter(fps_seen), None)
        return VideoAnnotations(file=path, video_name=next(iter(videos), None) or None, annotations=out,
                                fps=fps if fps else None)
