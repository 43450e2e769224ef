"""The Flask app factory: HTTP routes for the page and its assets, the model API, and the
Socket.IO live protocol (docs/protocol.md). All state lives on ``app.extensions["spml"]``.

Actuation (docs/actuation.md): one :class:`ActuationHub` per app drives the configured actuators;
each connection has its own :class:`ActuationSession` (its own decision state) that is fed every
prediction after it has been emitted, and is closed (off actions) on disconnect, reset, a model
switch and app shutdown (:func:`close_app`).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, jsonify, request, send_from_directory
from flask.sessions import SessionInterface
from flask_socketio import SocketIO, emit
from werkzeug.exceptions import HTTPException

from spml_core import POSE_CONNECTIONS, ActuationHub
from spml_core import __version__ as core_version
from spml_core.errors import SpmlError
from spml_core.registry import Registry
from spml_web import __version__
from spml_web.catalog import CatalogError, ModelCatalog
from spml_web.fairness import Fairness
from spml_web.guard import HostGuard, csrf_token, same_origin_problem
from spml_web.limits import limit_websocket_messages
from spml_web.packets import MALFORMED_EVENT, TolerantPacket
from spml_web.peer_compat import frame_result, is_peer_payload, to_spml_keypoints
from spml_web.protocol import (
    ProtocolError,
    parse_frame,
    parse_keypoints,
    parse_select,
)
from spml_web.recording import SessionArchive
from spml_web.session_api import (
    finish_recording,
    model_record,
    register_recording_event,
    register_session_api,
    start_recording,
)
from spml_web.inbox import Inbox, Item
from spml_web.live_worker import end_stream, start_worker, submit
from spml_web.sessions import LiveSession, SessionStore
from spml_web.settings import WebConfig, as_config
from spml_web.vendor import STATIC_DIR, vendor_status

log = logging.getLogger("spml.web")

POSE_MODEL_NAMES = ("lite", "full", "heavy")
# Everything the page loads comes from this server; 'wasm-unsafe-eval' lets MediaPipe compile its wasm.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class NoSessions(SessionInterface):
    """Flask sessions switched off: every request gets the same cheap null session."""

    def open_session(self, app: Flask, request: Any) -> Any:
        """No cookie is read."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        """No cookie is set."""


@dataclass
class WebState:
    """What one app instance holds: settings, plugins, models and the live sessions."""

    config: WebConfig
    registry: Registry
    catalog: ModelCatalog
    sessions: SessionStore
    socketio: SocketIO
    actuation: ActuationHub
    archive: SessionArchive
    started_at: float = field(default_factory=time.time)
    closed: bool = False


def state(app: Flask | None = None) -> WebState:
    """The spml state of an app (the current one by default)."""
    from flask import current_app

    return (app or current_app).extensions["spml"]


def pose_model_files(registry: Registry) -> dict[str, Path]:
    """The model files installed pose estimators offer the page (PoseEstimator.browser_models), by name."""
    found: dict[str, Path] = {}
    for estimator in registry.names("pose_estimator"):
        for name, path in registry.get("pose_estimator", estimator).browser_models().items():
            if name in POSE_MODEL_NAMES:
                found.setdefault(name, path)
    return found


def create_app(config: WebConfig | Mapping[str, Any] | None = None, registry: Registry | None = None) -> Flask:
    """Build the web app from settings (see spml_web.settings.WebConfig) and the installed plugins."""
    cfg = as_config(config)
    registry = registry or Registry().load()
    mimetypes.add_type("application/wasm", ".wasm")
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("text/javascript", ".js")

    app = Flask("spml_web", static_folder=str(STATIC_DIR), static_url_path="/static")
    # No logins, no cookies: Flask-SocketIO opens a request context (and so a session) per event,
    # and a signed-cookie session costs more than classifying the frame.
    app.session_interface = NoSessions()
    app.config.update(
        SECRET_KEY=cfg.resolved_secret(),
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes + 64 * 1024,  # the multipart envelope around the zip
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if cfg.message_queue:
        from spml_web.message_queue import check_message_queue

        check_message_queue(cfg.message_queue)
    socketio = SocketIO(
        app,
        async_mode="threading",
        # Several worker processes share one port: only a WebSocket stays in the process that accepted it.
        **({"transports": ["websocket"]} if cfg.websocket_only else {}),
        # With a Redis message queue, emits to rooms and broadcasts (e.g. "models" after an upload)
        # reach the clients of every app process; each connection's session stays in its process.
        message_queue=cfg.message_queue,
        channel=cfg.message_queue_channel,
        # Events of one connection are handled in order on its own thread: a window must see
        # frames in order, and a slow client only delays itself.
        async_handlers=False,
        max_http_buffer_size=cfg.max_message_bytes,
        cors_allowed_origins=cfg.cors_allowed_origins,
        ping_interval=cfg.ping_interval,
        ping_timeout=cfg.ping_timeout,
        logger=False,
        engineio_logger=False,
        serializer=TolerantPacket,
        # Socket.IO handlers never touch the Flask session; skipping its per-event copy saves CPU.
        manage_session=False,
    )
    limit_websocket_messages(socketio.server.eio, cfg.max_message_bytes)
    # Outermost, so the Socket.IO handshake is checked too (DNS rebinding, access token).
    guard = HostGuard(app.wsgi_app, cfg.allowed_hosts, cfg.access_token)
    app.wsgi_app = guard  # type: ignore[method-assign]
    app.extensions["spml_guard"] = guard
    app.extensions["spml_fairness"] = Fairness(socketio.server, cfg.max_events_per_s, cfg.idle_timeout_s,
                                               cfg.max_sessions_per_client)
    catalog = ModelCatalog(cfg.models_dir, cfg.model, registry=registry, check_timeout_s=cfg.bundle_check_timeout_s,
                           check_memory_bytes=cfg.bundle_check_memory_mb << 20)
    if cfg.model is not None:
        catalog.get(catalog.default_name or "")  # fail at start-up, not on the first connection
    # Built last: its runner threads start connecting to the devices at once (a bad actuator
    # config raises ConfigError naming actuators.N... before any thread is left behind).
    actuation = ActuationHub(cfg.actuators, registry, base_dir=cfg.actuation_dir)
    app.extensions["spml"] = WebState(cfg, registry, catalog, SessionStore(), socketio, actuation,
                                      SessionArchive(cfg.sessions_dir))
    _register_http(app)
    register_session_api(app)
    _register_socket(socketio)
    return app


# ------------------------------------------------------------------------------------ HTTP
def close_app(app: Flask, timeout: float = 2.0) -> None:
    """Shut the app's actuation down: every session's devices get their off action, runners stop."""
    st = state(app)
    if st.closed:
        return
    st.closed = True
    st.actuation.close(timeout)
    app.extensions["spml_fairness"].close()
    for session in st.sessions.all():
        with session.lock:
            session.stop_recording()  # a server stopped mid-session still leaves a complete folder


def _register_http(app: Flask) -> None:
    csrf = csrf_token(app.config["SECRET_KEY"])

    @app.before_request
    def _same_origin_only() -> Any:
        cfg = state().config
        problem = same_origin_problem(request.method, request.headers, request.host_url,
                                      cfg.cors_allowed_origins or (), csrf)
        if problem:
            log.info("%s %s refused: %s", request.method, request.path, problem)
            return jsonify({"error": problem}), 403
        return None

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            message = exc.description
            if exc.code == 413:
                message = f"upload is larger than the {state().config.max_upload_bytes}-byte limit"
            return jsonify({"error": message}), exc.code
        return exc

    @app.get("/")
    def index() -> Any:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/api/config")
    def api_config() -> Any:
        st = state()
        pose_models = sorted(pose_model_files(st.registry), key=POSE_MODEL_NAMES.index)
        return jsonify(
            {
                "version": __version__,
                "every": st.config.every,
                "model": st.catalog.default_name,
                "pose_models": pose_models,
                "pose_model": st.config.pose_model,
                "browser_pose": bool(vendor_status()["complete"]) and bool(pose_models),
                "server_pose": st.config.pose_estimator in st.registry.names("pose_estimator"),
                "connections": [list(c) for c in POSE_CONNECTIONS],
                "limits": _limits(st.config),
                "recording": {"enabled": st.archive.root is not None, "all": st.config.record},
                "uploads": st.catalog.models_dir is not None,
                "csrf_token": csrf,
            }
        )

    @app.get("/api/plugins")
    def api_plugins() -> Any:
        # The same records as `spml plugins --json` (third-party plugins, not spml-core's built-ins).
        st = state()
        return jsonify([r.as_json() for r in st.registry.records if r.status != "builtin"])

    @app.get("/api/components")
    def api_components() -> Any:
        st = state()
        kinds = ("pose_estimator", "model", "actuator", "feature_extractor")
        return jsonify({k: st.registry.names(k) for k in kinds})

    @app.get("/api/models")
    def api_models() -> Any:
        st = state()
        return jsonify({"models": st.catalog.describe(), "default": st.catalog.default_name,
                        "uploads": st.catalog.models_dir is not None})

    @app.post("/api/models")
    def api_upload() -> Any:
        st = state()
        upload = request.files.get("bundle")
        if upload is None:
            return jsonify({"error": "no file: send the bundle zip as multipart field 'bundle'"}), 400
        name = request.form.get("name") or None
        try:
            model = st.catalog.add_upload(upload.stream, upload.filename or "", name, st.config.max_upload_bytes)
        except CatalogError as exc:
            log.info("upload refused: %s", exc)
            return jsonify({"error": str(exc)}), exc.status
        st.socketio.emit("models", {"models": st.catalog.describe()})
        return jsonify({"model": model}), 201

    @app.get("/api/health")
    def api_health() -> Any:
        st = state()
        return jsonify({"status": "ok", "version": __version__, "spml_core": core_version,
                        "uptime_s": round(time.time() - st.started_at, 1), "sessions": st.sessions.summary(),
                        "actuators": st.actuation.status(),
                        "fairness": current_app.extensions["spml_fairness"].stats(), "pid": os.getpid()})

    @app.get("/pose-models/<name>.task")
    def pose_model(name: str) -> Any:
        path = pose_model_files(state().registry).get(name)
        if path is None:
            abort(404, description=f"pose model {name!r} is not installed (lite, full or heavy; run make setup)")
        return send_from_directory(path.parent, path.name, mimetype="application/octet-stream", max_age=3600)


def _limits(cfg: WebConfig) -> dict[str, int]:
    return {"max_message_bytes": cfg.max_message_bytes, "max_frame_bytes": cfg.max_frame_bytes,
            "max_frame_pixels": cfg.max_frame_pixels, "max_upload_bytes": cfg.max_upload_bytes}


# ------------------------------------------------------------------------------ Socket.IO
def _error(message: str, code: str, event: str, frame: int | None = None) -> None:
    payload: dict[str, Any] = {"message": message, "code": code, "event": event}
    if frame is not None:
        payload["frame"] = frame
    emit("error", payload)


def _guarded(event: str, locked: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a handler's failures into `error` events; the session and the server carry on.

    ``locked=False`` (frame events) runs without the session's lock: they are only parsed and
    queued, and must be stamped with their receipt time even while the worker is busy.
    """

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        def handler(*args: Any) -> None:
            session = state().sessions.get(request.sid)
            if session is None:
                return
            try:
                if locked:
                    with session.lock:
                        fn(session, *args)
                else:
                    fn(session, *args)
            except ProtocolError as exc:
                session.errors += 1
                _error(str(exc), exc.code, event, _frame_of(args))
            except CatalogError as exc:
                session.errors += 1
                _error(str(exc), "unknown_model" if exc.status == 404 else "bad_model", event)
            except SpmlError as exc:
                session.errors += 1
                _error(f"{event}: {exc}", "failed", event, _frame_of(args))
            except Exception as exc:  # a bug must not take the session or the server down
                session.errors += 1
                log.error("%s handler failed:\n%s", event, traceback.format_exc())
                _error(f"{event}: internal error ({type(exc).__name__}: {exc})", "internal", event, _frame_of(args))

        handler.__name__ = f"on_{event}"
        return handler

    return wrap


