"""The Socket.IO live protocol (docs/protocol.md): connect, model selection, keypoints and frames, end of stream."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import current_app, request
from flask_socketio import SocketIO, emit
from spml_core.errors import SpmlError

from spml_web import __version__
from spml_web.arrival import current
from spml_web.batcher import BATCH_MIN_SESSIONS, Batcher
from spml_web.catalog import CatalogError
from spml_web.fast_path import emit_now
from spml_web.http_routes import client_limits
from spml_web.inbox import Inbox, Item
from spml_web.live_worker import end_stream, start_worker, submit
from spml_web.packets import MALFORMED_EVENT
from spml_web.peer_compat import frame_result, is_peer_payload, to_spml_keypoints
from spml_web.protocol import (
    ProtocolError,
    parse_frame,
    parse_keypoints,
    parse_select,
)
from spml_web.session_api import (
    finish_recording,
    model_record,
    record_shed,
    register_recording_event,
    start_recording,
)
from spml_web.sessions import LiveSession
from spml_web.state import WebState, state

log = logging.getLogger("spml.web")


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
        # Called from the connection's thread or an actuator's (the dead-man watchdog): a server-level
        # emit, on the hub's loop in gevent mode (concurrency.py).
        st.runner.call_soon(lambda: socketio.emit("action", event, to=sid))
        recorder = session.recorder
        if recorder is not None:
            recorder.event("action", event)

    session.actuation = st.actuation.session(emit=emit_action, session_id=sid)


def _restart_actuation(st: WebState, session: LiveSession) -> None:
    """A new stream (reset, another model): end the old one's actions, start afresh."""
    session.end_actuation()
    _start_actuation(st, session)


def _emit_prediction(session: LiveSession, result: dict[str, Any], t0: float, st: WebState | None = None) -> None:
    result["latency_ms"] = (time.perf_counter() - t0) * 1000.0
    st = st or state()
    recorder = session.recorder  # read once: `record` (another thread) may end it meanwhile
    if recorder is not None:
        recorder.event("prediction", result)  # before its actions, which act() records
    # The decision layer first (microseconds; devices are driven on their own threads): a page's Bluetooth
    # write starts on the `action` message, which would otherwise wait in the page behind the prediction's
    # handling (3-5 ms at the median, up to 15 ms at p95 in benchmarks/e2e.py).
    session.act(result)
    # A server-level emit: predictions are made on the session's worker thread (or the batcher's greenlet,
    # which writes to the WebSocket itself when it can).
    if not (st.runner.greenlets and emit_now(st.socketio.server, session.sid, "prediction", result)):
        st.socketio.emit("prediction", result, to=session.sid)
    if getattr(session, "peer", False) and session.predictor is not None:  # a StreamPoseML client (peer_compat)
        st.socketio.emit("frame_result", frame_result(result, list(session.predictor.classes),
                                                      st.config.peer_true_class), to=session.sid)


