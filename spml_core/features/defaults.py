"""Default feature extractors and rounding, importable without numpy (the CLI parser's help text uses them)."""

from __future__ import annotations

DEFAULT_FEATURES: tuple[str, ...] = ("angles", "distances", "normalized")
DEFAULT_DECIMALS = 4
