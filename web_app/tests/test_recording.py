"""Session recording on a real server with a real Socket.IO client: the session folder's files, the
session list, the zip, the replay keypoints, the page's video upload, and `spml evaluate` on the folder.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow

# These tests need every paced frame classified and recorded. On a busy machine (CI, a browser test next
# door) one frame can still wait past the default 250 ms and be dropped as late, by design: not what is
# tested here.
PATIENT = {"max_age_ms": 60_000.0}


@pytest.fixture()
def server(make_app: Any, tmp_path: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(make_app(sessions_dir=tmp_path / "sessions", **PATIENT)) as srv:
        yield srv


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    # Like the page: state-changing requests carry the CSRF token of GET /api/config.
    with urllib.request.urlopen(url.split("/api/")[0] + "/api/config", timeout=10) as resp:
        token = json.loads(resp.read())["csrf_token"]
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "video/webm", "X-CSRF-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def send_paced(rec: Any, messages: list[dict[str, Any]]) -> None:
    """Send frames one at a time, each after the server answered the previous one, as a camera paces
    them: sent all at once they would queue past the server's age limit and be dropped (latest wins)."""
    for msg in messages:
        rec.client.emit("keypoints", msg)
        rec.wait_for("prediction", where=lambda p, f=msg["frame"]: p["frame"] == f, timeout=20)


