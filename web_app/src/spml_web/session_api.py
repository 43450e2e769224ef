"""Recorded sessions over HTTP and Socket.IO: the `record` event, the session list, zip download,
the keypoints for replay, and the page's WebM upload (docs/web_app.md, "Recording sessions").
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, request
from flask_socketio import SocketIO, emit

from spml_core import SmoothingOptions
from spml_core import __version__ as core_version
from spml_web import __version__
from spml_web.arrival import Shed
from spml_web.http_routes import pose_model_files
from spml_web.peer_compat import is_peer_payload
from spml_web.protocol import ProtocolError, parse_keypoints, parse_record
from spml_web.recording import RecordingError, bundle_id, source_name
from spml_web.vendor import vendor_status

if TYPE_CHECKING:
    from spml_web.state import WebState
    from spml_web.sessions import LiveSession


def _state() -> WebState:
    return current_app.extensions["spml"]


def model_record(st: WebState, session: LiveSession) -> dict[str, Any] | None:
    """The model a recording names: bundle name, its id (manifest hash), type, target and classes."""
    if session.model_name is None or session.predictor is None:
        return None
    m = session.predictor.manifest
    return {"name": session.model_name, "bundle_id": bundle_id(st.catalog.path(session.model_name)),
            "type": m.model.component, "target": m.target, "classes": list(m.classes),
            "window": m.features.window, "every": session.every}


def start_recording(st: WebState, session: LiveSession, source: str | None = None,
                    pose_model: str | None = None, pose_where: str | None = None) -> None:
    """Open a new session folder for this connection (the previous recording, if any, is finished)."""
    finish_recording(session)
    where = pose_where or "browser"
    if where == "server":  # server-side pose runs the server's model, whatever the page's picker shows
        pose = {"estimator": st.config.pose_estimator, "model": st.config.pose_model, "where": "server"}
    else:
        pose = {"estimator": "mediapipe", "model": pose_model or st.config.pose_model, "where": where}
    info = {"model": model_record(st, session), "source": source, "source_name": source_name(source),
            "pose": pose, "page_estimator": page_estimator(st, pose["model"]),
            "server": {"version": __version__, "spml_core": core_version}}
    session.recorder = st.archive.start(info)
    emit("recording", {"on": True, "id": session.recorder.id, "session": session.recorder.summary()})


def page_estimator(st: WebState, model: str) -> dict[str, Any]:
    """The page's in-browser pose as keypoint files record an estimator: MediaPipe Tasks for Web with
    the server's model file (name and SHA-256 prefix), and the One Euro smoothing the page applies."""
    tasks = vendor_status()["versions"].get("@mediapipe/tasks-vision")  # type: ignore[union-attr]
    path = pose_model_files(st.registry).get(model)
    version = f"@mediapipe/tasks-vision {tasks or 'unknown'} (browser)"
    if path is not None:
        version += f"; {path.name}@{_digest(path)}"
    # app.js applies smoothing.js's OneEuroFilter with the core defaults to every landmark it sends.
    return {"name": "mediapipe", "version": version,
            "options": {"model": model, "smoothing": SmoothingOptions().model_dump(mode="json"), "where": "browser"}}


@functools.lru_cache(maxsize=8)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:12]


def _digest(path: Path) -> str:
    """First 12 hex digits of the file's SHA-256 (as the offline estimator names its model file), cached."""
    try:
        st = path.stat()
        return _digest_of(str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return "unreadable"


def record_shed(session: LiveSession, shed: Shed) -> int:
    """Record the keypoints frames shed as late before the frame being handled: never classified, but a
    recording keeps every frame the client sent, in order. The number recorded; the rest (past
    KEEP_SHED, malformed, out of order, or from StreamPoseML's client, whose frames are stamped on
    arrival) are counted in the session's ``frames_not_recorded``."""
    recorder = session.recorder
    if recorder is None:
        return 0
    kept = 0
    for raw in shed.messages:
        try:
            payload = json.loads(raw[len("42"):])[1]
            if is_peer_payload(payload):
                continue
            msg = parse_keypoints(payload)
            with session.lock:
                session.check_order(msg.frame, msg.t_ms, "keypoints")
                recorder.frame(msg.frame, msg.t_ms, msg.xyzv, msg.width, msg.height)
            kept += 1
        except (ValueError, TypeError, IndexError, KeyError, RecursionError, ProtocolError):
            continue  # as it would have been refused had it come in time
    if shed.count > kept:
        recorder.not_recorded(shed.count - kept)
    return kept


def finish_recording(session: LiveSession) -> None:
    """Finish the connection's recording, if one runs, and tell the page its folder is complete."""
    summary = session.stop_recording()
    if summary is not None:
        emit("recording", {"on": False, "id": summary["id"], "session": summary})


def register_recording_event(socketio: SocketIO, guarded: Callable[[str], Any]) -> None:
    """The `record` event {on, source?, pose_model?, pose_where?}: start or stop this session's recording."""

    @socketio.on("record")
    @guarded("record")
    def on_record(session: LiveSession, payload: Any = None) -> None:
        msg = parse_record(payload)
        if not msg.on:
            finish_recording(session)
            return
        try:
            start_recording(_state(), session, msg.source, msg.pose_model, msg.pose_where)
        except RecordingError as exc:
            raise ProtocolError(str(exc), code="recording_disabled" if exc.status == 403 else "recording") from None


def register_session_api(app: Flask) -> None:
    """GET /api/sessions[/<id>[.zip|/keypoints]], POST /api/sessions/<id>/video."""

    @app.errorhandler(RecordingError)
    def _recording_error(exc: RecordingError) -> Any:
        return jsonify({"error": str(exc)}), exc.status

    @app.get("/api/sessions")
    def api_sessions() -> Any:
        st = _state()
        return jsonify({"enabled": st.archive.root is not None, "sessions": st.archive.list()})

    @app.get("/api/sessions/<session_id>")
    def api_session(session_id: str) -> Any:
        return jsonify(_state().archive.describe(session_id))

    @app.get("/api/sessions/<session_id>.zip")
    def api_session_zip(session_id: str) -> Any:
        st = _state()
        data = st.runner.blocking(st.archive.zip_bytes, session_id)  # seconds with a video: off the hub
        return Response(data, mimetype="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="spml-session-{session_id}.zip"'})

    @app.get("/api/sessions/<session_id>/keypoints")
    def api_session_keypoints(session_id: str) -> Any:
        return jsonify(_state().archive.replay_frames(session_id))

    @app.post("/api/sessions/<session_id>/video")
    def api_session_video(session_id: str) -> Any:
        st = _state()
        size = st.archive.save_video(session_id, request.stream, st.config.max_upload_bytes)
        return jsonify({"id": session_id, "video_bytes": size}), 201
