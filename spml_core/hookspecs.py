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
        CliCommand,
        AnnotationParser,
        Executor,
        FeatureExtractor,
        KeypointImporter,
        Model,
        PoseEstimator,
        Segmenter,
    )

hookspec = pluggy.HookspecMarker("spml")

# Every hook below takes no arguments and returns a list of classes (not instances), so that listing
# plugins (`spml plugins`, `spml --help`) never runs a constructor or imports a heavy library.


@hookspec
def spml_pose_estimators() -> list[type[PoseEstimator]]:
    """Return the pose estimator classes this plugin provides (kind ``pose_estimator``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.PoseEstimator`, each with a unique ``name``
    (what config.yml writes under ``pipeline.extract.estimator.use`` and ``spml extract --estimator``).
    Instantiated: once per video by ``spml extract`` / ``spml run`` (in each worker process, with the
    validated ``Options``), and once per stream by the web app for server-side pose; ``close()`` is
    called when the video or stream ends.
    """


@hookspec
def spml_annotation_parsers() -> list[type[AnnotationParser]]:
    """Return the annotation parser classes this plugin provides (kind ``annotation_parser``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.AnnotationParser` with a unique ``name``
    (``pipeline.dataset.parser.use``).
    Instantiated: once per dataset build (``spml dataset`` / ``spml run``), then ``parse`` is called once
    per annotation file with the config's annotation schema.
    """


@hookspec
def spml_feature_extractors() -> list[type[FeatureExtractor]]:
    """Return the feature extractor classes this plugin provides (kind ``feature_extractor``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.FeatureExtractor` with a unique ``name``
    (listed under ``features:`` in config.yml and recorded in every bundle's feature spec).
    Instantiated: when a feature spec is resolved: once per dataset build or training run, and once
    per loaded bundle for live and batch prediction (the same instance serves every stream).
    """


@hookspec
def spml_segmenters() -> list[type[Segmenter]]:
    """Return the segmentation strategy classes this plugin provides (kind ``segmenter``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.Segmenter` (and, to be used by the feature
    pipeline, of ``spml_core.ExampleSegmenter``) with a unique ``name`` (``segmentation.use``).
    Instantiated: once per feature spec resolution (dataset build, training, bundle load).
    """


@hookspec
def spml_models() -> list[type[Model]]:
    """Return the model classes this plugin provides (kind ``model``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.Model` with a unique ``name``
    (``pipeline.train.model.use``, ``spml train --model``; recorded in the bundle's manifest).
    Instantiated: once per cross-validation fold and once for the final fit by ``spml train``; once per
    ``load_bundle`` (then ``load(folder)`` reads its files) for evaluation and prediction.
    """


@hookspec
def spml_actuators() -> list[type[Actuator]]:
    """Return the actuator classes this plugin provides (kind ``actuator``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.Actuator` with a unique ``name``
    (``actuators[].use`` in config.yml).
    Instantiated: once per configured actuator when `spml serve --config` starts (the ActuationHub),
    driven from its own runner thread; ``close()`` is called at shutdown, after a final off.
    """


@hookspec
def spml_executors() -> list[type[Executor]]:
    """Return the batch executor classes this plugin provides (kind ``executor``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.Executor` with a unique ``name``
    (``--executor``, ``pipeline.<stage>.executor.use``).
    Instantiated: once per batch stage (``spml extract``, ``spml dataset``), used as a context manager.
    """


@hookspec
def spml_keypoint_importers() -> list[type[KeypointImporter]]:
    """Return the keypoint importer classes this plugin provides (kind ``keypoint_importer``).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.KeypointImporter` with a unique ``name``
    (``spml import FORMAT``).
    Instantiated: once per ``spml import`` run, with the validated ``Options``.
    """


@hookspec
def spml_cli_commands() -> list[type[CliCommand]]:
    """Return the `spml` subcommands this plugin adds (llm's ``register_commands``, for argparse).

    Arguments: none.
    Returns: subclasses of :class:`spml_core.components.CliCommand` with a unique ``name`` that is
    not one of spml's own commands (those win; a clash is reported by `spml plugins`).
    Instantiated: once each time `spml` builds its parser (every invocation, including ``--help``):
    keep the module and the constructor cheap and import heavy libraries inside ``run``.
    """


HOOK_FOR_KIND: dict[str, str] = {
    "pose_estimator": "spml_pose_estimators",
    "annotation_parser": "spml_annotation_parsers",
    "feature_extractor": "spml_feature_extractors",
    "segmenter": "spml_segmenters",
    "model": "spml_models",
    "actuator": "spml_actuators",
    "executor": "spml_executors",
    "keypoint_importer": "spml_keypoint_importers",
}
