"""Where the pose landmarker ``.task`` bundles are found; nothing is ever downloaded at run time.

Lookup order for ``model``:
1. a path to a ``.task`` file (a user's own bundle, e.g. Google's official one);
2. ``pose_landmarker_<model>.task`` in the folder named by ``$SPML_MEDIAPIPE_MODELS``;
3. ``pose_landmarker_<model>.task`` in this package's ``models/`` folder (built by ``make setup``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from spml_core.errors import SpmlError

MODEL_NAMES: tuple[str, ...] = ("lite", "full", "heavy")
ENV_VAR = "SPML_MEDIAPIPE_MODELS"
PACKAGE_MODELS_DIR = Path(__file__).resolve().parent / "models"


def bundle_name(model: str) -> str:
    """File name of a named model's bundle, e.g. pose_landmarker_full.task."""
    return f"pose_landmarker_{model}.task"


def is_model_path(model: str) -> bool:
    """True when ``model`` names a file rather than one of lite/full/heavy."""
    return model.endswith(".task") or os.sep in model or "/" in model


def check_model_name(model: str) -> str:
    """Validate the form of ``model`` (a known name or an existing .task file); return it unchanged."""
    if is_model_path(model):
        path = Path(os.path.expanduser(model))
        if path.suffix != ".task":
            raise ValueError(f"model file {model!r} must be a MediaPipe .task bundle")
        if not path.is_file():
            raise ValueError(f"model file {model!r} does not exist")
        return model
    if model not in MODEL_NAMES:
        raise ValueError(
            f"unknown model {model!r}; valid models: {', '.join(MODEL_NAMES)}, or a path to a .task file"
        )
    return model


def search_dirs() -> list[Path]:
    """Folders searched for named bundles, in order."""
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(os.path.expanduser(env)))
    dirs.append(PACKAGE_MODELS_DIR)
    return dirs


def resolve_model(model: str) -> Path:
    """The .task file for ``model``, or an SpmlError saying how to build or supply one."""
    check = _checked(model)
    if is_model_path(check):
        return Path(os.path.expanduser(check)).resolve()
    name = bundle_name(check)
    dirs = search_dirs()
    for folder in dirs:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(d / name) for d in dirs)
    raise SpmlError(
        f"MediaPipe model bundle {name} not found (looked in {looked}). Build the bundles with "
        f"`make setup` or `python -m spml_pose_mediapipe.model_bundle --out {PACKAGE_MODELS_DIR}` "
        f"(or --out DIR and set {ENV_VAR}=DIR), or pass your own .task file as the model option."
    )


def model_digest(path: Path) -> str:
    """Short SHA-256 of a bundle, recorded in keypoint files so outputs name the exact model."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:12]


def _checked(model: str) -> str:
    try:
        return check_model_name(model)
    except ValueError as exc:
        raise SpmlError(str(exc)) from None
