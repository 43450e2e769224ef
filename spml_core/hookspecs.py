"""Hook specifications for spml plugins.

A plugin is a module registered under the ``spml`` entry-point group whose functions are
decorated with :data:`spml_core.hookimpl`. Registration hooks return a list of component
classes; the registry keys each class by its ``name``, which is what config.yml writes under
``use:``. Return classes, not instances, so listing plugins never runs heavy constructors, and
keep imports of heavy libraries inside the component's methods.
Hook implementations must not give their parameters default values: pluggy would not pass them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from spml_core.components import (
        Actuator,
        AnnotationParser,
        Executor,
        FeatureExtractor,
        Model,
        PoseEstimator,
        Segmenter,
    )

hookspec = pluggy.HookspecMarker("spml")


@hookspec
def spml_pose_estimators() -> list[type[PoseEstimator]]:
    """Return the pose estimator classes this plugin provides (kind ``pose_estimator``)."""


@hookspec
def spml_annotation_parsers() -> list[type[AnnotationParser]]:
    """Return the annotation parser classes this plugin provides (kind ``annotation_parser``)."""


@hookspec
def spml_feature_extractors() -> list[type[FeatureExtractor]]:
    """Return the feature extractor classes this plugin provides (kind ``feature_extractor``)."""


@hookspec
def spml_segmenters() -> list[type[Segmenter]]:
    """Return the segmentation strategy classes this plugin provides (kind ``segmenter``)."""


@hookspec
def spml_models() -> list[type[Model]]:
    """Return the model classes this plugin provides (kind ``model``)."""


@hookspec
def spml_actuators() -> list[type[Actuator]]:
    """Return the actuator classes this plugin provides (kind ``actuator``)."""


@hookspec
def spml_executors() -> list[type[Executor]]:
    """Return the batch executor classes this plugin provides (kind ``executor``)."""


HOOK_FOR_KIND: dict[str, str] = {
    "pose_estimator": "spml_pose_estimators",
    "annotation_parser": "spml_annotation_parsers",
    "feature_extractor": "spml_feature_extractors",
    "segmenter": "spml_segmenters",
    "model": "spml_models",
    "actuator": "spml_actuators",
    "executor": "spml_executors",
}
