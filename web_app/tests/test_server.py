"""The live server through Flask-SocketIO's test client: protocol, bad input, per-session isolation.

Predictions are checked against the bundle's offline ``predict_window`` on the same frames, so a
wrong window, a frame pushed twice or a bad frame slipping into the buffer all fail these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the session fixtures extract keypoints and train two bundles


def received(client: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Events received since the last call, as [{name, args}] (or the args of one event name)."""
    events = client.get_received()
    if name is None:
        return events
    out = [e["args"][0] for e in events if e["name"] == name]
    if name == "prediction":
        # Results of a window still filling say warming_up (no class); these tests look at full windows.
        assert all(p["label"] is None for p in out if p["status"] == "warming_up")
        out = [p for p in out if p["status"] != "warming_up"]
    return out


def connect(app: Any) -> Any:
    client = app.extensions["socketio"].test_client(app)
    assert client.is_connected()
    return client


def offline(bundle: Path, xyzv: np.ndarray, width: int, height: int) -> dict[str, Any]:
    from spml_core.models.predictor import load_bundle

    return load_bundle(bundle).predict_window(xyzv, width, height)


def assert_same_prediction(live: dict[str, Any], expected: dict[str, Any]) -> None:
    assert live["label"] == expected["label"]
    assert live["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


# ------------------------------------------------------------------------------ protocol
def test_hello_lists_bundles_and_no_model_is_selected(make_app: Any) -> None:
    client = connect(make_app())
    (hello,) = received(client, "hello")
    assert hello["model"] is None
    names = {m["name"]: m for m in hello["models"]}
    assert set(names) == {"steps", "transfer"}
    assert names["steps"]["classes"] == ["Left Step", "Right Step"] and names["steps"]["window"] == 10
    assert names["transfer"]["window"] == 5


def test_keypoints_before_a_model_is_selected_are_refused(
    make_app: Any, example_keypoints: Any, keypoint_messages: Any
) -> None:
    client = connect(make_app())
    received(client)
    client.emit("keypoints", keypoint_messages(example_keypoints, 0, 1)[0])
    (err,) = received(client, "error")
    assert err["code"] == "no_model" and "select_model" in err["message"] and err["frame"] == 0


def test_unknown_model_names_the_available_ones(make_app: Any) -> None:
    client = connect(make_app())
    received(client)
    client.emit("select_model", {"name": "nope"})
    (err,) = received(client, "error")
    assert err["code"] == "unknown_model"
    assert "'nope'" in err["message"] and "steps" in err["message"] and "transfer" in err["message"]


def test_predictions_start_when_the_window_fills_and_match_offline(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    seq = example_keypoints
    client = connect(make_app())
    client.emit("select_model", {"name": "steps"})
    (selected,) = received(client, "model_selected")
    assert selected == {"name": "steps", "classes": ["Left Step", "Right Step"], "window": 10, "every": 1}
    for msg in keypoint_messages(seq, 0, 40):
        client.emit("keypoints", msg)
    preds = received(client, "prediction")
    assert [p["frame"] for p in preds] == list(range(9, 40))  # from the 10th frame on, every frame
    for p in preds[::7]:
        i = p["frame"]
        assert_same_prediction(p, offline(bundles["steps"], seq.xyzv[i - 9 : i + 1], seq.width, seq.height))
        assert p["model"] == "steps" and p["window"] == 10 and p["latency_ms"] > 0
        assert set(p["probabilities"]) == {"Left Step", "Right Step"}
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_every_k_frames(make_app: Any, example_keypoints: Any, keypoint_messages: Any) -> None:
    client = connect(make_app())
    client.emit("select_model", {"name": "transfer", "every": 4})
    assert received(client, "model_selected")[0]["every"] == 4
    for msg in keypoint_messages(example_keypoints, 0, 30):
        client.emit("keypoints", msg)
    assert [p["frame"] for p in received(client, "prediction")] == [4, 8, 12, 16, 20, 24, 28]


def test_server_default_every_and_default_model(
    models_dir: Path, example_keypoints: Any, keypoint_messages: Any
) -> None:
    from spml_web import create_app

    app = create_app({"models_dir": models_dir, "model": models_dir / "transfer", "every": 10})
    client = connect(app)
    (hello,) = received(client, "hello")
    assert hello["model"] == "transfer" and hello["window"] == 5 and hello["every"] == 10
    for msg in keypoint_messages(example_keypoints, 0, 30):
        client.emit("keypoints", msg)
    assert [p["frame"] for p in received(client, "prediction")] == [4, 14, 24]


def test_frames_without_a_person_enter_the_window_as_gaps(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    seq = example_keypoints
    client = connect(make_app())
    client.emit("select_model", {"name": "transfer"})
    msgs = keypoint_messages(seq, 0, 12)
    msgs[8]["landmarks"] = None  # the person left the frame for one frame
    for msg in msgs:
        client.emit("keypoints", msg)
    preds = {p["frame"]: p for p in received(client, "prediction")}
    window = seq.xyzv[7:12].copy()
    window[1] = np.nan
    assert_same_prediction(preds[11], offline(bundles["transfer"], window, seq.width, seq.height))


# ------------------------------------------------------------------------------ bad input
BAD_KEYPOINTS = [
    ("not an object", "payload must be a JSON object"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": [[0.5, 0.5, 0.0, 1.0]] * 32}, "got (32, 4)"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": [[0.5, 0.5, 0.0]] * 33}, "got (33, 3)"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": [[0.5, None, 0.0, 1.0]] * 33}, "only numbers"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": [[0.5, float("nan"), 0.0, 1.0]] * 33}, "not finite"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": [[float("inf"), 0.5, 0.0, 1.0]] * 33}, "not finite"),
    ({"frame": "one", "t_ms": 1.0, "landmarks": None}, "keypoints.frame"),
    ({"frame": 1, "t_ms": 1.0}, "landmarks is missing"),
    ({"frame": 1, "t_ms": 1.0, "landmarks": None, "x": 1}, "unknown field"),
]


def test_bad_payloads_get_an_error_and_leave_the_window_intact(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    seq = example_keypoints
    client = connect(make_app())
    client.emit("select_model", {"name": "steps"})
    received(client)
    good = keypoint_messages(seq, 0, 12)
    errors: list[dict[str, Any]] = []
    for i, msg in enumerate(good):
        if i < len(BAD_KEYPOINTS):
            client.emit("keypoints", BAD_KEYPOINTS[i][0])
            errors += received(client, "error")
        client.emit("keypoints", msg)
    client.emit("keypoints")  # no payload at all
    errors += received(client, "error")
    assert len(errors) == len(BAD_KEYPOINTS) + 1
    for err, (_, fragment) in zip(errors, BAD_KEYPOINTS):
        assert fragment in err["message"] and err["code"] == "bad_payload" and err["event"] == "keypoints"
    # The good frames alone made the window: predictions equal the offline ones.
    client.emit("keypoints", keypoint_messages(seq, 12, 13)[0])
    last = received(client, "prediction")[-1]
    assert last["frame"] == 12
    assert_same_prediction(last, offline(bundles["steps"], seq.xyzv[3:13], seq.width, seq.height))


def test_time_going_backwards_needs_a_reset(make_app: Any, example_keypoints: Any, keypoint_messages: Any) -> None:
    client = connect(make_app())
    client.emit("select_model", {"name": "transfer"})
    msgs = keypoint_messages(example_keypoints, 0, 6)
    for msg in msgs:
        client.emit("keypoints", msg)
    received(client)
    client.emit("keypoints", msgs[0])
    (err,) = received(client, "error")
    assert err["code"] == "out_of_order" and "reset" in err["message"]
    client.emit("reset")
    for msg in msgs:
        client.emit("keypoints", msg)
    events = received(client)
    assert [e["args"][0]["frame"] for e in events
            if e["name"] == "prediction" and e["args"][0]["status"] != "warming_up"] == [4, 5]
    assert not [e for e in events if e["name"] == "error"]


def test_a_pause_in_the_stream_starts_a_new_window(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    seq = example_keypoints
    client = connect(make_app(max_gap_ms=500))
    client.emit("select_model", {"name": "transfer"})
    msgs = keypoint_messages(seq, 0, 16)
    for msg in msgs[8:]:
        msg["t_ms"] += 2000.0  # the camera stalled for two seconds after frame 7
    for msg in msgs:
        client.emit("keypoints", msg)
    preds = received(client, "prediction")
    # Frames 4-7 fill the first window; after the pause frames 8-11 refill it: no mixed window.
    assert [p["frame"] for p in preds] == [4, 5, 6, 7, 12, 13, 14, 15]
    assert_same_prediction(preds[4], offline(bundles["transfer"], seq.xyzv[8:13], seq.width, seq.height))


def test_bad_select_model_payloads(make_app: Any) -> None:
    client = connect(make_app())
    received(client)
    for payload in (None, "steps", {"name": 3}, {}, {"name": "steps", "every": 0}, {"name": "steps", "bogus": 1}):
        client.emit("select_model", payload)
        (err,) = received(client, "error")
        assert err["event"] == "select_model" and "select_model" in err["message"]
    # name null (the page's "(none)") is not an error: the session has no model.
    client.emit("select_model", {"name": None})
    (selected,) = received(client, "model_selected")
    assert selected["name"] is None and selected["classes"] == []


def test_width_and_height_default_to_the_training_video_size(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    client = connect(make_app())
    client.emit("select_model", {"name": "transfer"})
    for msg in keypoint_messages(example_keypoints, 0, 5):
        del msg["width"], msg["height"]
        client.emit("keypoints", msg)
    (pred,) = received(client, "prediction")
    seq = example_keypoints
    assert_same_prediction(pred, offline(bundles["transfer"], seq.xyzv[0:5], seq.width, seq.height))


def test_without_any_frame_size_the_client_must_send_it(
    make_app: Any, models_dir: Path, example_keypoints: Any, keypoint_messages: Any
) -> None:
    import shutil

    shutil.copytree(models_dir / "transfer", models_dir / "nosize")
    manifest = json.loads((models_dir / "nosize" / "manifest.json").read_text(encoding="utf-8"))
    manifest["features"]["frame_size"] = None
    (models_dir / "nosize" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    client = connect(make_app())
    client.emit("select_model", {"name": "nosize"})
    received(client)
    msgs = keypoint_messages(example_keypoints, 0, 5)
    bare = {k: v for k, v in msgs[0].items() if k not in ("width", "height")}
    client.emit("keypoints", bare)
    (err,) = received(client, "error")
    assert err["code"] == "no_frame_size" and "width and height" in err["message"]
    for msg in msgs:
        client.emit("keypoints", msg)
    assert [p["frame"] for p in received(client, "prediction")] == [4]


# ------------------------------------------------------------------------------ sessions
def test_two_sessions_with_different_models_do_not_interfere(
    make_app: Any, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any
) -> None:
    seq = example_keypoints
    app = make_app()
    a, b = connect(app), connect(app)
    a.emit("select_model", {"name": "steps"})
    b.emit("select_model", {"name": "transfer", "every": 2})
    received(a), received(b)
    msgs = keypoint_messages(seq, 0, 30)
    # Interleave: A streams frames 0..29, B streams the same video 10 frames behind, plus junk.
    for i in range(30):
        a.emit("keypoints", msgs[i])
        if i >= 10:
            b.emit("keypoints", msgs[i - 10])
        if i % 7 == 0:
            b.emit("keypoints", {"frame": 0, "t_ms": 0, "landmarks": [[1, 2, 3]]})
    pa, pb = received(a, "prediction"), received(b, "prediction")
    assert [p["frame"] for p in pa] == list(range(9, 30))
    assert [p["frame"] for p in pb] == list(range(4, 20, 2))
    assert {p["model"] for p in pa} == {"steps"} and {p["model"] for p in pb} == {"transfer"}
    assert_same_prediction(pa[-1], offline(bundles["steps"], seq.xyzv[20:30], seq.width, seq.height))
    assert_same_prediction(pb[-1], offline(bundles["transfer"], seq.xyzv[14:19], seq.width, seq.height))
    assert received(a, "error") == []


def test_disconnect_mid_window_drops_only_that_session(
    make_app: Any, example_keypoints: Any, keypoint_messages: Any
) -> None:
    app = make_app()
    sessions = app.extensions["spml"].sessions
    a, b = connect(app), connect(app)
    for c in (a, b):
        c.emit("select_model", {"name": "steps"})
    msgs = keypoint_messages(example_keypoints, 0, 15)
    for msg in msgs[:5]:
        a.emit("keypoints", msg)
    assert len(sessions) == 2
    a.disconnect()
    assert len(sessions) == 1
    for msg in msgs:
        b.emit("keypoints", msg)
    assert [p["frame"] for p in received(b, "prediction")] == list(range(9, 15))
    c = connect(app)  # a new connection starts empty, not with a's half window
    c.emit("select_model", {"name": "steps"})
    for msg in msgs[5:12]:
        c.emit("keypoints", msg)
    assert received(c, "prediction") == []
    assert len(sessions) == 2


def test_connections_beyond_the_limit_are_refused(make_app: Any) -> None:
    app = make_app(max_sessions=2)
    sio = app.extensions["socketio"]
    a, b = sio.test_client(app), sio.test_client(app)
    c = sio.test_client(app)
    assert a.is_connected() and b.is_connected() and not c.is_connected()
    b.disconnect()
    assert sio.test_client(app).is_connected()


def test_health_ping(make_app: Any) -> None:
    client = connect(make_app())
    received(client)
    client.emit("health_ping", {"t": 12.5})
    (pong,) = received(client, "health_pong")
    assert pong["t"] == 12.5 and pong["model"] is None and pong["server_time_ms"] > 0
    client.emit("health_ping", {"t": {"nested": "junk"}})
    assert received(client, "health_pong")[0]["t"] is None


# ------------------------------------------------------------------------------ server-side pose
def _jpeg_frames(video: Path, n: int, size: tuple[int, int] = (640, 360)) -> list[bytes]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    try:
        while len(frames) < n:
            ok, bgr = cap.read()
            assert ok
            ok, buf = cv2.imencode(".jpg", cv2.resize(bgr, size), [cv2.IMWRITE_JPEG_QUALITY, 85])
            frames.append(buf.tobytes())
    finally:
        cap.release()
    return frames


def test_jpeg_frames_get_server_side_pose_and_predictions(make_app: Any, example_video: Path) -> None:
    client = connect(make_app())
    client.emit("select_model", {"name": "transfer"})
    received(client)
    jpegs = _jpeg_frames(example_video, 8)
    for i, jpeg in enumerate(jpegs):
        client.emit("frame", {"frame": i, "t_ms": i * 33.367, "image": jpeg})
        if i == 3:  # garbage between good frames: an error, and the stream carries on
            client.emit("frame", {"frame": 99, "t_ms": i * 33.367 + 1, "image": b"\xff\xd8 not really a jpeg"})
    events = received(client)
    poses = [e["args"][0] for e in events if e["name"] == "pose"]
    errors = [e["args"][0] for e in events if e["name"] == "error"]
    preds = [e["args"][0] for e in events if e["name"] == "prediction" and e["args"][0]["status"] != "warming_up"]
    assert [p["frame"] for p in poses] == list(range(8))
    assert all(p["landmarks"] is not None and len(p["landmarks"]) == 33 for p in poses)
    assert poses[0]["width"] == 640 and poses[0]["height"] == 360
    # The person stands in the middle of the frame: hips roughly mid-image.
    hips = np.asarray(poses[-1]["landmarks"])[[23, 24], :2]
    assert 0.2 < hips[:, 0].mean() < 0.8 and 0.3 < hips[:, 1].mean() < 0.9
    assert len(errors) == 1 and errors[0]["event"] == "frame" and "JPEG" in errors[0]["message"]
    assert [p["frame"] for p in preds] == [4, 5, 6, 7]


def test_oversized_and_non_jpeg_frames_are_refused(make_app: Any) -> None:
    client = connect(make_app(max_frame_bytes=2048))
    received(client)
    client.emit("frame", {"frame": 0, "t_ms": 0.0, "image": b"\xff\xd8" + b"\0" * 5000})
    client.emit("frame", {"frame": 1, "t_ms": 1.0, "image": "aGVsbG8="})
    client.emit("frame", {"frame": 2, "t_ms": 2.0, "image": b"\x89PNG\r\n\x1a\n...."})
    errs = received(client, "error")
    assert [e["code"] for e in errs] == ["too_large", "bad_payload", "bad_payload"]
    assert "limit is 2048" in errs[0]["message"] and "not a JPEG" in errs[2]["message"]


# ------------------------------------------------------------------------------ HTTP
def test_api_plugins_is_what_spml_plugins_json_prints(make_app: Any) -> None:
    http = make_app().test_client()
    served = http.get("/api/plugins").get_json()
    cli = subprocess.run([sys.executable, "-m", "spml_core", "plugins", "--json"], capture_output=True, text=True)
    assert json.loads(cli.stdout) == served
    assert any("pose_estimator" in p["components"] for p in served)


def test_api_config_components_and_health(make_app: Any) -> None:
    http = make_app().test_client()
    cfg = http.get("/api/config").get_json()
    assert cfg["pose_models"] == ["lite", "full", "heavy"] and cfg["server_pose"] is True
    assert [0, 1] in cfg["connections"] and cfg["limits"]["max_upload_bytes"] == 64 << 20
    comps = http.get("/api/components").get_json()
    assert "mediapipe" in comps["pose_estimator"] and "xgboost" in comps["model"]
    health = http.get("/api/health").get_json()
    assert health["status"] == "ok" and health["sessions"] == []


def test_page_assets_are_served_locally_with_the_right_types(make_app: Any) -> None:
    http = make_app().test_client()
    page = http.get("/")
    assert page.status_code == 200 and b'src="/static/app.js"' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "http" not in csp  # nothing from another origin
    assert http.get("/static/app.js").mimetype == "text/javascript"
    task = http.get("/pose-models/lite.task")
    assert task.status_code == 200
    import io
    import zipfile

    assert "pose_landmarks_detector.tflite" in zipfile.ZipFile(io.BytesIO(task.data)).namelist()
    assert http.get("/pose-models/../../etc/passwd.task").status_code == 404
    missing = http.get("/pose-models/ultra.task")
    assert missing.status_code == 404
    from spml_web.vendor import vendor_status

    if not vendor_status()["complete"]:
        pytest.skip("vendor assets not installed (make setup runs npm ci and python -m spml_web.vendor)")
    wasm = http.get("/static/vendor/tasks-vision/wasm/vision_wasm_module_internal.wasm")
    assert wasm.status_code == 200 and wasm.mimetype == "application/wasm" and wasm.data[:4] == b"\0asm"
    assert http.get("/static/vendor/tasks-vision/vision_bundle.mjs").mimetype == "text/javascript"


def test_settings_are_validated() -> None:
    from spml_core.errors import ConfigError
    from spml_web import create_app

    with pytest.raises(ConfigError, match="every"):
        create_app({"every": 0})
    with pytest.raises(ConfigError, match="cors_allowed_origins"):
        create_app({"cors_allowed_origins": ["*"]})
    with pytest.raises(ConfigError, match="bogus"):
        create_app({"bogus": 1})


def test_secret_key_is_random_per_app_unless_configured(make_app: Any) -> None:
    a, b = make_app(), make_app()
    assert a.secret_key != b.secret_key and len(a.secret_key) >= 32
    assert make_app(secret_key="s3cret-from-config").secret_key == "s3cret-from-config"
