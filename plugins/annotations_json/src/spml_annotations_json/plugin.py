"""Hook implementations: only cheap imports here; the parser module is imported on demand."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_annotation_parsers() -> list[type]:
    """Register the JSON annotation parser (``use: json``)."""
    from spml_annotations_json.parser import JsonAnnotationParser

    return [JsonAnnotationParser]
