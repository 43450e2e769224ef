"""Offline builder of MediaPipe Tasks-API pose landmarker ``.task`` bundles.

Google's ready-made ``pose_landmarker_*.task`` files live on a CDN that is not
always reachable (air-gapped CI, restricted networks).  The same networks are
exported in the npm package ``@mediapipe/pose`` (Apache-2.0), which any npm
client can fetch:

* ``pose_landmark_{lite,full,heavy}.tflite`` - the landmark networks;
* ``pose_solution_packed_assets.data`` - an Emscripten packed-assets blob whose
  only entry is ``pose_detection.tflite`` (offsets listed in
  ``pose_solution_packed_assets_loader.js``).

The Tasks API cannot take those raw files: ``PoseLandmarker`` wants an
*uncompressed* zip holding ``pose_detector.tflite`` and
``pose_landmarks_detector.tflite``, each carrying TFLite metadata that states
the input normalisation (otherwise it fails with "requires specifying
NormalizationOptions metadata").  This module adds that metadata with
mediapipe's own metadata writer and writes the bundle.

Usage::

    python -m spml_pose_mediapipe.model_bundle --out models/ [--npm-dir DIR]
        [--models lite,full,heavy] [--force]

Importing this module is cheap: mediapipe is imported only when a bundle is
actually built.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import zipfile
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "BUNDLE_MEMBERS",
    "DETECTOR_MEMBER",
    "LANDMARKS_MEMBER",
    "MODEL_NAMES",
    "NPM_POSE_PACKAGE",
    "ModelBundleError",
    "build_all",
    "build_task_bundle",
    "bundle_filename",
    "fetch_npm_pose_package",
    "is_valid_bundle",
    "main",
]

logger = logging.getLogger(__name__)

MODEL_NAMES = ("lite", "full", "heavy")
NPM_POSE_PACKAGE = "@mediapipe/pose@0.5.1675469404"
# Registry integrity of that exact tarball (`npm view ... dist.integrity`).
# npm already checks it on download; we re-check so that a tarball handed over
# from a cache or mirror is pinned to the same bytes too.
NPM_POSE_INTEGRITY = (
    "sha512-"
    "DFZsNWTsSphRIZppnUCuunzBiHP2FdJXR9ehc7mMi4KG+oPaOH0Em3d6kr7Py+TSyTXC1doH88KcF28k2sBxsQ=="
)

# Member names the Tasks-API PoseLandmarkerGraph looks up inside the bundle.
DETECTOR_MEMBER = "pose_detector.tflite"
LANDMARKS_MEMBER = "pose_landmarks_detector.tflite"
BUNDLE_MEMBERS = (DETECTOR_MEMBER, LANDMARKS_MEMBER)

# Files of the npm package that we read.
_LANDMARK_FILES = {name: f"pose_landmark_{name}.tflite" for name in MODEL_NAMES}
_PACKED_ASSETS = "pose_solution_packed_assets.data"
_PACKED_LOADER = "pose_solution_packed_assets_loader.js"
_PACKED_DETECTOR_NAME = "pose_detection.tflite"

# Input normalisation, as in mediapipe's legacy graphs: the detector
# (pose_detection_cpu.pbtxt) takes pixels in [-1, 1], the landmark model
# (pose_landmark_by_roi_cpu.pbtxt) takes pixels in [0, 1].
_DETECTOR_NORM = (127.5, 127.5)  # (mean, std)
_LANDMARKS_NORM = (0.0, 255.0)

# TFLite flatbuffers carry this file identifier at bytes 4..8.
_TFLITE_IDENTIFIER = b"TFL3"
# Name of the model-metadata entry the metadata writer adds; the Tasks API
# reads normalisation from it, so its absence means "raw, unusable" model.
_METADATA_NAME = b"TFLITE_METADATA"

_NPM_TIMEOUT_S = 600


class ModelBundleError(RuntimeError):
    """Raised when a bundle cannot be fetched or built; the message names the file."""


def bundle_filename(model: str) -> str:
    """Return the bundle file name for *model*, e.g. ``pose_landmarker_lite.task``."""
    _check_model_name(model)
    return f"pose_landmarker_{model}.task"


def _check_model_name(model: str) -> None:
    if model not in MODEL_NAMES:
        raise ModelBundleError(
            f"unknown pose model {model!r}; expected one of {', '.join(MODEL_NAMES)}"
        )


# --------------------------------------------------------------------------
# npm package
# --------------------------------------------------------------------------


def _missing_package_files(npm_pose_dir: Path, models: Iterable[str]) -> list[str]:
    needed = [_PACKED_ASSETS] + [_LANDMARK_FILES[m] for m in models]
    return [name for name in needed if not (npm_pose_dir / name).is_file()]


def _check_integrity(tarball: Path) -> None:
    algo, _, expected = NPM_POSE_INTEGRITY.partition("-")
    digest = hashlib.new(algo, tarball.read_bytes()).digest()
    actual = base64.b64encode(digest).decode("ascii")
    if actual != expected:
        raise ModelBundleError(
            f"{tarball}: integrity mismatch for {NPM_POSE_PACKAGE} "
            f"(expected {NPM_POSE_INTEGRITY}, got {algo}-{actual})"
        )


def _safe_extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            # Refuses absolute paths, '..', links out of dest, device files.
            tar.extractall(dest, filter="data")
            return
        # Python < 3.11.4 without extraction filters: check names ourselves.
        root = dest.resolve()
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if root not in target.parents or not (member.isfile() or member.isdir()):
                raise ModelBundleError(f"{tarball}: refusing unsafe member {member.name!r}")
        tar.extractall(dest)


def fetch_npm_pose_package(dest: Path) -> Path:
    """npm pack + extract; returns the package dir (containing the .tflite files)."""
    dest = Path(dest)
    package_dir = dest / "package"
    # Already extracted and complete: nothing to do (keeps reruns offline).
    if package_dir.is_dir() and not _missing_package_files(package_dir, MODEL_NAMES):
        return package_dir

    npm = shutil.which("npm")
    if npm is None:
        raise ModelBundleError(
            f"'npm' not found on PATH; it is needed to fetch {NPM_POSE_PACKAGE}. "
            "Install Node.js/npm, or pass an already extracted package dir (--npm-dir)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-pose-", dir=dest) as tmp:
        tmp_dir = Path(tmp)
        try:
            proc = subprocess.run(
                [npm, "pack", NPM_POSE_PACKAGE, "--silent"],
                cwd=tmp_dir,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise ModelBundleError(
                f"'npm pack {NPM_POSE_PACKAGE}' timed out after {_NPM_TIMEOUT_S} s"
            ) from exc
        if proc.returncode != 0:
            raise ModelBundleError(
                f"'npm pack {NPM_POSE_PACKAGE}' failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        tarballs = sorted(tmp_dir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise ModelBundleError(
                f"'npm pack {NPM_POSE_PACKAGE}' left {len(tarballs)} .tgz files in {tmp_dir}"
            )
        _check_integrity(tarballs[0])
        extract_dir = tmp_dir / "extract"
        _safe_extract(tarballs[0], extract_dir)
        extracted = extract_dir / "package"
        missing = _missing_package_files(extracted, MODEL_NAMES)
        if missing:
            raise ModelBundleError(f"{tarballs[0].name}: package lacks {', '.join(missing)}")
        # Swap in the complete package dir in one step; a half-extracted
        # previous attempt is discarded.
        if package_dir.exists():
            shutil.rmtree(package_dir)
        os.replace(extracted, package_dir)
    return package_dir


# --------------------------------------------------------------------------
# TFLite models
# --------------------------------------------------------------------------


def _is_tflite(data: bytes) -> bool:
    return len(data) > 8 and data[4:8] == _TFLITE_IDENTIFIER


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ModelBundleError(f"missing file {path} (from npm package {NPM_POSE_PACKAGE})")
    return path.read_bytes()


def _read_landmarks_tflite(npm_pose_dir: Path, model: str) -> bytes:
    path = npm_pose_dir / _LANDMARK_FILES[model]
    data = _read_file(path)
    if not _is_tflite(data):
        raise ModelBundleError(f"{path} is not a TFLite model (no 'TFL3' identifier)")
    return data


def _packed_entry_range(loader_js: str) -> tuple[int, int] | None:
    """Byte range of pose_detection.tflite listed by the Emscripten loader, if any."""
    # The loader ends with: loadPackage({"files": [{"filename": "...", "start": 0,
    # "end": N}], "remote_package_size": N})
    match = re.search(r"loadPackage\((\{.*\})\)", loader_js, re.DOTALL)
    if not match:
        return None
    try:
        files = json.loads(match.group(1))["files"]
    except (ValueError, KeyError, TypeError):
        return None
    for entry in files:
        if str(entry.get("filename", "")).endswith("/" + _PACKED_DETECTOR_NAME):
            return int(entry["start"]), int(entry["end"])
    return None


def _read_detector_tflite(npm_pose_dir: Path) -> bytes:
    data_path = npm_pose_dir / _PACKED_ASSETS
    blob = _read_file(data_path)
    loader_path = npm_pose_dir / _PACKED_LOADER
    span = None
    if loader_path.is_file():
        span = _packed_entry_range(loader_path.read_text(encoding="utf-8", errors="replace"))
    if span is not None:
        start, end = span
        if not 0 <= start < end <= len(blob):
            raise ModelBundleError(
                f"{loader_path}: {_PACKED_DETECTOR_NAME} range {start}..{end} lies "
                f"outside {data_path} ({len(blob)} bytes)"
            )
        blob = blob[start:end]
    # Without a usable loader, accept the blob only if it is itself the model
    # (true for 0.5.1675469404: the blob holds exactly one file at offset 0).
    if not _is_tflite(blob):
        raise ModelBundleError(
            f"{data_path}: no {_PACKED_DETECTOR_NAME} found (no 'TFL3' identifier"
            + (" in the range listed by the loader)" if span else ")")
        )
    return blob


# --------------------------------------------------------------------------
# Metadata (mediapipe's writer, plus a stub for a module the wheel lacks)
# --------------------------------------------------------------------------

_PYWRAP_VERSION_MODULE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def _minimum_parser_version(metadata_buf: bytes) -> str:
    """Pure-Python stand-in for the C++ GetMinimumMetadataParserVersion.

    The C++ helper returns the lowest metadata-schema version that contains
    every field the buffer uses.  We only ever write an image input with
    NormalizationOptions and plain feature outputs, all in schema 1.0.0; the
    checks below cover the subgraph-level fields introduced later, so a future
    change that starts using them gets a truthful version rather than 1.0.0.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    version = (1, 0, 0)
    model = fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buf), 0)
    for i in range(model.SubgraphMetadataLength()):
        sub = model.SubgraphMetadata(i)
        if sub.InputProcessUnitsLength() or sub.OutputProcessUnitsLength():
            version = max(version, (1, 1, 0))
        if sub.InputTensorGroupsLength() or sub.OutputTensorGroupsLength():
            version = max(version, (1, 2, 0))
        if sub.CustomMetadataLength():
            version = max(version, (1, 5, 0))
    return ".".join(map(str, version))


