"""spml-annotations-json: reads one JSON annotation file per video, driven by config.yml's annotation_schema."""

from __future__ import annotations

__version__ = "0.1.0"
