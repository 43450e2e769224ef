"""`velocities`: frame-to-frame differences of other built-in features, within one video."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from spml_core.components import FeatureExtractor
from spml_core.features.base_extractors import BASE_EXTRACTORS
from spml_core.features.geometry import pixel_points
from spml_core.features.visibility import VISIBILITY_KEYS, VisibilityOptions


def _base_classes() -> dict[str, type[FeatureExtractor]]:
    return BASE_EXTRACTORS


class Velocities(FeatureExtractor):
    """``f(t) - f(t-1)`` for the chosen base features, in their units per frame.

    Needs the previous frame (``history = 1``): the offline pipeline runs it per video on
    consecutive frames, so a video's first frame (and any frame next to one without a person)
    gives NaN; the live buffer keeps the previous frame so its values are the same.
    """

    name = "velocities"
    description = "per-frame differences of base features (default: normalized coordinates)"
    history: ClassVar[int] = 1

    class Options(VisibilityOptions):
        of: dict[str, dict[str, Any]] = Field(
            default_factory=lambda: {"normalized": {}},
            description="Base features and their options, e.g. {normalized: {body_size: torso}, angles: {}}",
        )

        @field_validator("of")
        @classmethod
        def _known(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            valid = _base_classes()
            unknown = [k for k in v if k not in valid]
            if unknown:
                raise ValueError(f"unknown base feature(s) {unknown}; valid: {', '.join(valid)}")
            if not v:
                raise ValueError(f"name at least one base feature ({', '.join(valid)})")
            inner = [f"{k}.{key}" for k, opts in v.items() for key in VISIBILITY_KEYS if key in (opts or {})]
            if inner:
                # The pipeline masks the keypoints velocities receives; a base's own policy would be ignored.
                raise ValueError(f"{', '.join(inner)}: set low_visibility options on velocities itself, not in 'of'")
            return v

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        classes = _base_classes()
        self._bases = [classes[name](opts) for name, opts in self.options.of.items()]

    def columns(self) -> list[str]:
        """<base column>_velocity for every column of every base feature."""
        return [f"{c}_velocity" for b in self._bases for c in b.columns()]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(frames, columns) differences to the previous row; row 0 is NaN (no previous frame)."""
        return self.transform_points(pixel_points(xyzv, width, height), xyzv, width, height)

    def transform_points(self, pts: np.ndarray, xyzv: np.ndarray, width: float, height: float) -> np.ndarray:
        """transform() from precomputed pixel points (shared by extractors in one pipeline)."""
        parts = [b.transform_points(pts, xyzv, width, height) for b in self._bases]  # type: ignore[attr-defined]
        base = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        out = np.empty_like(base)
        out[:1] = np.nan
        np.subtract(base[1:], base[:-1], out=out[1:])
        return out