def _ensure_metadata_version_module() -> None:
    # mediapipe 0.10.31's wheel ships tasks/python/metadata/metadata.py, which
    # does `from mediapipe.tasks.cc.metadata.python import
    # _pywrap_metadata_version`, but not that compiled pybind module (the whole
    # mediapipe/tasks/cc tree is absent), so the metadata writer cannot even be
    # imported.  Its only use is GetMinimumMetadataParserVersion(), which we
    # provide in Python.  Done in-process via sys.modules; site-packages is
    # never modified, and a wheel that does ship the module is used as is.
    try:
        __import__(_PYWRAP_VERSION_MODULE)
        return
    except ImportError:
        pass
    # By sys.modules, not attribute access: mediapipe/__init__.py rebinds the
    # attribute `mediapipe.tasks` to the mediapipe.tasks.python module.
    parent = importlib.import_module("mediapipe.tasks")
    for name in ("cc", "metadata", "python"):
        full = f"{parent.__name__}.{name}"
        module = sys.modules.get(full)
        if module is None:
            module = types.ModuleType(full, "spml stub package (absent from the mediapipe wheel)")
            module.__path__ = []  # a package, so submodule imports resolve via sys.modules
            sys.modules[full] = module
        setattr(parent, name, module)
        parent = module
    stub = types.ModuleType(
        _PYWRAP_VERSION_MODULE, "spml stub for mediapipe's missing pybind module"
    )
    stub.GetMinimumMetadataParserVersion = _minimum_parser_version  # type: ignore[attr-defined]
    sys.modules[_PYWRAP_VERSION_MODULE] = stub
    parent._pywrap_metadata_version = stub  # type: ignore[attr-defined]