def register_socket(socketio: SocketIO) -> None:
    """Every Socket.IO event handler of the live protocol."""
    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        st = state()
        if len(st.sessions) >= st.config.max_sessions:
            raise ConnectionRefusedError(f"server is full ({st.config.max_sessions} sessions)")
        cfg = st.config
        session = LiveSession(request.sid, cfg.every, cfg.decision_frames, cfg.decision_threshold, cfg.max_gap_ms)
        session.inbox = Inbox(cfg.max_age_ms)
        session.lock = st.runner.lock()
        st.sessions.add(session)
        st.runner.bind()
        if st.runner.greenlets and st.batcher is None:
            st.batcher = Batcher(current_app._get_current_object(), st.socketio, _prepare,  # type: ignore[attr-defined]
                                 partial(_emit_prediction, st=st), cfg.batch_wait_ms,
                                 lambda: len(st.sessions) >= BATCH_MIN_SESSIONS)
        if not st.runner.greenlets:  # greenlets never leave a frame waiting (live_worker.submit)
            start_worker(current_app._get_current_object(), st.socketio, session, _process)  # type: ignore[attr-defined]
        hello: dict[str, Any] = {"version": __version__, "models": st.catalog.describe(), "model": None,
                                 "every": session.every, "limits": client_limits(cfg)}
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
        t0 = _arrived_for(state(), session)
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
        # Classified on the session's worker (threading) or with this turn's batch (gevent); its age counts
        # from its arrival, and late frames are dropped.
        st = state()
        if st.batcher is not None:
            st.batcher.queue(session, msg, t0)
            return
        submit(st.socketio, session, _process, "keypoints", msg, t0, st.runner.greenlets)

    def on_keypoints_direct(sid: str, payload: Any = None) -> None:
        """`keypoints` as python-socketio delivers it. With the batcher (gevent mode) a frame needs no Flask
        request context, whose set-up per event (URL matching, the cookie session) cost more than parsing
        the frame; otherwise it goes through Flask-SocketIO as every other event does."""
        environ = socketio.server.get_environ(sid)
        st = environ["flask.app"].extensions["spml"] if environ else None
        session = st.sessions.get(sid) if st is not None else None
        if st is None or st.batcher is None or session is None or session.recorder is not None:
            socketio._handle_event(on_keypoints, "keypoints", "/", sid, payload)
            return
        try:
            t0 = _arrived_for(st, session)
            if st.config.peer_compat and is_peer_payload(payload):
                payload = to_spml_keypoints(session, payload)
            st.batcher.queue(session, parse_keypoints(payload), t0)
        except Exception as exc:
            session.errors += 1
            if isinstance(exc, ProtocolError):
                message, code = str(exc), exc.code
            else:  # a bug must not take the session or the server down
                log.error("keypoints handler failed:\n%s", traceback.format_exc())
                message, code = f"keypoints: internal error ({type(exc).__name__}: {exc})", "internal"
            payload_error: dict[str, Any] = {"message": message, "code": code, "event": "keypoints"}
            frame = _frame_of((payload,))
            if frame is not None:
                payload_error["frame"] = frame
            st.socketio.emit("error", payload_error, to=sid)

    socketio.server.on("keypoints", on_keypoints_direct)

    @socketio.on("frame")
    @_guarded("frame", locked=False)
    def on_frame(session: LiveSession, payload: Any = None) -> None:
        t0 = _arrived_for(state(), session)
        st = state()
        msg = parse_frame(payload, st.config.max_frame_bytes)
        session.check_order(msg.frame, msg.t_ms, "frame")
        # Pose estimation and classification run on the session's worker (newest wins when behind).
        submit(st.socketio, session, _process, "frame", msg, t0, st.runner.greenlets)

    def _restart_if_ended(st: WebState, session: LiveSession) -> None:
        if session.ended:
            # The first frame after an end of stream starts a new one (its own actuation session).
            session.ended = False
            session.reset()
            _restart_actuation(st, session)

    def _prepare(session: LiveSession, item: Item) -> Any:
        """The batcher's first step for one `keypoints` frame: the stream it goes to."""
        if session.ended:
            _restart_if_ended(state(), session)
        msg = item.msg
        return session.begin(msg.frame, msg.t_ms, msg.width, msg.height)

    def _process(session: LiveSession, item: Item) -> None:
        """The worker's step: one fresh frame, classified (after server-side pose for `frame`)."""
        st = state()
        msg, t0 = item.msg, item.received
        _restart_if_ended(st, session)
        if item.event == "keypoints":
            result = session.push(msg.frame, msg.t_ms, msg.xyzv, msg.width, msg.height, t0)
            if result is not None:
                _emit_prediction(session, result, t0)
            return
        from spml_web.jpeg import decode_jpeg

        rgb = decode_jpeg(msg.image, st.config.max_frame_pixels)
        if session.estimator is None:
            session.estimator = st.runner.blocking(  # loading the model takes a second: off the hub
                st.registry.create, "pose_estimator", st.config.pose_estimator, {"model": st.config.pose_model}
            )
        # Tens of milliseconds of native code: off the hub in gevent mode, so other connections carry on.
        xyzv, _world = st.runner.blocking(session.estimator.process_frame, rgb, msg.t_ms)  # type: ignore[union-attr]
        height, width = rgb.shape[:2]
        recorder = session.recorder
        if recorder is not None:
            recorder.frame(msg.frame, msg.t_ms, xyzv, width, height, estimator=session.estimator)
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


def _arrived_for(st: WebState, session: LiveSession) -> float:
    """When this frame reached the server's socket (its handler's start without a WebSocket), after
    telling the session about the frames shed unread before it (arrival.py): a late notice and a stale
    decision, and a recording session records them."""
    arrival = current()
    received, arrival.received = arrival.received, None
    shed = arrival.take_shed()
    if shed is not None:
        if session.recorder is not None:
            record_shed(session, shed)
        with session.lock:
            if shed.last_t_ms is not None:
                session.stale(shed.last_t_ms, shed.last_frame)
        session.inbox.dropped += shed.count
        st.socketio.emit("late", _late_notice(session, shed), to=session.sid)
    return received if received is not None else time.perf_counter()


def _late_notice(session: LiveSession, shed: Any) -> dict[str, Any]:
    return {"count": shed.count, "first_frame": shed.first_frame, "last_frame": shed.last_frame,
            "oldest_age_ms": round(shed.oldest_age_ms, 1), "max_age_ms": session.inbox.max_age_ms}


def _isnan_all(xyzv: Any) -> bool:
    import numpy as np

    return bool(np.isnan(xyzv[:, 0]).all())