def record_session(url: str, recorder: Any, seq: Any, keypoint_messages: Any, model: str | None = "steps",
                   stop: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Record the example video's keypoints as a replay of example_video.webm; returns (client, summary)."""
    rec = recorder(url)
    rec.wait_for("hello")
    if model:
        rec.client.emit("select_model", {"name": model})
        rec.wait_for("model_selected")
    rec.client.emit("record", {"on": True, "source": "example_video.webm", "pose_model": "lite",
                               "pose_where": "browser"})
    started = rec.wait_for("recording")[0]
    assert started["on"] and started["session"]["recording"]
    send_paced(rec, keypoint_messages(seq, 0, stop))
    rec.client.emit("record", {"on": False})
    done = rec.wait_for("recording", 2, timeout=30)[1]
    assert not done["on"] and done["id"] == started["id"]
    return rec, done["session"]


def test_a_recorded_session_folder(server: BackgroundServer, recorder: Any, example_keypoints: Any,
                                   keypoint_messages: Any) -> None:
    from spml_core import load_keypoints

    seq = example_keypoints
    rec, summary = record_session(server.url, recorder, seq, keypoint_messages, stop=120)
    folder = server.app.extensions["spml"].archive.root / summary["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["events.jsonl", "keypoints.parquet", "session.json"]
    # The folder itself loads as keypoints: the frames the server received, with the page's frame size.
    loaded = load_keypoints(folder)
    assert loaded.n_frames == 120 and (loaded.width, loaded.height) == (seq.width, seq.height)
    np.testing.assert_allclose(loaded.xyzv, seq.xyzv[:120], atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(loaded.frame_index, seq.frame_index[:120])
    assert loaded.estimator.name == "mediapipe" and loaded.estimator.options["model"] == "lite"
    # The page's pose, recorded as completely as offline extraction records its estimator.
    from spml_core import SmoothingOptions

    assert loaded.estimator.version.startswith("@mediapipe/tasks-vision ")
    assert "pose_landmarker_lite.task@" in loaded.estimator.version
    assert loaded.estimator.options == {"model": "lite", "where": "browser",
                                        "smoothing": SmoothingOptions().model_dump(mode="json")}
    assert loaded.name == "example_video"
    meta = json.loads((folder / "session.json").read_text())
    assert meta["pose_estimator"] == loaded.estimator.model_dump() and "page_estimator" not in meta
    assert meta["model"]["name"] == "steps" and len(meta["model"]["bundle_id"]) == 16
    assert meta["model"]["classes"] == ["Left Step", "Right Step"] and meta["pose"]["where"] == "browser"
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    predictions = [e for e in events if e["type"] == "prediction"]
    assert len(predictions) == len(rec.of("prediction")) == meta["predictions"]
    # Every frame is answered (warming up for the first 9 of the window of 10, no person, or a class).
    assert [p["frame"] for p in predictions] == list(range(120))
    labelled = [p for p in predictions if p["label"] is not None]
    assert 100 <= len(labelled) <= 120 - 9 and all(p["frame"] >= 9 for p in labelled)
    assert [p["frame"] for p in predictions] == [p["frame"] for p in rec.of("prediction")]
    assert {"label", "probabilities", "decision", "actions", "latency_ms"} <= set(predictions[0])

    # Listed, zipped, replayable; the page's video is accepted once, and only a WebM.
    status, body = get(f"{server.url}/api/sessions")
    listed = json.loads(body)["sessions"]
    assert status == 200 and [s["id"] for s in listed] == [summary["id"]] and listed[0]["frames"] == 120
    # The video upload changes state: without the page's CSRF token it is refused like any other change.
    bare = urllib.request.Request(f"{server.url}/api/sessions/{summary['id']}/video", data=b"\x1a\x45\xdf\xa3",
                                  method="POST", headers={"Content-Type": "video/webm"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 403
    status, body = post(f"{server.url}/api/sessions/{summary['id']}/video", b"not a webm")
    assert status == 400 and "WebM" in body["error"]
    webm = b"\x1a\x45\xdf\xa3" + bytes(1000)
    assert post(f"{server.url}/api/sessions/{summary['id']}/video", webm)[0] == 201
    assert post(f"{server.url}/api/sessions/{summary['id']}/video", webm)[0] == 409
    status, body = get(f"{server.url}/api/sessions/{summary['id']}.zip")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = sorted(zf.namelist())
        assert names == [f"{summary['id']}/{n}" for n in ("events.jsonl", "keypoints.parquet", "session.json",
                                                          "video.webm")]
        assert zf.read(f"{summary['id']}/video.webm") == webm
    status, body = get(f"{server.url}/api/sessions/{summary['id']}/keypoints")
    replay = json.loads(body)
    assert status == 200 and len(replay["frames"]) == 120 and replay["width"] == seq.width
    assert replay["frames"][5]["t_ms"] == pytest.approx(float(seq.timestamps_ms[5]))
    for bad in ("../etc", "20260101-000000-zzzzzz", "nope"):
        assert get(f"{server.url}/api/sessions/{bad}.zip")[0] == 404


def test_recording_needs_a_sessions_folder_and_none_stops_classification(
    make_app: Any, recorder: Any, example_keypoints: Any, keypoint_messages: Any,
) -> None:
    with BackgroundServer(make_app()) as srv:
        rec = recorder(srv.url)
        assert rec.wait_for("hello")[0]["recording"] == {"enabled": False, "all": False}
        rec.client.emit("record", {"on": True})
        err = rec.wait_for("error")[0]
        assert err["code"] == "recording_disabled" and "--sessions-dir" in err["message"]
        # "(none)": the model is dropped and frames bring no predictions (and no errors).
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        rec.client.emit("select_model", {"name": None})
        assert rec.wait_for("model_selected", 2)[1] == {"name": None, "classes": [], "window": None, "every": 1}
        assert get(f"{srv.url}/api/sessions")[1] and json.loads(get(f"{srv.url}/api/sessions")[1])["enabled"] is False


def test_record_every_session_and_evaluate_it(make_app: Any, recorder: Any, example_keypoints: Any,
                                              keypoint_messages: Any, bundles: dict[str, Path],
                                              example_dir: Path, tmp_path: Path) -> None:
    with BackgroundServer(make_app(sessions_dir=tmp_path / "sessions", record=True, **PATIENT)) as srv:
        rec = recorder(srv.url)
        rec.wait_for("hello")
        first = rec.wait_for("recording")[0]  # record: true starts one at connect
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        rec.client.emit("record", {"on": True, "source": "example_video.webm", "pose_model": "lite"})
        send_paced(rec, keypoint_messages(example_keypoints))
        rec.client.emit("reset")  # a new stream: this folder is finished, the next one starts
        done = rec.wait_for("recording", 4, timeout=60)
        # (the fifth, the next stream's folder, may already be here too)
        assert [e["on"] for e in done][:5] == [True, False, True, False, True][:len(done)]
        folder = srv.app.extensions["spml"].archive.root / done[3]["id"]
        assert done[0]["id"] == first["id"] and done[3]["session"]["frames"] == example_keypoints.n_frames
        # The folder opened at connect saw no stream: it is not kept.
        assert done[1]["session"]["discarded"] and not (folder.parent / first["id"]).exists()
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "spml_core", "evaluate", str(bundles["steps"]), "--dataset",
                           str(folder), "--annotations", str(example_dir), "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"]["n"] > 100 and 0.0 <= metrics["overall"]["balanced_accuracy"] <= 1.0
    # Every frame recorded, aligned by time: the session's labelled table is byte for byte the training
    # dataset the bundle was made from (the same video's keypoints, the same annotations).
    assert metrics["same_as_training_data"] is True
    proc = subprocess.run([sys.executable, "-m", "spml_core", "evaluate", str(bundles["steps"]), "--dataset",
                           str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--annotations" in proc.stderr
    # spml predict takes the folder (or the sessions folder): its keypoints, named after the session.
    (folder / "video.webm").write_bytes(b"\x1a\x45\xdf\xa3")  # a session's video is not predicted again
    pred = tmp_path / "pred"
    proc = subprocess.run([sys.executable, "-m", "spml_core", "predict", str(folder.parent), "--model",
                           str(bundles["steps"]), "--out", str(pred), "--no-timeline", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    table = pd.read_parquet(pred / f"{folder.name}.predictions.parquet")
    assert len(table) == example_keypoints.n_frames
    assert sorted(p.name for p in pred.glob("*.predictions.parquet")) == sorted(
        f"{d.name}.predictions.parquet" for d in folder.parent.iterdir() if (d / "keypoints.parquet").exists())


def test_server_side_pose_records_the_servers_estimator(make_app: Any, recorder: Any, example_video: Path,
                                                        tmp_path: Path) -> None:
    """Frames sent as JPEG (server-side pose): the keypoints file names the server's estimator, its model
    (not the page's picker), version and smoothing, and holds the landmarks the server sent back."""
    import cv2
    from spml_core import load_keypoints

    cap = cv2.VideoCapture(str(example_video))
    jpegs = []
    while len(jpegs) < 12:
        ok, bgr = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", cv2.resize(bgr, (640, 360)))[1].tobytes())
    cap.release()
    with BackgroundServer(make_app(sessions_dir=tmp_path / "sessions", pose_model="lite")) as srv:
        rec = recorder(srv.url)
        rec.wait_for("hello")
        rec.client.emit("record", {"on": True, "source": "example_video.webm", "pose_model": "heavy",
                                   "pose_where": "server"})
        started = rec.wait_for("recording")[0]
        assert started["session"]["pose"] == {"estimator": "mediapipe", "model": "lite", "where": "server"}
        for i, data in enumerate(jpegs):
            rec.client.emit("frame", {"frame": i, "t_ms": i * 33.4, "image": data})
            rec.wait_for("pose", where=lambda p, f=i: p["frame"] == f, timeout=60)
        rec.client.emit("record", {"on": False})
        done = rec.wait_for("recording", 2, timeout=30)[1]
    folder = tmp_path / "sessions" / done["id"]
    loaded = load_keypoints(folder / "keypoints.parquet")
    est = loaded.estimator
    assert est.name == "mediapipe" and est.version.startswith("mediapipe ") and "lite" in est.version
    assert est.options["model"] == "lite" and est.options["where"] == "server"
    assert est.options["smoothing"]["enabled"] is True  # the server estimator's own One Euro settings
    poses = {p["frame"]: p for p in rec.of("pose")}
    assert loaded.n_frames == len(jpegs) and (loaded.width, loaded.height) == (640, 360)
    seen = [i for i in range(len(jpegs)) if poses[i]["landmarks"] is not None]
    assert len(seen) >= 6  # the person is found in most frames
    for i in seen:
        np.testing.assert_allclose(loaded.xyzv[i], np.asarray(poses[i]["landmarks"]), atol=1e-6)
    meta = json.loads((folder / "session.json").read_text())
    assert meta["pose_estimator"] == est.model_dump() and "pose_frames" not in meta
    # Training on this session copies the estimator into a bundle: features.pose names the server's model.
    from spml_core.datasets.pose_info import bundle_pose

    pose, warnings = bundle_pose({"session": est.model_dump()})
    assert pose is not None and pose["model"] == "lite" and "where" not in pose["options"] and not warnings


def test_frames_shed_as_late_are_still_recorded(make_app: Any, recorder: Any, example_keypoints: Any,
                                                keypoint_messages: Any, stream_through_stall: Any,
                                                tmp_path: Path) -> None:
    """The connection stalls (its select_model waits 1.5 s for the session): the frames sent meanwhile are
    shed unread and never classified, but the recording keeps every frame the client sent, in order."""
    from spml_core import load_keypoints
    from spml_web.app import state

    seq = example_keypoints
    with BackgroundServer(make_app(sessions_dir=tmp_path / "sessions")) as srv:
        rec = recorder(srv.url, ["websocket"])
        rec.wait_for("hello")
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        rec.client.emit("record", {"on": True, "source": "example_video.webm", "pose_model": "lite"})
        rec.wait_for("recording")
        session = state(srv.app).sessions.get(rec.sid)
        assert session is not None
        msgs = keypoint_messages(seq, 0, 150)
        stream_through_stall(rec, session, msgs)
        rec.wait_for("prediction", where=lambda p: p["frame"] == 149, timeout=20)
        shed = sum(n["count"] for n in rec.wait_for("late"))
        assert shed > 20
        predicted = {p["frame"] for p in rec.of("prediction")}
        assert len(predicted & {m["frame"] for m in msgs[20:]}) < 130 - 20  # the shed ones were not classified
        rec.client.emit("record", {"on": False})
        summary = rec.wait_for("recording", 2, timeout=30)[1]["session"]
        folder = srv.app.extensions["spml"].archive.root / summary["id"]
    assert summary["frames"] == 150 and "frames_not_recorded" not in summary, summary
    loaded = load_keypoints(folder)
    np.testing.assert_array_equal(loaded.frame_index, seq.frame_index[:150])
    np.testing.assert_allclose(loaded.xyzv, seq.xyzv[:150], atol=1e-6, equal_nan=True)
