"""spml: real-time video pose classification, built from plugins.

The top-level import is cheap: heavy modules (pandas, pyarrow, the plugins' ML libraries)
load on first use of the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("spml")

if TYPE_CHECKING:  # names resolved lazily by __getattr__ below
    from spml_core.keypoints.sequence import PoseSequence, load_keypoints  # noqa: F401
    from spml_core.models.bundle import Predictor, load_bundle  # noqa: F401
    from spml_core.registry import Registry  # noqa: F401

_LAZY = {
    "PoseSequence": "spml_core.keypoints.sequence",
    "load_keypoints": "spml_core.keypoints.sequence",
    "Registry": "spml_core.registry",
    "load_bundle": "spml_core.models.bundle",
    "Predictor": "spml_core.models.bundle",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spml_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
