"""LabelStudioVideoParser: Label Studio's JSON export of video tasks labelled with ``TimelineLabels``.

The labelling config that works (docs/interchange.md)::

    <View>
      <Video name="video" value="$video"/>
      <TimelineLabels name="label" toName="video">
        <Label value="Left Step"/>
        <Label value="Right Step"/>
      </TimelineLabels>
    </View>

Each result of type ``timelinelabels`` holds frame ranges (Label Studio counts frames from 1) and
the label. A file may hold several tasks (videos): each becomes its own VideoAnnotations, matched
by its video's name (Label Studio's upload prefix, e.g. ``3f2a1b2c-``, is dropped).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from spml_core import VideoAnnotations
from spml_core.components import AnnotationParser
from spml_core.components import Options as BaseOptions
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError
from spml_annotations_interchange.common import annotation, media_stem, read_text

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class LabelStudioVideoParser(AnnotationParser):
    """Reads a Label Studio JSON export of video tasks (TimelineLabels results)."""

    name: ClassVar[str] = "labelstudio_video"
    description: ClassVar[str] = "Label Studio JSON export, video tasks with TimelineLabels (frames from 1)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.json",)

    class Options(BaseOptions):
        """Options of the Label Studio parser."""

        read: Literal["auto", "annotations", "predictions"] = Field(
            "auto", description="auto: a task's annotations, or its predictions when it has none")
        video_key: str = Field("video", description="Key under each task's data holding the video")
        frame_base: Literal[0, 1] = Field(1, description="Number of the first frame in ranges (Label Studio: 1)")

    def parse(self, path: Path, schema: AnnotationSchema) -> VideoAnnotations | list[VideoAnnotations]:
        """Parse one export; several tasks give several VideoAnnotations (one per video)."""
        path = Path(path)
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise SpmlError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        tasks = [data] if isinstance(data, dict) else data
        if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t for t in tasks):
            raise SpmlError(f"{path}: not a Label Studio export (expected a list of tasks with 'data')")
        out = [self._task(path, i, t, schema) for i, t in enumerate(tasks)]
        return out[0] if len(out) == 1 else out

    def _task(self, path: Path, i: int, task: dict[str, Any], schema: AnnotationSchema) -> VideoAnnotations:
        opts = self.options
        where = f"{path}: task {task.get('id', i)}"
        video = task["data"].get(opts.video_key) if isinstance(task["data"], dict) else None  # type: ignore[attr-defined]
        if not isinstance(video, str):
            raise SpmlError(f"{where}: data.{opts.video_key} (the video) is missing")  # type: ignore[attr-defined]
        name = UPLOAD_PREFIX.sub("", media_stem(video) or "")
        sources = []
        if opts.read in ("auto", "annotations"):  # type: ignore[attr-defined]
            sources = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not sources and opts.read in ("auto", "predictions"):  # type: ignore[attr-defined]
            sources = list(task.get("predictions") or [])
        if len(sources) > 1:
            raise SpmlError(f"{where}: {len(sources)} annotations of one video; keep one (or review them into one)")
        base = opts.frame_base  # type: ignore[attr-defined]
        anns = []
        for j, res in enumerate((sources[0].get("result") or []) if sources else []):
            if res.get("type") != "timelinelabels":
                continue
            value = res.get("value") or {}
            labels = value.get("timelinelabels") or []
            for rng in value.get("ranges") or []:
                try:
                    start, end = int(rng["start"]) - base, int(rng["end"]) - base
                except (KeyError, TypeError, ValueError):
                    raise SpmlError(f"{where}, result {j}: range {rng!r} needs whole 'start' and 'end' frames") from None
                for label in labels:
                    anns.append(annotation(schema, str(label), len(anns), f"{where}, result {j}",
                                           start_frame=start, end_frame=end))
        return VideoAnnotations(file=path, video_name=name or None, annotations=anns)