def _with_image_metadata(
    tflite: bytes, name: str, description: str, norm: tuple[float, float]
) -> bytes:
    """Return *tflite* with TFLite metadata declaring an RGB image input normalised by *norm*."""
    _ensure_metadata_version_module()
    from mediapipe.tasks.python.metadata.metadata_writers import (
        metadata_writer,
        writer_utils,
    )

    writer = metadata_writer.MetadataWriter.create(bytearray(tflite))
    try:
        writer.add_general_info(name, description)
        mean, std = norm
        writer.add_image_input(norm_mean=[mean], norm_std=[std])
        # Name each output explicitly: with no output metadata the writer reuses
        # one TensorMetadataT object for all outputs, so they'd share one name.
        for tensor_name in writer_utils.get_output_tensor_names(tflite):
            writer.add_feature_output(name=tensor_name)
        model_with_metadata, _json = writer.populate()
    finally:
        # Drop the writer now.  mediapipe 0.10.31 keeps an exception (PortAudio
        # missing, from its audio module) in a module global; its traceback
        # pins the stack that first imported mediapipe - possibly this frame -
        # and a writer kept alive that way runs its __del__ at interpreter
        # shutdown, where it fails noisily ("'NoneType' has no attribute 'path'").
        writer._temp_folder.cleanup()
        del writer
    return bytes(model_with_metadata)


