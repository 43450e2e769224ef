"""A feature extractor counting landmarks whose visibility passes a threshold."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from spml_core.components import FeatureExtractor, Options


class VisibleCount(FeatureExtractor):
    """Number of landmarks with visibility >= threshold, per frame (NaN when no person)."""

    name = "visible_count"
    description = "count of visible landmarks per frame"

    class Options(Options):
        threshold: float = Field(0.5, ge=0, le=1, description="Minimum visibility to count a landmark")

    def columns(self) -> list[str]:
        """One column."""
        return ["visible_count"]

    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """Count per frame, vectorised over frames and landmarks."""
        vis = xyzv[..., 3]
        count = (vis >= self.options.threshold).sum(axis=-1).astype(np.float32)
        count[np.isnan(vis).all(axis=-1)] = np.nan
        return count[:, None]