def _frame_of(args: tuple[Any, ...]) -> int | None:
    if args and isinstance(args[0], dict):
        frame = args[0].get("frame")
        if isinstance(frame, int) and not isinstance(frame, bool):
            return frame
    return None


def _start_actuation(st: WebState, session: LiveSession) -> None:
    """Open the session's actuation stream (nothing when no actuator is configured)."""
    if not st.actuation.targets or st.closed:
        return
    sid, socketio = session.sid, st.socketio

    def emit_action(event: dict[str, Any]) -> None:
        # Called from the connection's thread or the dead-man watchdog's: a server-level emit.
        socketio.emit("action", event, to=sid)
        recorder = session.recorder
        if recorder is not None:
            recorder.event("action", event)

    session.actuation = st.actuation.session(emit=emit_action, session_id=sid)


def _restart_actuation(st: WebState, session: LiveSession) -> None:
    """A new stream (reset, another model): end the old one's actions, start afresh."""
    session.end_actuation()
    _start_actuation(st, session)


def _emit_prediction(session: LiveSession, result: dict[str, Any], t0: float) -> None:
    result["latency_ms"] = (time.perf_counter() - t0) * 1000.0
    # A server-level emit: predictions are made on the session's worker thread.
    st = state()
    st.socketio.emit("prediction", result, to=session.sid)
    if getattr(session, "peer", False) and session.predictor is not None:  # a StreamPoseML client (peer_compat)
        st.socketio.emit("frame_result", frame_result(result, list(session.predictor.classes),
                                                      st.config.peer_true_class), to=session.sid)
    recorder = session.recorder  # read once: `record` (another thread) may end it meanwhile
    if recorder is not None:
        recorder.event("prediction", result)
    # After the emit: the prediction never waits for the decision layer (microseconds anyway,
    # and the devices are driven on their own threads).
    session.act(result)


