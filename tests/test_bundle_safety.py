"""Model bundles are safe to load: pickles, crafted archives, symlinks and unknown versions are refused.

Also: no code in the installed packages calls pickle.load, joblib.load or an unsafe torch.load.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

import spml_core
from spml_core.models.archive import BundleError, safe_extract_zip
from spml_core.models.bundle import zip_bundle
from spml_core.keypoints.skeleton import landmark_columns

REPO = Path(__file__).resolve().parents[1]


def synthetic_frames(n_videos: int = 3, n_frames: int = 120, seed: int = 0):
    """A per-frame dataset like `spml dataset` writes: a skeleton whose left wrist rises and falls."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    parts = []
    for v in range(n_videos):
        base = np.tile(np.linspace(0.3, 0.7, 33)[:, None], (1, 4)).astype(np.float32)
        base[:, 3] = 1.0
        xyzv = np.repeat(base[None], n_frames, axis=0) + rng.normal(scale=0.01, size=(n_frames, 33, 4))
        phase = np.sin(np.arange(n_frames) / 6.0 + v)
        xyzv[:, 15, 1] = 0.5 - 0.2 * phase  # left wrist
        xyzv[:, 3] = xyzv[:, 3]
        df = pd.DataFrame(xyzv.reshape(n_frames, -1).astype(np.float32), columns=landmark_columns())
        df.insert(0, "video", f"clip{v}")
        df.insert(1, "frame", np.arange(n_frames))
        df.insert(2, "timestamp_ms", np.arange(n_frames) * 1000 / 30)
        df.insert(3, "width", 640)
        df.insert(4, "height", 480)
        df["arm"] = np.where(phase > 0.3, "up", np.where(phase < -0.3, "down", None))
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out["video"] = out["video"].astype("category")
    out["arm"] = out["arm"].astype("category")
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A real bundle trained on synthetic frames (tiny xgboost)."""
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    root = tmp_path_factory.mktemp("bundle")
    data = write_dataset(synthetic_frames(), root / "frames.parquet")
    train(data, "arm", root / "model", "xgboost", {"n_estimators": 10}, features=["normalized"], window=4,
          stride=2, quiet=True)
    return root / "model"


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(bundle, dest)
    return dest


class Boom:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_good_bundle_folder_and_zip_load(bundle, tmp_path) -> None:
    predictor = spml_core.load_bundle(bundle)
    assert predictor.classes == ["down", "up"] and predictor.window == 4
    z = zip_bundle(bundle, tmp_path / "model.zip")
    assert spml_core.load_bundle(z).classes == predictor.classes
    # A zip of the folder itself (one top-level directory) is accepted too.
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        for p in bundle.rglob("*"):
            if p.is_file():
                zf.write(p, f"model/{p.relative_to(bundle).as_posix()}")
    assert spml_core.load_bundle(nested).classes == predictor.classes


def test_pickle_in_bundle_is_refused_and_never_run(bundle, tmp_path) -> None:
    marker = tmp_path / "code-ran"
    evil = copy_of(bundle, tmp_path)
    (evil / "model" / "extra.pkl").write_bytes(pickle.dumps(Boom(marker)))
    with pytest.raises(BundleError, match="pickle-type file"):
        spml_core.load_bundle(evil)
    # Same bytes under an innocent name: refused by content.
    (evil / "model" / "extra.pkl").rename(evil / "model" / "notes.bin")
    with pytest.raises(BundleError, match=r"notes.bin is a pickle \(by its content\)"):
        spml_core.load_bundle(evil)
    assert not marker.exists()


def test_uploaded_pickle_or_joblib_file_is_refused(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    for name in ("model.pickle", "model.joblib", "model.model"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(Boom(marker)))
        with pytest.raises(BundleError, match="pickle"):
            spml_core.load_bundle(path)
    assert not marker.exists()


def test_torch_save_checkpoint_is_refused(bundle, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    evil = copy_of(bundle, tmp_path)
    torch.save({"w": torch.zeros(2)}, evil / "model" / "weights.safetensors")  # a zip holding data.pkl
    with pytest.raises(BundleError, match="archive holding a pickle"):
        spml_core.load_bundle(evil)


def crafted_zip(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", "{}")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("name, symlink, reason", [
    ("../escaped.txt", False, "path traversal"),
    ("model/../../escaped.txt", False, "path traversal"),
    ("/tmp/spml-absolute.txt", False, "absolute path"),
    ("model/link", True, "symbolic link"),
])
def test_crafted_archives_are_refused_and_nothing_is_written(tmp_path, name, symlink, reason) -> None:
    archive = crafted_zip(tmp_path / "evil.zip", name, b"/etc/passwd" if symlink else b"x", symlink)
    dest = tmp_path / "out" / "inner"
    with pytest.raises(BundleError, match=reason):
        safe_extract_zip(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/spml-absolute.txt").exists()
    with pytest.raises(BundleError, match=reason):
        spml_core.load_bundle(archive)


def test_archive_limits(tmp_path) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b"0" * 100_000)
    with pytest.raises(BundleError, match="expands to more than"):
        safe_extract_zip(archive, tmp_path / "x", max_bytes=10_000)
    with pytest.raises(BundleError, match="not a readable zip"):
        safe_extract_zip(tmp_path / "missing.zip", tmp_path / "x")


def test_symlink_inside_bundle_folder_is_refused(bundle, tmp_path) -> None:
    evil = copy_of(bundle, tmp_path)
    os.symlink("/etc/passwd", evil / "model" / "passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        spml_core.load_bundle(evil)


def test_manifest_is_validated(bundle, tmp_path) -> None:
    evil = copy_of(bundle, tmp_path)
    manifest = json.loads((evil / "manifest.json").read_text())
    (evil / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(BundleError, match="unsupported schema_version 99"):
        spml_core.load_bundle(evil)
    bad = {**manifest, "classes": ["only"]}
    (evil / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="classes"):
        spml_core.load_bundle(evil)
    bad = {**manifest, "model": {**manifest["model"], "files": ["../../etc/passwd"]}}
    (evil / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="plain relative name"):
        spml_core.load_bundle(evil)
    bad = {**manifest, "model": {**manifest["model"], "component": "nonexistent"}}
    (evil / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="needs model component 'nonexistent'"):
        spml_core.load_bundle(evil)
    spec = {**manifest["features"]["spec"], "frame_columns": ["bogus", *manifest["features"]["spec"]["frame_columns"][1:]]}
    bad = {**manifest, "features": {**manifest["features"], "spec": spec}}
    (evil / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="differ from what the installed feature extractors produce"):
        spml_core.load_bundle(evil)
    (evil / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        spml_core.load_bundle(evil)
    (evil / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        spml_core.load_bundle(evil)


def test_write_bundle_refuses_to_overwrite_other_folders(tmp_path) -> None:
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    data = write_dataset(synthetic_frames(2, 60), tmp_path / "f.parquet")
    with pytest.raises(BundleError, match="not a model bundle; refusing to overwrite"):
        train(data, "arm", precious, "xgboost", {"n_estimators": 3}, features=["normalized"], window=2, quiet=True)
    assert (precious / "thesis.txt").read_text() == "years of work"


UNSAFE = re.compile(
    r"\b(c?pickle|dill|cloudpickle|joblib)\.loads?\s*\("
    r"|\bUnpickler\s*\("
    r"|\btorch\.load\s*\((?![^)]*weights_only\s*=\s*True)"
    r"|allow_pickle\s*=\s*True"
)


def test_no_code_path_unpickles() -> None:
    roots = [REPO / "spml_core", REPO / "stream_pose_ml", REPO / "web_app" / "src",
             *sorted((REPO / "plugins").glob("*/src"))]
    scanned, hits = 0, []
    for root in roots:
        for path in root.rglob("*.py"):
            scanned += 1
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if UNSAFE.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert scanned > 30
    assert not hits, "unsafe deserialisation:\n" + "\n".join(hits)
    # The pattern itself catches what it should.
    assert UNSAFE.search("obj = pickle.load(fh)") and UNSAFE.search("joblib.load(p)")
    assert UNSAFE.search("torch.load(path)") and not UNSAFE.search("torch.load(path, weights_only=True)")


def test_safetensors_whose_length_prefix_looks_like_a_pickle_marker_is_accepted(tmp_path) -> None:
    from safetensors.numpy import save_file

    from spml_core.models.archive import check_no_pickles

    # The header length is little-endian: 0x0480 starts with the bytes 0x80 0x04, like a protocol-4 pickle.
    for pad in range(2000):
        save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "w.safetensors"), metadata={"pad": "x" * pad})
        if (tmp_path / "w.safetensors").read_bytes()[:2] == b"\x80\x04":
            break
    else:
        pytest.fail("no header length with the pickle marker bytes found")
    check_no_pickles(tmp_path)
    (tmp_path / "w.safetensors").write_bytes(b"\x80\x04" + pickle.dumps([1, 2, 3])[2:])
    with pytest.raises(BundleError, match="is a pickle"):
        check_no_pickles(tmp_path)
