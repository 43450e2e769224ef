"""Tests of the offline .task bundle builder (spml_pose_mediapipe.model_bundle).

The error-path tests use a fake npm package dir and never import mediapipe, so
they run in milliseconds.  The checks of real bundles read the bundles the plugin
resolves (the package's models/ built by `make setup`, or $SPML_MEDIAPIPE_MODELS).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from spml_pose_mediapipe import model_bundle as mb

# Smallest byte string the builder's cheap checks take for a TFLite model:
# a flatbuffer root offset followed by the "TFL3" file identifier.
FAKE_TFLITE = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32


def _fake_npm_dir(root: Path, *, omit: str | None = None) -> Path:
    pkg = root / "package"
    pkg.mkdir()
    names = ["pose_solution_packed_assets.data"] + [
        f"pose_landmark_{m}.tflite" for m in mb.MODEL_NAMES
    ]
    for name in names:
        if name != omit:
            (pkg / name).write_bytes(FAKE_TFLITE)
    return pkg


@pytest.mark.parametrize(
    "missing", ["pose_landmark_lite.tflite", "pose_solution_packed_assets.data"]
)
def test_missing_package_file_is_named(tmp_path: Path, missing: str) -> None:
    npm_dir = _fake_npm_dir(tmp_path, omit=missing)
    out = tmp_path / "out" / "pose_landmarker_lite.task"
    with pytest.raises(mb.ModelBundleError, match=missing.replace(".", r"\.")):
        mb.build_task_bundle(npm_dir, "lite", out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file left


def test_missing_package_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dir"
    with pytest.raises(mb.ModelBundleError, match="no_such_dir"):
        mb.build_task_bundle(missing, "full", tmp_path / "x.task")


def test_non_tflite_detector_blob_is_named(tmp_path: Path) -> None:
    npm_dir = _fake_npm_dir(tmp_path)
    (npm_dir / "pose_solution_packed_assets.data").write_bytes(b"not a model at all")
    with pytest.raises(mb.ModelBundleError, match=r"pose_solution_packed_assets\.data"):
        mb.build_task_bundle(npm_dir, "lite", tmp_path / "out.task")


def test_unknown_model_rejected_before_building(tmp_path: Path) -> None:
    with pytest.raises(mb.ModelBundleError, match="'medium'"):
        mb.build_all(tmp_path, tmp_path / "out", ["lite", "medium"])
    assert not (tmp_path / "out").exists()


def test_cli_reports_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npm_dir = _fake_npm_dir(tmp_path, omit="pose_landmark_heavy.tflite")
    rc = mb.main(["--out", str(tmp_path / "out"), "--npm-dir", str(npm_dir), "--models", "heavy"])
    assert rc == 1
    assert "pose_landmark_heavy.tflite" in capsys.readouterr().err


def test_build_all_skips_valid_bundle(tmp_path: Path) -> None:
    # A bundle that passes is_valid_bundle() must not be rebuilt, so an empty
    # npm dir is fine (building would fail on it).
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bundle = out_dir / "pose_landmarker_lite.task"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:
        for member in mb.BUNDLE_MEMBERS:
            zf.writestr(member, FAKE_TFLITE + b"TFLITE_METADATA")
    before = bundle.stat().st_mtime_ns
    empty_npm = tmp_path / "empty"
    empty_npm.mkdir()
    assert mb.build_all(empty_npm, out_dir, ["lite"]) == {"lite": bundle}
    assert bundle.stat().st_mtime_ns == before


def test_compressed_bundle_is_not_valid(tmp_path: Path) -> None:
    bundle = tmp_path / "b.task"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in mb.BUNDLE_MEMBERS:
            zf.writestr(member, FAKE_TFLITE + b"TFLITE_METADATA")
    assert not mb.is_valid_bundle(bundle)


@pytest.mark.parametrize("model", mb.MODEL_NAMES)
def test_real_bundle_is_uncompressed_zip_with_both_models(model: str) -> None:
    """The bundles the plugin actually uses (built by `make setup`, or $SPML_MEDIAPIPE_MODELS)."""
    from spml_pose_mediapipe.model_files import resolve_model

    path = resolve_model(model)  # raises with a how-to-build message when missing: a setup failure
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert sorted(i.filename for i in infos) == sorted(mb.BUNDLE_MEMBERS)
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        for info in infos:
            with zf.open(info) as f:
                assert f.read(8)[4:8] == b"TFL3", info.filename
    assert mb.is_valid_bundle(path)
