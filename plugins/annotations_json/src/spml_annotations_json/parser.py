"""JsonAnnotationParser: one JSON annotation file per video, read through config.yml's annotation_schema.

The file is an object holding a list of annotations under ``annotations_key`` (a key or a dot
path) and, optionally, the annotated video's file name under ``name``. Each annotation's label
and range are found with the schema's dot paths, e.g. Dataloop's export::

    {"name": "example_video.webm",
     "annotations": [{"label": "Right Step",
                      "metadata": {"system": {"frame": 7, "endFrame": 49, ...}}}, ...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from spml_core import (
    MISSING,
    VideoAnnotations,
    annotations_from_records,
    resolve_dot_path,
)
from spml_core.components import AnnotationParser
from spml_core.components import Options as BaseOptions
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError


class JsonAnnotationParser(AnnotationParser):
    """Reads a JSON annotation file (one per video) into a VideoAnnotations."""

    name: ClassVar[str] = "json"
    description: ClassVar[str] = "one JSON file per video; label and range found by annotation_schema dot paths"

    class Options(BaseOptions):
        """Options of the JSON annotation parser."""

        name_key: str = Field("name", description="Key holding the annotated video's file name (matched by stem)")
        encoding: str = Field("utf-8", description="Text encoding of the annotation files")

    def parse(self, path: Path, schema: AnnotationSchema) -> VideoAnnotations:
        """Parse one annotation file; errors name the file and the line/column or key path at fault."""
        path = Path(path)
        opts: JsonAnnotationParser.Options = self.options  # type: ignore[assignment]
        try:
            text = path.read_text(encoding=opts.encoding)
        except FileNotFoundError:
            raise SpmlError(f"{path}: annotation file not found") from None
        except UnicodeDecodeError as exc:
            raise SpmlError(f"{path}: not {opts.encoding} text (byte {exc.start}): {exc.reason}") from None
        except OSError as exc:
            raise SpmlError(f"{path}: cannot read annotation file ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpmlError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise SpmlError(
                f"{path}: expected a JSON object holding '{schema.annotations_key}', got {type(data).__name__}"
            )
        key = schema.annotations_key
        records: Any = data[key] if key in data else resolve_dot_path(data, key)
        if records is MISSING:
            raise SpmlError(f"{path}: missing key '{key}' (annotation_schema.annotations_key)")
        if not isinstance(records, list):
            raise SpmlError(
                f"{path}: '{key}' (annotation_schema.annotations_key) must be a list of annotations, "
                f"got {type(records).__name__}"
            )
        name = data.get(opts.name_key)
        # Exports made on Windows may hold backslash paths; only the file's stem matters.
        video_name = Path(name.replace("\\", "/")).stem if isinstance(name, str) and name.strip() else None
        return VideoAnnotations(
            file=path, video_name=video_name, annotations=annotations_from_records(records, schema, path, key)
        )
