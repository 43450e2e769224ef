"""Default plugins shipped with spml_core (numpy-only): executors, feature extractors, logistic regression."""

from __future__ import annotations

from spml_core import hookimpl
from spml_core.builtin.executors import LocalExecutor
from spml_core.builtin.importers import StreamPoseMLImporter
from spml_core.builtin.linear import LogisticRegressionModel
from spml_core.features.catalog import BUILTIN_EXTRACTORS


@hookimpl
def spml_executors() -> list[type]:
    """The process-pool executor."""

    return [LocalExecutor]


@hookimpl
def spml_feature_extractors() -> list[type]:
    """joints, normalized, angles, distances and velocities (numpy only)."""

    return list(BUILTIN_EXTRACTORS)


@hookimpl
def spml_models() -> list[type]:
    """logistic_regression (numpy; weights saved as JSON)."""

    return [LogisticRegressionModel]


@hookimpl
def spml_keypoint_importers() -> list[type]:
    """streamposeml (StreamPoseML sequence JSON)."""

    return [StreamPoseMLImporter]
