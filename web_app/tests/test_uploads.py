"""POST /api/models: bundle uploads are size-limited, extracted safely, validated, never unpickled."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # needs the trained bundles

# A complete pickle (protocol 4: the int 1): its bytes are enough to be refused, nothing is ever loaded.
PICKLE_BYTES = b"\x80\x04K\x01."


def post(http: Any, data: bytes, filename: str = "bundle.zip", **form: str) -> Any:
    # As the page does: the CSRF token from /api/config in a header.
    token = http.get("/api/config").get_json()["csrf_token"]
    return http.post("/api/models", data={"bundle": (io.BytesIO(data), filename), **form},
                     content_type="multipart/form-data", headers={"X-CSRF-Token": token})


def zipped(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def bundle_files(bundle: Path) -> dict[str, bytes]:
    return {p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}


def listing(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir())


def test_a_valid_bundle_is_stored_listed_broadcast_and_usable(
    make_app: Any, models_dir: Path, bundles: dict[str, Path], example_keypoints: Any, keypoint_messages: Any
) -> None:
    app = make_app()
    watcher = app.extensions["socketio"].test_client(app)
    watcher.get_received()
    http = app.test_client()
    resp = post(http, zipped(bundle_files(bundles["transfer"])), "my-transfer.zip")
    assert resp.status_code == 201, resp.get_json()
    model = resp.get_json()["model"]
    assert model["name"] == "my-transfer" and model["window"] == 5
    assert (models_dir / "my-transfer" / "manifest.json").is_file()
    names = [m["name"] for m in http.get("/api/models").get_json()["models"]]
    assert names == ["my-transfer", "steps", "transfer"]
    (update,) = [e["args"][0] for e in watcher.get_received() if e["name"] == "models"]
    assert "my-transfer" in [m["name"] for m in update["models"]]
    # The uploaded bundle classifies exactly like the one it was made from.
    watcher.emit("select_model", {"name": "my-transfer"})
    for msg in keypoint_messages(example_keypoints, 0, 5):
        watcher.emit("keypoints", msg)
    preds = [e["args"][0] for e in watcher.get_received() if e["name"] == "prediction"]
    pred = preds[-1]  # the window is full at the 5th frame (the ones before are warming up)
    assert pred["frame"] == 4 and pred["status"] in ("ok", "unknown")
    from spml_core.models.predictor import load_bundle

    seq = example_keypoints
    expected = load_bundle(bundles["transfer"]).predict_window(seq.xyzv[0:5], seq.width, seq.height)
    assert pred["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_a_zipped_folder_and_an_explicit_name(make_app: Any, models_dir: Path, bundles: dict[str, Path]) -> None:
    files = {f"steps-folder/{k}": v for k, v in bundle_files(bundles["steps"]).items()}
    resp = post(make_app().test_client(), zipped(files), "whatever.zip", name="steps_v2")
    assert resp.status_code == 201 and resp.get_json()["model"]["name"] == "steps_v2"
    assert (models_dir / "steps_v2" / "manifest.json").is_file()


def _corrupt_manifest(bundle: Path, **changes: Any) -> dict[str, bytes]:
    files = bundle_files(bundle)
    manifest = json.loads(files["manifest.json"])
    manifest.update(changes)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


HOSTILE = {
    "not a zip": (lambda b: b"this is not a zip archive" * 10, "not a readable zip"),
    "path traversal": (lambda b: zipped({**bundle_files(b), "../../escaped.txt": b"x"}), "path traversal"),
    "absolute path": (lambda b: zipped({**bundle_files(b), "/tmp/spml-abs.txt": b"x"}), "absolute path"),
    "symlink": (lambda b: zipped(bundle_files(b), links={"model/link": "/etc/passwd"}), "symbolic link"),
    "pickle by name": (lambda b: zipped({**bundle_files(b), "model/model.pkl": PICKLE_BYTES}), "pickle"),
    "pickle by content": (lambda b: zipped({**bundle_files(b), "model/weights.bin": PICKLE_BYTES}), "pickle"),
    "pickle in a nested zip": (
        lambda b: zipped({**bundle_files(b), "extra.zip": zipped({"inner.joblib": PICKLE_BYTES})}), "pickle"),
    "no manifest": (lambda b: zipped({k: v for k, v in bundle_files(b).items() if k != "manifest.json"}),
                    "no manifest.json"),
    "manifest not json": (lambda b: zipped({**bundle_files(b), "manifest.json": b"{nope"}), "not valid JSON"),
    "future schema": (lambda b: zipped(_corrupt_manifest(b, schema_version=99)), "unsupported schema_version 99"),
    "unknown model component": (
        lambda b: zipped(_corrupt_manifest(b, model={**json.loads(bundle_files(b)["manifest.json"])["model"],
                                                      "component": "evil"})), "'evil'"),
    "missing weights": (lambda b: zipped({k: v for k, v in bundle_files(b).items() if not k.startswith("model/")}),
                        "missing"),
    "corrupt weights": (lambda b: zipped({**bundle_files(b), "model/model.ubj": b"\x00garbage" * 100}),
                        "not a valid XGBoost model"),
    "empty file": (lambda b: b"", "upload is empty"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_corrupt_or_hostile_uploads_are_refused_and_leave_nothing(
    case: str, make_app: Any, models_dir: Path, bundles: dict[str, Path], tmp_path: Path
) -> None:
    make, fragment = HOSTILE[case]
    before = listing(models_dir)
    resp = post(make_app().test_client(), make(bundles["transfer"]), "hostile.zip")
    assert resp.status_code == 400, (case, resp.get_json())
    message = resp.get_json()["error"]
    assert fragment in message, (case, message)
    assert "hostile.zip" in message or case == "empty file"
    assert listing(models_dir) == before  # no half-extracted bundle, no staging folder
    assert not Path("/tmp/spml-abs.txt").exists()
    assert not (models_dir.parent / "escaped.txt").exists() and not (models_dir / "escaped.txt").exists()


def test_zip_bombs_and_oversized_uploads(make_app: Any, models_dir: Path, bundles: dict[str, Path]) -> None:
    http = make_app(max_upload_bytes=1 << 20).test_client()
    bomb = zipped({**bundle_files(bundles["transfer"]), "padding.bin": b"\0" * (64 << 20)})
    assert len(bomb) < 1 << 20  # small on the wire...
    resp = post(http, bomb)
    assert resp.status_code == 400 and "expands to more than" in resp.get_json()["error"]
    big = zipped({**bundle_files(bundles["transfer"]), "noise.bin": bytes(range(256)) * 2048 * 2})
    big = big + b"\0" * (1100 * 1024)
    resp = post(http, big)
    assert resp.status_code == 413 and "1048576-byte limit" in resp.get_json()["error"]
    assert listing(models_dir) == ["steps", "transfer"]


def test_upload_request_errors(make_app: Any, models_dir: Path, bundles: dict[str, Path]) -> None:
    http = make_app().test_client()
    token = http.get("/api/config").get_json()["csrf_token"]
    resp = http.post("/api/models", data={}, content_type="multipart/form-data", headers={"X-CSRF-Token": token})
    assert resp.status_code == 400 and "multipart field 'bundle'" in resp.get_json()["error"]
    good = zipped(bundle_files(bundles["steps"]))
    resp = post(http, good, "steps.zip")
    assert resp.status_code == 409 and "already exists" in resp.get_json()["error"]
    for bad_name in ("../escape", "a b", ".hidden", "x" * 65):
        resp = post(http, good, "ok.zip", name=bad_name)
        assert resp.status_code == 400 and "not allowed" in resp.get_json()["error"], bad_name
    assert listing(models_dir) == ["steps", "transfer"]


def test_uploads_need_a_models_dir(bundles: dict[str, Path]) -> None:
    from spml_web import create_app

    app = create_app({"model": bundles["steps"]})
    resp = post(app.test_client(), zipped(bundle_files(bundles["transfer"])))
    assert resp.status_code == 403 and "--models-dir" in resp.get_json()["error"]


def test_a_broken_bundle_in_the_models_dir_is_skipped_not_fatal(
    make_app: Any, models_dir: Path, keypoint_messages: Any, example_keypoints: Any
) -> None:
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "manifest.json").write_text("{}", encoding="utf-8")
    app = make_app()
    assert [m["name"] for m in app.test_client().get("/api/models").get_json()["models"]] == ["steps", "transfer"]
    client = app.extensions["socketio"].test_client(app)
    client.emit("select_model", {"name": "broken"})
    (err,) = [e["args"][0] for e in client.get_received() if e["name"] == "error"]
    assert err["code"] == "bad_model" and "cannot be loaded" in err["message"]
