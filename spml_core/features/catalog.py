"""Every built-in feature extractor class, as registered by spml_core.builtin."""

from __future__ import annotations

from spml_core.components import FeatureExtractor
from spml_core.features.base_extractors import BASE_EXTRACTORS
from spml_core.features.velocities import Velocities

BUILTIN_EXTRACTORS: list[type[FeatureExtractor]] = [*BASE_EXTRACTORS.values(), Velocities]
