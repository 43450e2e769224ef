"""spml-annotations-interchange: annotation parsers for ELAN, CVAT for video, BORIS and Label Studio files."""

from __future__ import annotations

__version__ = "0.1.0"