# --------------------------------------------------------------------------
# Bundles
# --------------------------------------------------------------------------


def is_valid_bundle(path: Path) -> bool:
    """True if *path* is an uncompressed zip with both TFLite members carrying metadata."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            if set(infos) != set(BUNDLE_MEMBERS):
                return False
            for member in BUNDLE_MEMBERS:
                if infos[member].compress_type != zipfile.ZIP_STORED:
                    return False
                data = zf.read(member)  # also verifies the CRC
                if not _is_tflite(data) or _METADATA_NAME not in data:
                    return False
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    return True


def _write_bundle(members: dict[str, bytes], path: Path) -> None:
    from mediapipe.tasks.python.metadata.metadata_writers import (
        model_asset_bundle_utils,
    )

    # mediapipe's AlignZipFile (what its create_model_asset_bundle uses) pads
    # so that every stored member starts on a 4-byte boundary, letting the
    # runtime mmap the models in place; it also refuses compressed members.
    # Fixed timestamps keep rebuilt bundles byte-identical.
    with model_asset_bundle_utils.AlignZipFile(path, mode="w", alignment=4) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def build_task_bundle(npm_pose_dir: Path, model: str, out_path: Path) -> Path:
    """Build one <model> .task bundle, written atomically (temp file + os.replace)."""
    _check_model_name(model)
    npm_pose_dir = Path(npm_pose_dir)
    out_path = Path(out_path)
    if not npm_pose_dir.is_dir():
        raise ModelBundleError(f"npm package dir {npm_pose_dir} does not exist")
    missing = _missing_package_files(npm_pose_dir, [model])
    if missing:
        raise ModelBundleError(
            f"npm package dir {npm_pose_dir} lacks {', '.join(missing)} "
            f"(expected the extracted {NPM_POSE_PACKAGE})"
        )
    # Read and check both inputs before importing mediapipe: cheap, clear errors.
    detector = _read_detector_tflite(npm_pose_dir)
    landmarks = _read_landmarks_tflite(npm_pose_dir, model)

    members = {
        DETECTOR_MEMBER: _with_image_metadata(
            detector,
            "pose_detector",
            "BlazePose person detector (from npm @mediapipe/pose)",
            _DETECTOR_NORM,
        ),
        LANDMARKS_MEMBER: _with_image_metadata(
            landmarks,
            f"pose_landmarks_detector_{model}",
            f"BlazePose GHUM 3D landmarks, {model} (from npm @mediapipe/pose)",
            _LANDMARKS_NORM,
        ),
    }

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        _write_bundle(members, tmp_path)
        if not is_valid_bundle(tmp_path):
            raise ModelBundleError(f"{tmp_path}: freshly written bundle failed validation")
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600
        os.replace(tmp_path, out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return out_path


def build_all(
    npm_pose_dir: Path,
    out_dir: Path,
    models: Iterable[str] = MODEL_NAMES,
    *,
    force: bool = False,
) -> dict[str, Path]:
    """Build pose_landmarker_<model>.task for each model; skip ones already valid."""
    models = list(models)
    for model in models:  # fail before building anything
        _check_model_name(model)
    out_dir = Path(out_dir)
    result: dict[str, Path] = {}
    for model in models:
        path = out_dir / bundle_filename(model)
        if not force and is_valid_bundle(path):
            logger.info("%s: already valid, skipped", path)
        else:
            build_task_bundle(npm_pose_dir, model, path)
            logger.info("%s: built (%d bytes)", path, path.stat().st_size)
        result[model] = path
    return result


def _parse_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("no model named")
    for model in models:
        if model not in MODEL_NAMES:
            raise argparse.ArgumentTypeError(
                f"unknown model {model!r}; choose from {','.join(MODEL_NAMES)}"
            )
    return models


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m spml_pose_mediapipe.model_bundle --out DIR [--npm-dir DIR] [--models lite,full,heavy]"""
    parser = argparse.ArgumentParser(
        prog="python -m spml_pose_mediapipe.model_bundle",
        description="Build MediaPipe pose_landmarker_<model>.task bundles offline "
        f"from npm {NPM_POSE_PACKAGE}.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the .task bundles")
    parser.add_argument(
        "--npm-dir",
        type=Path,
        default=None,
        help="extracted npm package dir (holding pose_landmark_*.tflite); "
        "default: fetch with 'npm pack' into a temporary dir",
    )
    parser.add_argument(
        "--models",
        type=_parse_models,
        default=list(MODEL_NAMES),
        help=f"comma-separated subset of {','.join(MODEL_NAMES)} (default: all)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even valid bundles")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.npm_dir is not None:
            build_all(args.npm_dir, args.out, args.models, force=args.force)
        elif not args.force and all(
            is_valid_bundle(args.out / bundle_filename(m)) for m in args.models
        ):
            # Everything is in place: don't touch the network at all.
            build_all(Path("."), args.out, args.models)
        else:
            with tempfile.TemporaryDirectory(prefix="spml-npm-pose-") as tmp:
                npm_dir = fetch_npm_pose_package(Path(tmp))
                build_all(npm_dir, args.out, args.models, force=args.force)
    except ModelBundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