def _register_socket(socketio: SocketIO) -> None:
    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        st = state()
        if len(st.sessions) >= st.config.max_sessions:
            raise ConnectionRefusedError(f"server is full ({st.config.max_sessions} sessions)")
        cfg = st.config
        session = LiveSession(request.sid, cfg.every, cfg.decision_frames, cfg.decision_threshold, cfg.max_gap_ms)
        session.inbox = Inbox(cfg.max_age_ms)
        st.sessions.add(session)
        from flask import current_app

        start_worker(current_app._get_current_object(), st.socketio, session, _process)  # type: ignore[attr-defined]
        hello: dict[str, Any] = {"version": __version__, "models": st.catalog.describe(), "model": None,
                                 "every": session.every, "limits": _limits(cfg)}
        default = st.catalog.default_name
        problem = None
        if default:
            try:
                predictor = st.catalog.get(default)
            except CatalogError as exc:
                problem = str(exc)
            else:
                session.set_model(default, predictor)
                hello.update(model=default, classes=predictor.classes, window=predictor.window)
        _start_actuation(st, session)
        hello["recording"] = {"enabled": st.archive.root is not None, "all": st.config.record}
        emit("hello", hello)
        emit("actuators", {"actuators": st.actuation.browser_targets()})
        if st.config.record:
            start_recording(st, session)
        if problem:
            _error(problem, "bad_model", "connect")

    @socketio.on("disconnect")
    def on_disconnect(reason: Any = None) -> None:
        session = state().sessions.pop(request.sid)
        if session is not None:
            session.inbox.close()  # the worker stops; queued frames are never classified
            with session.lock:
                session.close()

    @socketio.on("select_model")
    @_guarded("select_model")
    def on_select(session: LiveSession, payload: Any = None) -> None:
        name, every = parse_select(payload)
        st = state()
        session.inbox.clear()
        session.ended = False
        if name is None:
            # "(none)": classification stops, and the actuators get their off action with the old stream.
            session.clear_model()
            if every is not None:
                session.every = every
            session.end_actuation()
            selected: dict[str, Any] = {"name": None, "classes": [], "window": None, "every": session.every}
        else:
            predictor = st.catalog.get(name)
            session.set_model(name, predictor, every)
            _restart_actuation(st, session)  # the old model's bout ends with its stream
            selected = {"name": name, "classes": predictor.classes, "window": predictor.window,
                        "every": session.every}
        if session.recorder is not None:
            session.recorder.event("model", {"model": model_record(st, session)})
        emit("model_selected", selected)

    @socketio.on("reset")
    @_guarded("reset")
    def on_reset(session: LiveSession, payload: Any = None) -> None:
        session.inbox.clear()  # frames of the old stream
        session.ended = False
        session.reset()
        # A new source: server-side pose starts tracking afresh (its clock may restart at 0),
        # and the actuators see the old stream end (off actions) before the new one starts.
        # A recording ends with its stream: one session folder per stream.
        recording = session.recorder is not None
        finish_recording(session)
        session.close()
        st = state()
        _start_actuation(st, session)
        if st.config.record and recording:
            start_recording(st, session)

    register_recording_event(socketio, _guarded)

    @socketio.on("keypoints")
    @_guarded("keypoints", locked=False)
    def on_keypoints(session: LiveSession, payload: Any = None) -> None:
        t0 = time.perf_counter()
        if state().config.peer_compat and is_peer_payload(payload):
            payload = to_spml_keypoints(session, payload)  # StreamPoseML's client: docs/web_app.md
        msg = parse_keypoints(payload)
        if session.recorder is not None:
            # The recorder is shared with the worker (predictions): write under the session's lock.
            with session.lock:
                session.check_order(msg.frame, msg.t_ms, "keypoints")
                session.recorder.frame(msg.frame, msg.t_ms, msg.xyzv, msg.width, msg.height)
                if session.predictor is None:  # recording without a model: nothing to classify
                    session.last_t_ms = msg.t_ms
                    return
        # Classified on the session's worker; its age counts from now (newest wins when behind).
        submit(state().socketio, session, _process, "keypoints", msg, t0)

    @socketio.on("frame")
    @_guarded("frame", locked=False)
    def on_frame(session: LiveSession, payload: Any = None) -> None:
        t0 = time.perf_counter()
        st = state()
        msg = parse_frame(payload, st.config.max_frame_bytes)
        session.check_order(msg.frame, msg.t_ms, "frame")
        # Pose estimation and classification run on the session's worker (newest wins when behind).
        submit(st.socketio, session, _process, "frame", msg, t0)

    def _process(session: LiveSession, item: Item) -> None:
        """The worker's step: one fresh frame, classified (after server-side pose for `frame`)."""
        st = state()
        msg, t0 = item.msg, item.received
        if session.ended:
            # The first frame after an end of stream starts a new one (its own actuation session).
            session.ended = False
            session.reset()
            _restart_actuation(st, session)
        if item.event == "keypoints":
            result = session.push(msg.frame, msg.t_ms, msg.xyzv, msg.width, msg.height, t0)
            if result is not None:
                _emit_prediction(session, result, t0)
            return
        from spml_web.jpeg import decode_jpeg

        rgb = decode_jpeg(msg.image, st.config.max_frame_pixels)
        if session.estimator is None:
            session.estimator = st.registry.create(  # type: ignore[assignment]
                "pose_estimator", st.config.pose_estimator, {"model": st.config.pose_model}
            )
        xyzv, _world = session.estimator.process_frame(rgb, msg.t_ms)  # type: ignore[union-attr]
        height, width = rgb.shape[:2]
        recorder = session.recorder
        if recorder is not None:
            recorder.frame(msg.frame, msg.t_ms, xyzv, width, height)
        person = not bool(_isnan_all(xyzv))
        st.socketio.emit("pose", {"frame": msg.frame, "t_ms": msg.t_ms, "width": width, "height": height,
                      "landmarks": xyzv.tolist() if person else None,
                      "latency_ms": (time.perf_counter() - t0) * 1000.0}, to=session.sid)
        if session.predictor is None:
            session.last_t_ms = msg.t_ms
            return
        result = session.push(msg.frame, msg.t_ms, xyzv, width, height, t0)
        if result is not None:
            _emit_prediction(session, result, t0)

    @socketio.on("end_stream")
    def on_end_stream(payload: Any = None) -> None:
        session = state().sessions.get(request.sid)
        if session is None:
            return
        reason = payload.get("reason") if isinstance(payload, dict) else None
        reason = reason if reason in ("stop", "replay_end", "hidden", "closed") else "stop"
        emit("stream_ended", end_stream(session, reason))

    @socketio.on(MALFORMED_EVENT)
    @_guarded(MALFORMED_EVENT)
    def on_malformed(session: LiveSession, payload: Any = None) -> None:
        message = payload.get("message") if isinstance(payload, dict) else None
        raise ProtocolError(str(message or "malformed Socket.IO message"), code="malformed")

    @socketio.on("health_ping")
    @_guarded("health_ping")
    def on_health(session: LiveSession, payload: Any = None) -> None:
        t = payload.get("t") if isinstance(payload, dict) else None
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            t = None
        emit("health_pong", {"t": t, "server_time_ms": time.time() * 1000.0, "model": session.model_name,
                             "frames": session.frames, "predictions": session.predictions})


def _isnan_all(xyzv: Any) -> bool:
    import numpy as np

    return bool(np.isnan(xyzv[:, 0]).all())
