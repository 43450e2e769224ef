"""CvatVideoParser: CVAT's "CVAT for video 1.1" XML export (annotations.xml) of one task.

A ``<track>`` labels the frames where its shapes are inside the picture (``outside="0"``) until the
next shape that leaves it (``outside="1"``); ``<tag>`` elements label single frames, and runs of
consecutive tags of one label become one range. Frame numbers are the task's, shifted by its
``start_frame`` and multiplied by the ``step`` of its frame filter, to give video frames.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from spml_core import VideoAnnotations
from spml_core.components import AnnotationParser
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError
from spml_annotations_interchange.common import annotation, media_stem, read_xml

SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "cuboid", "skeleton", "mask")


def _int(path: Path, value: str | None, what: str) -> int:
    try:
        n = int(str(value))
    except ValueError:
        raise SpmlError(f"{path}: {what} {value!r} is not a whole frame number") from None
    if n < 0:
        raise SpmlError(f"{path}: {what} {n} is negative")
    return n


class CvatVideoParser(AnnotationParser):
    """Reads one CVAT for video XML export per video (tracks and tags with frame ranges)."""

    name: ClassVar[str] = "cvat_video"
    description: ClassVar[str] = "CVAT for video 1.1 XML: tracks and tags -> frame ranges"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.xml",)

    def parse(self, path: Path, schema: AnnotationSchema) -> VideoAnnotations:
        """Parse one annotations.xml; errors name the file and the track or tag at fault."""
        path = Path(path)
        root = read_xml(path, "annotations", "a CVAT XML export")
        tasks = root.findall("meta/task") or root.findall("meta/job")
        if len(tasks) > 1:
            raise SpmlError(f"{path}: holds {len(tasks)} tasks; export each task (one video) on its own")
        task = tasks[0] if tasks else None
        offset = _int(path, task.findtext("start_frame", "0"), "meta start_frame") if task is not None else 0
        stop = task.findtext("stop_frame") if task is not None else None
        last = _int(path, stop, "meta stop_frame") if stop is not None else None
        step = 1
        ff = task.findtext("frame_filter") if task is not None else None
        if ff and (m := re.search(r"step\s*=\s*(\d+)", ff)):
            step = int(m.group(1))
        source = task.findtext("source") if task is not None else None
        spans: list[tuple[int, int, str, str]] = []
        for track in root.findall("track"):
            label = track.get("label", "")
            where = f"track {track.get('id')} ({label!r})"
            shapes = sorted(((_int(path, s.get("frame"), f"{where} frame"), s.get("outside", "0") == "1")
                             for s in track if s.tag in SHAPES), key=lambda x: x[0])
            begin = None
            for frame, outside in shapes:
                if outside and begin is not None:
                    spans.append((begin, frame - 1, label, where))
                    begin = None
                elif not outside and begin is None:
                    begin = frame
            if begin is not None:
                end = last if last is not None else shapes[-1][0]
                spans.append((begin, end, label, where))
        tags = sorted((_int(path, t.get("frame"), f"tag {t.get('label')!r} frame"), t.get("label", ""))
                      for t in root.findall("tag"))
        for label in dict.fromkeys(lab for _, lab in tags):
            frames = [f for f, lab in tags if lab == label]
            begin = prev = frames[0]
            for f in frames[1:] + [None]:  # type: ignore[list-item]
                if f is None or f > prev + 1:
                    spans.append((begin, prev, label, f"tags {label!r}"))
                    if f is not None:
                        begin = f
                if f is not None:
                    prev = f
        out = []
        for begin, end, label, where in spans:
            if not label:
                raise SpmlError(f"{path}: {where}: has no label")
            out.append(annotation(schema, label, len(out), f"{path}: {where}",
                                  start_frame=offset + begin * step, end_frame=offset + end * step))
        return VideoAnnotations(file=path, video_name=media_stem(source), annotations=out)
