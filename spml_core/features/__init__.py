"""Built-in feature extractors (numpy only): normalized coordinates, angles, distances, velocities.

Each is a FeatureExtractor component registered by ``spml_core.builtin``; see docs/features.md for
the exact definitions. ``transform(xyzv, width, height)`` takes (frames, 33, 4) keypoints with x, y
as fractions of the image and returns a (frames, len(columns())) float64 array, NaN where no person.
"""

from __future__ import annotations

from spml_core.components import FeatureExtractor
from spml_core.features.angles import SegmentAngles
from spml_core.features.distances import PlumbLineDistances
from spml_core.features.joints import RawJoints
from spml_core.features.normalized import NormalizedCoordinates
from spml_core.features.velocities import Velocities

# Per-frame features that `velocities` may difference.
BASE_EXTRACTORS: dict[str, type[FeatureExtractor]] = {
    cls.name: cls for cls in (RawJoints, NormalizedCoordinates, SegmentAngles, PlumbLineDistances)
}
BUILTIN_EXTRACTORS: list[type[FeatureExtractor]] = [*BASE_EXTRACTORS.values(), Velocities]

__all__ = [
    "BASE_EXTRACTORS", "BUILTIN_EXTRACTORS", "NormalizedCoordinates", "PlumbLineDistances", "RawJoints",
    "SegmentAngles", "Velocities",
]
