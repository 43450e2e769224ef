"""The per-frame built-in feature extractors, by name: what `velocities` may difference."""

from __future__ import annotations

from spml_core.components import FeatureExtractor
from spml_core.features.angles import SegmentAngles
from spml_core.features.distances import PlumbLineDistances
from spml_core.features.joints import RawJoints
from spml_core.features.normalized import NormalizedCoordinates

BASE_EXTRACTORS: dict[str, type[FeatureExtractor]] = {
    cls.name: cls for cls in (RawJoints, NormalizedCoordinates, SegmentAngles, PlumbLineDistances)
}
