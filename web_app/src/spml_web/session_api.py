"""Recorded sessions over HTTP and Socket.IO: the `record` event, the session list, zip download,
the keypoints for replay, and the page's WebM upload (docs/web_app.md, "Recording sessions").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, request
from flask_socketio import SocketIO, emit

from spml_core import __version__ as core_version
from spml_web import __version__
from spml_web.protocol import ProtocolError, parse_record
from spml_web.recording import RecordingError, bundle_id, source_name

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
    info = {"model": model_record(st, session), "source": source, "source_name": source_name(source),
            "pose": {"estimator": st.config.pose_estimator, "model": pose_model or st.config.pose_model,
                     "where": pose_where or "browser"},
            "server": {"version": __version__, "spml_core": core_version}}
    session.recorder = st.archive.start(info)
    emit("recording", {"on": True, "id": session.recorder.id, "session": session.recorder.summary()})


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
        data = _state().archive.zip_bytes(session_id)
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
