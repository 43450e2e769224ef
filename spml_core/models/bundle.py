"""Model bundles: a folder (or zip) of manifest.json + the model's own files; never a pickle (docs/models.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spml_core.errors import format_validation_error
from spml_core.features.timegrid import GateConfig, Timing
from spml_core.models.archive import (
    PICKLE_SUFFIXES,
    BundleError,
    _looks_like_pickle,
    check_no_pickles,
    safe_extract_zip,
)
from spml_core.util.atomic import atomic_path



SUPPORTED_SCHEMA_VERSIONS = (1,)


MANIFEST = "manifest.json"


MODEL_DIR = "model"


BUNDLE_FORMAT = "spml-model-bundle"


# Limits on what a manifest may declare: a bundle can come from anyone (an upload), and a live
# session allocates its window up front (window 1,000,000 cost ~946 MiB per session).
MAX_WINDOW = 3600  # two minutes at 30 fps
MAX_CLASSES = 1000
MAX_COLUMNS = 100_000
MAX_MANIFEST_BYTES = 4 << 20
MAX_MANIFEST_DEPTH = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Strict):
    """Which component made the weights, its version, options and files."""

    component: str = Field(description="Model component name (registry kind 'model'), e.g. xgboost or lstm")
    distribution: str = Field(description="Python distribution that provides the component")
    version: str = Field(description="Version of that distribution when the bundle was written")
    options: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(description="Files under model/ written by the component")
    input_rank: Literal[2, 3] = 2
    training: dict[str, Any] = Field(default_factory=dict, description="Facts about the final fit")

    @field_validator("files")
    @classmethod
    def _plain_names(cls, v: list[str]) -> list[str]:
        for name in v:
            p = PurePosixPath(name)
            if p.is_absolute() or ".." in p.parts or "\\" in name or not name:
                raise ValueError(f"model file {name!r} must be a plain relative name")
        return v


class Features(_Strict):
    """How rows are computed: a feature-pipeline spec (raw keypoints in) or preformatted columns."""

    kind: Literal["pipeline", "preformatted"]
    spec: dict[str, Any] | None = Field(None, description="FeaturePipelineSpec (kind 'pipeline')")
    columns: list[str] = Field(max_length=MAX_COLUMNS, description="Feature column order the model was trained on")
    window: int | None = Field(None, ge=1, le=MAX_WINDOW, description="Frames per example")
    frame_features: int | None = Field(
        None, ge=1, le=MAX_COLUMNS, description="Features per frame (sequence models)"
    )
    frame_size: tuple[int, int] | None = Field(
        None, description="Width and height of the training videos: the default for predict_window"
    )
    timing: Timing | None = Field(
        None, description="Frame rate and window duration of the training data (absent in bundles before 0.3: "
        "then 30 fps is assumed, docs/live.md)"
    )
    gate: GateConfig | None = Field(None, description="Presence and visibility gate of training and live use")
    pose: dict[str, Any] | None = Field(
        None, description="Pose estimator of the training keypoints: name, model, options, smoothing"
    )
    note: str = ""


class TrainingData(_Strict):
    """What the model was trained on (no data is stored, only its fingerprint)."""

    file: str
    sha256: str
    rows: int | None = None
    examples: int | None = None
    groups: int | None = None
    group_column: str | None = None
    class_counts: dict[str, int] = Field(default_factory=dict)


class Calibration(_Strict):
    """How to turn the model's probabilities into calibrated ones, and when to answer "unknown"."""

    method: Literal["temperature"] = "temperature"
    temperature: float = Field(1.0, gt=0, description="softmax(log p / temperature), fitted on out-of-fold predictions")
    reject_below: float = Field(0.0, ge=0, le=1, description="Calibrated top probability below which the answer is unknown")
    keep_correct: float | None = Field(None, description="Share of correct out-of-fold answers the threshold keeps")
    background: str | None = Field(None, description="Class trained on unlabelled frames (--background), if any")
    novelty_threshold: float | None = Field(None, ge=0, description="RMS z-distance to the nearest class mean above "
                                            "which a window is unlike every class (unknown)")
    centers: list[list[float]] | None = Field(None, description="Mean feature row of each class (manifest class order)")
    scale: list[float] | None = Field(None, description="Pooled within-class standard deviation of each feature")


