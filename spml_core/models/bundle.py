"""Model bundles: a folder (or a zip of it) holding manifest.json and the model's weights in its
library's own safe format. Nothing in a bundle is ever unpickled.

Layout::

    BUNDLE/
      manifest.json          schema_version, model component + version, classes, target,
                             the feature-pipeline spec (window, column order), data hash, metrics
      model/                 files written by the component's save(): XGBoost UBJ/JSON, safetensors
      metrics.json, *.png    evaluation results (not needed to load)

``load_bundle(path)`` validates the manifest, refuses unknown schema versions, pickle-like
files, symlinks and unsafe archive members, and returns a :class:`Predictor` that computes
the same features as training from raw keypoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spml_core.errors import SpmlError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
MANIFEST = "manifest.json"
MODEL_DIR = "model"
BUNDLE_FORMAT = "spml-model-bundle"

# Files a bundle must never contain: formats that execute code when loaded (pickle and its wrappers).
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pck", ".pcl", ".joblib", ".pt", ".pth", ".ckpt", ".dill",
                             ".sav", ".npy", ".npz"})
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 10_000


class BundleError(SpmlError):
    """A model bundle is invalid or unsafe; the message names the file and the reason."""


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
    columns: list[str] = Field(description="Feature column order the model was trained on")
    window: int | None = Field(None, ge=1, description="Frames per example")
    frame_features: int | None = Field(None, ge=1, description="Features per frame (sequence models)")
    frame_size: tuple[int, int] | None = Field(
        None, description="Width and height of the training videos: the default for predict_window"
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


class Manifest(_Strict):
    """manifest.json of a model bundle."""

    format: Literal["spml-model-bundle"] = BUNDLE_FORMAT
    schema_version: int
    created_at: str
    spml_version: str
    target: str
    classes: list[str] = Field(min_length=2)
    model: ModelInfo
    features: Features
    training_data: TrainingData | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""


# -- safety ---------------------------------------------------------------------------------
def _looks_like_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80) and a protocol number; torch.save zips hold data.pkl.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_safetensors(path: Path, head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that many bytes of JSON object.

    Its length prefix can begin with the bytes of a pickle protocol marker, so it is recognised first.
    """
    if len(head) < 8:
        return False
    n = int.from_bytes(head[:8], "little")
    size = path.stat().st_size
    if not 2 <= n <= min(size - 8, 100 << 20):
        return False
    with open(path, "rb") as fh:
        fh.seek(8)
        header = fh.read(n)
    try:
        return header[:1] == b"{" and isinstance(json.loads(header), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _zip_holds_pickle(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if Path(name).suffix.lower() in PICKLE_SUFFIXES:
                    return name
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def check_no_pickles(root: Path) -> None:
    """Refuse symlinks and any pickle-like file under ``root`` (by suffix, magic bytes, or inside a zip)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            rel = p.relative_to(root)
            if p.is_symlink():
                raise BundleError(f"{root}: bundle contains a symbolic link ({rel}); refusing to load it")
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root)
            if p.suffix.lower() in PICKLE_SUFFIXES:
                raise BundleError(
                    f"{root}: bundle contains {rel}, a pickle-type file; spml never loads pickles "
                    "(they can run arbitrary code). Re-train with `spml train` to get a safe bundle"
                )
            with open(p, "rb") as fh:
                head = fh.read(8)
            if _looks_like_pickle(head) and not _is_safetensors(p, head):
                raise BundleError(f"{root}: {rel} is a pickle (by its content); spml never loads pickles")
            if head[:2] == b"PK" and (inner := _zip_holds_pickle(p)):
                raise BundleError(f"{root}: {rel} is an archive holding a pickle ({inner}); refusing to load it")


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if "\x00" in name:
        return "a NUL byte in its name"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "a '..' path component (path traversal)"
    return None


def safe_extract_zip(
    path: str | os.PathLike[str], dest: str | os.PathLike[str],
    max_bytes: int = MAX_ARCHIVE_BYTES, max_members: int = MAX_ARCHIVE_MEMBERS,
) -> Path:
    """Extract a zip into ``dest`` after checking every member; refuses traversal, links, bombs.

    Refused: absolute paths, '..' components, symbolic links, NUL bytes, duplicate names, more
    than ``max_members`` members or ``max_bytes`` uncompressed. Nothing is written unless the
    whole archive passes.
    """
    path, dest = Path(path), Path(dest)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path}: not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise BundleError(f"{path}: archive has {len(infos)} members (limit {max_members})")
        seen: set[str] = set()
        total = 0
        for info in infos:
            problem = _member_problem(info)
            if problem:
                raise BundleError(f"{path}: member {info.filename!r} has {problem}; refusing to extract")
            key = info.filename.replace("\\", "/").rstrip("/")
            if key in seen:
                raise BundleError(f"{path}: member {info.filename!r} appears twice; refusing to extract")
            seen.add(key)
            total += info.file_size
            if total > max_bytes:
                raise BundleError(f"{path}: archive expands to more than {max_bytes} bytes; refusing to extract")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in infos:
            target = (root / info.filename.replace("\\", "/")).resolve()
            if not target.is_relative_to(root):
                raise BundleError(f"{path}: member {info.filename!r} would land outside the target folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:  # the header lied about the size
                        raise BundleError(f"{path}: member {info.filename!r} is larger than declared")
                    out.write(chunk)
    return dest


def zip_bundle(bundle_dir: str | os.PathLike[str], zip_path: str | os.PathLike[str] | None = None) -> Path:
    """Zip a bundle folder (files at the archive root), atomically; returns the zip path."""
    from spml_core.util.atomic import atomic_path

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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object")
    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise BundleError(
            f"{path}: unsupported schema_version {version!r}; this spml reads "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (upgrade spml, or re-train the model)"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        from spml_core.errors import format_validation_error

        raise BundleError(format_validation_error(exc, str(path))) from None


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


def load_bundle(path: str | os.PathLike[str], registry: Any = None) -> Predictor:
    """Load a bundle folder or zip into a Predictor (validated manifest, safe weights, same features)."""
    from spml_core.registry import Registry

    with opened_bundle(path) as root:
        manifest = read_manifest(root)
        registry = registry or Registry().load()
        try:
            cls = registry.get("model", manifest.model.component)
        except SpmlError as exc:
            raise BundleError(f"{path}: the bundle needs model component {manifest.model.component!r} "
                              f"from {manifest.model.distribution}; {exc}") from None
        model_dir = root / MODEL_DIR
        for name in manifest.model.files:
            if not (model_dir / name).is_file():
                raise BundleError(f"{path}: manifest lists model/{name}, which is missing")
        from spml_core.registry import validate_options

        options = validate_options(cls, manifest.model.options, f"{path}: manifest.model.options").model_dump()
        model = cls.load(model_dir, options, list(manifest.classes))  # type: ignore[attr-defined]
    if list(model.classes_) != list(manifest.classes):
        raise BundleError(f"{path}: model classes {model.classes_} differ from the manifest's {manifest.classes}")
    return Predictor(manifest, model, source=Path(path))


# -- writing --------------------------------------------------------------------------------
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


def add_files(bundle_dir: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Add (or replace) evaluation outputs inside a bundle folder, each atomically."""
    from spml_core.util.atomic import write_bytes_atomic

    for name, data in files.items():
        write_bytes_atomic(Path(bundle_dir) / name, data)


# -- prediction -----------------------------------------------------------------------------
class Predictor:
    """A loaded model plus the exact feature pipeline it was trained with.

    ``predict_window`` takes raw keypoints (frames, 33, 4) and returns the label and class
    probabilities; ``new_stream`` gives a per-stream live predictor fed one frame at a time.
    """

    def __init__(self, manifest: Manifest, model: Any, source: Path | None = None) -> None:
        self.manifest = manifest
        self.model = model
        self.source = source
        self.classes: list[str] = list(manifest.classes)
        self.target = manifest.target
        self.spec = _load_spec(manifest.features) if manifest.features.kind == "pipeline" else None
        if self.spec is not None:
            try:
                # Instantiates the extractors and checks they still produce the spec's columns.
                self.spec._extractors()
            except SpmlError as exc:
                raise BundleError(f"{source}: {exc}") from None
        # A model trained on some of the spec's columns (e.g. a seed CSV with a column whitelist)
        # gets exactly those, in its order, from the full row the spec computes.
        self._select: np.ndarray | None = None
        if self.spec is not None and manifest.features.columns != list(self.spec.columns):
            where = {c: i for i, c in enumerate(self.spec.columns)}
            missing = [c for c in manifest.features.columns if c not in where]
            if missing or manifest.model.input_rank != 2:
                raise BundleError(f"{source}: manifest features.columns do not match its feature spec "
                                  f"(e.g. {missing[:3]})")
            self._select = np.asarray([where[c] for c in manifest.features.columns], dtype=np.int64)

    @property
    def window(self) -> int | None:
        """Frames per example (the live buffer length)."""
        return self.manifest.features.window

    def _require_spec(self) -> Any:
        if self.spec is None:
            raise SpmlError(
                f"{self.source}: this bundle was trained on preformatted columns (e.g. a StreamPoseML CSV), "
                "so it cannot compute features from raw keypoints; train with `spml train` for live use, "
                "or call predict_rows() with rows in the same column order"
            )
        return self.spec

    def _shape(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        if self.manifest.model.input_rank == 3:
            f = self.manifest.features
            per_frame = f.frame_features or rows.shape[1] // (f.window or 1)
            rows = rows.reshape(rows.shape[0], -1, per_frame)
        return rows

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) for already-computed feature rows in the manifest's column order."""
        return self.model.predict_proba(self._shape(rows))

    def _result(self, proba: np.ndarray) -> dict[str, Any]:
        i = int(np.argmax(proba))
        return {"label": self.classes[i], "probabilities": {c: float(p) for c, p in zip(self.classes, proba)}}

    def predict_window(self, xyzv: np.ndarray, width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """Classify one window of raw keypoints (frames, 33, 4): {"label", "probabilities"}."""
        spec = self._require_spec()
        xyzv = np.asarray(xyzv, dtype=np.float32)
        if xyzv.ndim != 3 or xyzv.shape[1:] != (33, 4):
            raise SpmlError(f"predict_window expects keypoints shaped (frames, 33, 4), got {xyzv.shape}")
        w, h = _frame_size(self.manifest, width, height)
        row = spec.transform_window(xyzv, w, h)
        return self._result(self.predict_rows(self.select(row))[0])

    def select(self, row: np.ndarray) -> np.ndarray:
        """The model's columns of a full feature-spec row (identity unless trained on a subset)."""
        return row if self._select is None else row[..., self._select]

    def new_stream(self, width: int | None = None, height: int | None = None) -> StreamPredictor:
        """A live predictor for one stream (one browser tab, one camera): push frames, get predictions."""
        return StreamPredictor(self, *_frame_size(self.manifest, width, height))

    def info(self) -> dict[str, Any]:
        """Summary for UIs and logs: target, classes, model, window, metrics."""
        m = self.manifest
        return {"target": m.target, "classes": m.classes, "model": m.model.component,
                "window": m.features.window, "created_at": m.created_at, "metrics": m.metrics,
                "live": self.spec is not None}


class StreamPredictor:
    """Per-stream state: a LiveFeatureBuffer of the bundle's spec; push() returns a prediction once full."""

    def __init__(self, predictor: Predictor, width: int, height: int) -> None:
        from spml_core.features.live import LiveFeatureBuffer

        self.predictor = predictor
        self.buffer = LiveFeatureBuffer(predictor._require_spec(), width, height)

    def push(self, frame: np.ndarray) -> dict[str, Any] | None:
        """Add one frame (33, 4) of raw keypoints (NaN when no person); None until the window is full."""
        row = self.buffer.push(np.asarray(frame, dtype=np.float32))
        if row is None:
            return None
        return self.predictor._result(self.predictor.predict_rows(self.predictor.select(row))[0])

    def reset(self) -> None:
        """Forget buffered frames (e.g. after a pause in the stream)."""
        self.buffer.reset()


def _frame_size(manifest: Manifest, width: int | None, height: int | None) -> tuple[int, int]:
    if width and height:
        return int(width), int(height)
    if manifest.features.frame_size:
        return manifest.features.frame_size
    raise SpmlError("width and height of the video frames are needed (keypoints are normalised to them)")


def _load_spec(features: Features) -> Any:
    from spml_core.features.spec import FeaturePipelineSpec

    try:
        return FeaturePipelineSpec.model_validate(features.spec or {})
    except ValidationError as exc:
        from spml_core.errors import format_validation_error

        raise BundleError(format_validation_error(exc, "manifest.json: features.spec")) from None
