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
        Component,
        ComponentRef,
        Executor,
        FeatureExtractor,
        Model,
        Options,
        PoseEstimator,
        Segmenter,
    )
    from spml_core.config import AnnotationSchema, Config, load_config  # noqa: F401
    from spml_core.errors import ConfigError, PluginError, SpmlError, UnknownComponentError  # noqa: F401
    from spml_core.features.spec import FeaturePipelineSpec  # noqa: F401
    from spml_core.keypoints.sequence import PoseSequence, load_keypoints  # noqa: F401
    from spml_core.models.predictor import Predictor, StreamPredictor, load_bundle  # noqa: F401
    from spml_core.registry import Registry  # noqa: F401

_COMPONENTS = ("Actuator", "ActuatorStatus", "AnnotationParser", "Component", "ComponentRef", "Executor",
               "FeatureExtractor", "Model", "Options", "PoseEstimator", "Segmenter")
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
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spml_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
