"""The model bundles a server offers: listed from a folder, loaded once, uploaded safely.

Loaded :class:`~spml_core.models.predictor.Predictor` objects are shared by sessions (they hold only the
fitted model and the feature spec); each session gets its own stream state from
``Predictor.new_stream()``. Uploads are size-limited, extracted with ``safe_extract_zip`` into a
temporary folder beside the models folder, validated with ``load_bundle`` (which refuses pickles,
links and unknown schema versions), and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

from spml_core import MANIFEST, BundleError, Predictor, load_bundle, safe_extract_zip, vet_bundle
from spml_core.errors import SpmlError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# An extracted upload may expand to at most this multiple of the zip's size (and never past 1 GiB).
EXPANSION_LIMIT = 20


class CatalogError(SpmlError):
    """A bundle request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def bundle_name(path: Path) -> str:
    """The name clients use for a bundle: its folder name or zip stem."""
    return path.stem if path.suffix.lower() == ".zip" else path.name


class ModelCatalog:
    """Bundles in ``models_dir`` (sub-folders or .zip files with a manifest) plus an optional default."""

    def __init__(self, models_dir: Path | None, default: Path | None = None, registry: Any = None,
                 check_timeout_s: float = 60.0, check_memory_bytes: int = 4 << 30) -> None:
        self.models_dir = Path(models_dir).resolve() if models_dir else None
        self.default_path = Path(default).resolve() if default else None
        self.registry = registry
        self.check_timeout_s = check_timeout_s
        self.check_memory_bytes = check_memory_bytes
        # One upload check at a time: each is a child process with up to check_memory_bytes.
        self._checking = threading.Semaphore(1)
        # How slow calls run: off the hub in gevent mode (set by create_app; concurrency.py).
        self.run_blocking: Callable[..., Any] = lambda fn, *args: fn(*args)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Predictor]] = {}
        self._broken: dict[str, tuple[float, str]] = {}
        self._remove_stale_uploads()

    def _remove_stale_uploads(self, older_than_s: float = 600.0) -> None:
        """Staging folders a killed server left behind (a live upload's folder is younger than any check)."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return
        now = time.time()
        for p in self.models_dir.glob(".upload-*"):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink() and now - p.stat().st_mtime > older_than_s:
                    shutil.rmtree(p, ignore_errors=True)

    def _vet(self, root: Path) -> None:
        with self._checking:  # one child process at a time
            vet_bundle(root, self.check_timeout_s, self.check_memory_bytes)

    # -- listing ---------------------------------------------------------------------------
    def _paths(self) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        if self.models_dir and self.models_dir.is_dir():
            for p in sorted(self.models_dir.iterdir()):
                if p.name.startswith(".") or p.is_symlink():
                    continue
                if (p.is_dir() and (p / MANIFEST).is_file()) or (p.is_file() and p.suffix.lower() == ".zip"):
                    paths.setdefault(bundle_name(p), p)
        if self.default_path is not None:
            paths[bundle_name(self.default_path)] = self.default_path
        return paths

    @property
    def default_name(self) -> str | None:
        """Name of the bundle new sessions start with, if any."""
        return bundle_name(self.default_path) if self.default_path else None

    def path(self, name: str) -> Path | None:
        """The folder or .zip a bundle name stands for (None when unknown)."""
        return self._paths().get(name)

    def names(self) -> list[str]:
        """Names of the bundles offered."""
        return list(self._paths())

    def describe(self) -> list[dict[str, Any]]:
        """One entry per loadable live bundle: name, classes, window, model, target; broken ones are skipped."""
        out = []
        for name in self._paths():
            try:
                info = self.get(name).info()
            except CatalogError:
                continue
            if info["live"]:
                out.append(self.details(name, info))
        return out

    def details(self, name: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the page's model list shows of a bundle: type, target, classes, date, score and provenance."""
        predictor = self.get(name)
        info = info or predictor.info()
        m = predictor.manifest
        metrics = info.get("metrics") or {}
        training = m.training_data
        # Frame rate and pose model are facts of the training keypoints (features.timing, features.pose; older
        # bundles may carry them in model.training); bundles without them say "not recorded" rather than guess.
        facts = m.model.training or {}
        pose = m.features.pose or {}
        timing = m.features.timing
        warnings = metrics.get("warnings") or []
        return {
            "name": name,
            **{k: info[k] for k in ("classes", "window", "model", "target", "created_at")},
            "score": metrics.get("balanced_accuracy"),
            "score_name": "balanced accuracy" if "balanced_accuracy" in metrics else None,
            "evaluation": metrics.get("evaluation"),
            "split": metrics.get("split"),
            # Quality warnings of training ({code, message}; older bundles stored plain sentences).
            "warnings": [f"{w.get('message')} [{w.get('code')}]" if isinstance(w, dict) else str(w) for w in warnings]
            if isinstance(warnings, list) else [str(warnings)],
            "baseline": metrics.get("baseline"),
            "examples": training.examples if training else None,
            "frame_size": list(m.features.frame_size) if m.features.frame_size else None,
            "fps": timing.fps if timing is not None and timing.source == "dataset" else facts.get("fps"),
            # features.pose (spml train copies it from the dataset) names the estimator and model the bundle
            # was trained with: the page switches its in-browser pose model to it, or warns (docs/live.md).
            "pose_model": pose.get("model") or facts.get("pose_model"),
            "pose_estimator": pose.get("name"),
            "pose_smoothing": (pose.get("smoothing") or {}).get("enabled") if pose else None,
        }

    # -- loading ---------------------------------------------------------------------------
    def get(self, name: str) -> Predictor:
        """The loaded predictor for a bundle name (loaded once, reloaded when the bundle changes)."""
        path = self._paths().get(name)
        if path is None:
            available = ", ".join(self.names()) or "none (start spml serve with --models-dir or --model)"
            raise CatalogError(f"unknown model {name!r}; available: {available}", status=404)
        mtime = _mtime(path)
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[0] == mtime:
                return cached[1]
            broken = self._broken.get(name)
            if broken and broken[0] == mtime:  # don't re-read a bad bundle on every listing
                raise CatalogError(broken[1], status=422)
            try:
                predictor = load_bundle(path, registry=self.registry)
                if predictor.spec is None:
                    raise SpmlError("it was trained on preformatted columns and cannot classify live keypoints")
            except SpmlError as exc:
                message = f"model {name!r} cannot be loaded: {exc}"
                self._broken[name] = (mtime, message)
                raise CatalogError(message, status=422) from None
            self._cache[name] = (mtime, predictor)
            return predictor

    # -- uploads ---------------------------------------------------------------------------
    def add_upload(self, stream: IO[bytes], filename: str, name: str | None, max_bytes: int) -> dict[str, Any]:
        """Store an uploaded bundle zip under ``name`` (default: the file's stem) after validating it."""
        if self.models_dir is None:
            raise CatalogError("uploads are disabled: start spml serve with --models-dir DIR", status=403)
        name = name or Path(filename or "").stem
        if not NAME_RE.match(name or ""):
            raise CatalogError(
                f"bundle name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        self.models_dir.mkdir(parents=True, exist_ok=True)
        target = self.models_dir / name
        if name in self._paths() or target.exists():
            raise CatalogError(f"a model named {name!r} already exists; upload under another name", status=409)
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.models_dir))
        try:
            zip_path = staging / "upload.zip"
            size = _copy_limited(stream, zip_path, max_bytes)
            extracted = staging / "bundle"
            try:
                safe_extract_zip(zip_path, extracted, max_bytes=min(1 << 30, max(size, 1) * EXPANSION_LIMIT))
            except BundleError as exc:
                raise CatalogError(f"upload {filename!r} refused: {_strip_path(exc, zip_path)}") from None
            root = _bundle_root(extracted)
            if root is None:
                raise CatalogError(f"upload {filename!r} refused: the zip holds no {MANIFEST} (not an spml model bundle)")
            try:
                # Untrusted weights are loaded and run in a child process first: a crash or a memory
                # blow-up there is a refusal, never this server's death.
                self.run_blocking(self._vet, root)
                predictor = load_bundle(root, registry=self.registry)
            except SpmlError as exc:
                raise CatalogError(f"upload {filename!r} refused: {_strip_path(exc, root)}") from None
            if predictor.spec is None:
                raise CatalogError(
                    f"upload {filename!r} refused: the bundle was trained on preformatted columns and "
                    "cannot classify live keypoints"
                )
            root.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.details(name)


def _mtime(path: Path) -> float:
    try:
        return (path / MANIFEST).stat().st_mtime if path.is_dir() else path.stat().st_mtime
    except OSError:
        return -1.0


def _copy_limited(stream: IO[bytes], dest: Path, max_bytes: int) -> int:
    total = 0
    with open(dest, "wb") as out:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
            if total > max_bytes:
                raise CatalogError(f"upload is larger than the {max_bytes}-byte limit", status=413)
            out.write(chunk)
    if total == 0:
        raise CatalogError("upload is empty")
    return total


def _bundle_root(extracted: Path) -> Path | None:
    if (extracted / MANIFEST).is_file():
        return extracted
    entries = list(extracted.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MANIFEST).is_file():
        return entries[0]
    return None


def _strip_path(exc: Exception, path: Path) -> str:
    # Server-side temp paths mean nothing to the uploader; name the archive member instead.
    return str(exc).replace(f"{path}: ", "").replace(str(path), "<upload>")
