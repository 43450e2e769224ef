"""spml: real-time video pose classification, built from plugins.

This namespace is the public API for users and plugin authors (docs/plugin-authoring.md); the
subpackages are spml's own layout and may change. The top-level import is cheap: heavy modules
(pandas, pyarrow, the plugins' ML libraries) load on first use of the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.2.0"

hookimpl = pluggy.HookimplMarker("spml")

if TYPE_CHECKING:  # names resolved lazily by __getattr__ below
    from spml_core.components import (  # noqa: F401
        Actuator,
        ActuatorStatus,
        AnnotationParser,
        CliCommand,
        Component,
        ComponentRef,
        Executor,
        FeatureExtractor,
        ImportedKeypoints,
        KeypointImporter,
        Model,
        Options,
        PoseEstimator,
        Segmenter,
    )
    from spml_core.config import AnnotationSchema, Config, load_config  # noqa: F401
    from spml_core.errors import (  # noqa: F401
        ConfigError,
        PluginError,
        SpmlError,
        UnknownComponentError,
    )
    from spml_core.features.spec import FeaturePipelineSpec  # noqa: F401
    from spml_core.keypoints.sequence import PoseSequence, load_keypoints  # noqa: F401
    from spml_core.models.predictor import Predictor, StreamPredictor, load_bundle  # noqa: F401
    from spml_core.registry import Registry  # noqa: F401

_COMPONENTS = ("Actuator", "ActuatorStatus", "AnnotationParser", "CliCommand", "Component", "ComponentRef", "Executor",
               "FeatureExtractor", "ImportedKeypoints", "KeypointImporter", "Model", "Options", "PoseEstimator",
               "Segmenter")
_LAZY = {
    **{name: "spml_core.components" for name in _COMPONENTS},
    **{name: "spml_core.errors" for name in ("SpmlError", "ConfigError", "PluginError", "UnknownComponentError")},
    "AnnotationSchema": "spml_core.config",
    "Config": "spml_core.config",
    "load_config": "spml_core.config",
    "FeaturePipelineSpec": "spml_core.features.spec",
    "PoseSequence": "spml_core.keypoints.sequence",
    "load_keypoints": "spml_core.keypoints.sequence",
    "Registry": "spml_core.registry",
    "load_bundle": "spml_core.models.predictor",
    "Predictor": "spml_core.models.predictor",
    "StreamPredictor": "spml_core.models.predictor",
    # The toolkit plugins build on (docs/plugin-authoring.md): stable names, wherever they live inside.
    **{name: "spml_core.datasets.annotations" for name in ('Annotation', 'VideoAnnotations', 'annotations_from_records', 'resolve_dot_path', 'MISSING')},
    **{name: "spml_core.models.labels" for name in ('encode_labels', 'balanced_weights', 'require_two_classes')},
    **{name: "spml_core.models.splits" for name in ('validation_split',)},
    **{name: "spml_core.util.progress" for name in ('progress_bar',)},
    **{name: "spml_core.util.atomic" for name in ('write_text_atomic', 'atomic_path')},
    **{name: "spml_core.keypoints.sequence" for name in ('EstimatorInfo', 'VideoSource', 'file_sha256')},
    **{name: "spml_core.keypoints.skeleton" for name in ('N_LANDMARKS', 'LANDMARK_NAMES', 'POSE_CONNECTIONS')},
    **{name: "spml_core.features.segments" for name in ('ExampleSegmenter', 'POOL_STATS', 'PoolStat', 'RowLayout', 'Segments', 'csr', 'example_labels', 'label_codes', 'run_starts', 'take_labels')},
    **{name: "spml_core.actuation.hub" for name in ('ActuationHub', 'ActuationSession', 'ActuatorConfig')},
    **{name: "spml_core.actuation.decisions" for name in ('DecisionConfig', 'DecisionEngine')},
    **{name: "spml_core.models.bundle" for name in ('MANIFEST',)},
    **{name: "spml_core.models.archive" for name in ('BundleError', 'safe_extract_zip')},
    **{name: "spml_core.models.vet" for name in ('vet_bundle',)},
    **{name: "spml_core.keypoints.smoothing" for name in ('OneEuroFilter', 'SmoothingOptions', 'smooth_sequence')},
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spml_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