class Augmentation(_Strict):
    """Augmented copies of the training rows (training folds only): what was added, how many."""

    mirror: dict[str, str] | None = Field(None, description="Label map applied to left/right-mirrored copies")
    time_warp: list[float] = Field(default_factory=list, description="Playback-speed factors of resampled copies")
    jitter: float = Field(0.0, ge=0, description="Gaussian noise on keypoints, as a share of the frame size")
    rows_added: int = 0


class Manifest(_Strict):
    """manifest.json of a model bundle."""

    format: Literal["spml-model-bundle"] = BUNDLE_FORMAT
    schema_version: int
    created_at: str
    spml_version: str
    target: str
    classes: list[str] = Field(min_length=2, max_length=MAX_CLASSES)
    model: ModelInfo
    features: Features
    training_data: TrainingData | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""
    calibration: Calibration | None = None
    augmentation: Augmentation | None = None


def zip_bundle(bundle_dir: str | os.PathLike[str], zip_path: str | os.PathLike[str] | None = None) -> Path:
    """Zip a bundle folder (files at the archive root), atomically; returns the zip path."""

    bundle_dir = Path(bundle_dir)
    zip_path = Path(zip_path) if zip_path else bundle_dir.with_suffix(".zip")
    check_no_pickles(bundle_dir)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(bundle_dir.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(bundle_dir).as_posix())
    return zip_path


# -- reading --------------------------------------------------------------------------------
def read_manifest(bundle_dir: Path) -> Manifest:
    """Parse and validate manifest.json; unknown schema versions are refused before anything else."""
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: no {MANIFEST} (not an spml model bundle)")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply (a manifest nests at most {MAX_MANIFEST_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object")
    if _depth(data) > MAX_MANIFEST_DEPTH:
        raise BundleError(f"{path}: nested too deeply (a manifest nests at most {MAX_MANIFEST_DEPTH} levels)")
    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise BundleError(
            f"{path}: unsupported schema_version {version!r}; this spml reads "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (upgrade spml, or re-train the model)"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:

        raise BundleError(format_validation_error(exc, str(path))) from None


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a deep value must not exhaust the stack here either)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d > MAX_MANIFEST_DEPTH:
                break
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


@contextlib.contextmanager
def opened_bundle(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a checked bundle folder: the folder itself, or a zip extracted safely to a temp folder."""
    path = Path(path)
    if path.is_symlink():
        raise BundleError(f"{path}: is a symbolic link; pass the bundle itself")
    if path.is_dir():
        check_no_pickles(path)
        yield path
        return
    if not path.exists():
        raise BundleError(f"{path}: model bundle not found")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise BundleError(f"{path}: pickle files are never loaded (they can run arbitrary code); "
                          "use a bundle from `spml train`")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if _looks_like_pickle(head):
        raise BundleError(f"{path}: is a pickle (by its content); spml never loads pickles")
    if not zipfile.is_zipfile(path):
        raise BundleError(f"{path}: not a bundle folder or zip archive")
    with tempfile.TemporaryDirectory(prefix="spml-bundle-") as tmp:
        root = safe_extract_zip(path, Path(tmp) / "bundle")
        check_no_pickles(root)
        if not (root / MANIFEST).exists():
            # A zip of the folder itself (one top-level directory) is fine too.
            entries = [p for p in root.iterdir()]
            if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MANIFEST).exists():
                root = entries[0]
        yield root


def now_iso() -> str:
    """UTC timestamp for manifests."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def component_distribution(registry: Any, name: str) -> tuple[str, str]:
    """(distribution, version) of the installed plugin providing a model component."""
    record = registry.provider("model", name)
    return record.distribution, record.version


def check_bundle_target(out_dir: str | os.PathLike[str]) -> Path:
    """Fail early unless ``out_dir`` is absent, empty, or an existing bundle (which may be replaced)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise BundleError(f"{out}: exists and is not a model bundle; refusing to overwrite it (choose another --out)")
    return out


def write_bundle(
    out_dir: str | os.PathLike[str], manifest: Manifest, model: Any, extra_files: dict[str, bytes] | None = None
) -> Path:
    """Write a bundle folder atomically: build it beside ``out_dir``, then swap it in.

    An existing ``out_dir`` is replaced only when it is itself a bundle (has manifest.json) or
    empty, so a typo cannot wipe an unrelated folder.
    """
    out = check_bundle_target(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = model.save(tmp / MODEL_DIR)
        manifest.model.files = list(files)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        check_no_pickles(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

