"""Hook implementations: only cheap imports here; each parser module is imported on demand."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_annotation_parsers() -> list[type]:
    """Register the parsers ``elan``, ``cvat_video``, ``boris`` and ``labelstudio_video``."""
    from spml_annotations_interchange.boris import BorisParser
    from spml_annotations_interchange.cvat import CvatVideoParser
    from spml_annotations_interchange.elan import ElanParser
    from spml_annotations_interchange.labelstudio import LabelStudioVideoParser

    return [ElanParser, CvatVideoParser, BorisParser, LabelStudioVideoParser]
