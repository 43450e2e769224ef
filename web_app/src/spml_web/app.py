"""The Flask app factory: it wires the HTTP routes (http_routes.py) and the Socket.IO live protocol
(socket_events.py, docs/protocol.md) to one WebState on ``app.extensions["spml"]`` (state.py).

Actuation (docs/actuation.md): one :class:`ActuationHub` per app drives the configured actuators;
each connection has its own :class:`ActuationSession` (its own decision state) that is fed every
prediction after it has been emitted, and is closed (off actions) on disconnect, reset, a model
switch and app shutdown (:func:`close_app`).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface
from flask_socketio import SocketIO
from spml_core import ActuationHub
from spml_core.registry import Registry

from spml_web import fast_path
from spml_web.catalog import ModelCatalog
from spml_web.concurrency import Runner
from spml_web.fairness import Fairness
from spml_web.guard import HostGuard
from spml_web.http_routes import (
    register_http,
)
from spml_web.limits import limit_websocket_messages
from spml_web.packets import TolerantPacket
from spml_web.recording import SessionArchive
from spml_web.session_api import (
    register_session_api,
)
from spml_web.sessions import SessionStore
from spml_web.settings import WebConfig, as_config
from spml_web.socket_events import register_socket
from spml_web.state import WebState, state
from spml_web.vendor import STATIC_DIR

log = logging.getLogger("spml.web")

class NoSessions(SessionInterface):
    """Flask sessions switched off: every request gets the same cheap null session."""

    def open_session(self, app: Flask, request: Any) -> Any:
        """No cookie is read."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        """No cookie is set."""


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
        async_mode=cfg.async_mode,  # concurrency.py: why gevent is the default
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
    limit_websocket_messages(socketio.server.eio, cfg.max_message_bytes, cfg.max_age_ms)
    # Outermost, so the Socket.IO handshake is checked too (DNS rebinding, access token).
    guard = HostGuard(app.wsgi_app, cfg.allowed_hosts, cfg.access_token)
    app.wsgi_app = guard  # type: ignore[method-assign]
    app.extensions["spml_guard"] = guard
    runner = Runner(cfg.async_mode or "threading")
    app.extensions["spml_fairness"] = Fairness(socketio.server, cfg.max_events_per_s, cfg.idle_timeout_s,
                                               cfg.max_sessions_per_client, runner)
    catalog = ModelCatalog(cfg.models_dir, cfg.model, registry=registry, check_timeout_s=cfg.bundle_check_timeout_s,
                           check_memory_bytes=cfg.bundle_check_memory_mb << 20)
    catalog.run_blocking = runner.blocking
    if cfg.model is not None:
        catalog.get(catalog.default_name or "")  # fail at start-up, not on the first connection
    # Built last: its runner threads start connecting to the devices at once (a bad actuator
    # config raises ConfigError naming actuators.N... before any thread is left behind).
    actuation = ActuationHub(cfg.actuators, registry, base_dir=cfg.actuation_dir)
    app.extensions["spml"] = WebState(cfg, registry, catalog, SessionStore(), socketio, actuation,
                                      SessionArchive(cfg.sessions_dir), runner)
    register_http(app)
    register_session_api(app)
    register_socket(socketio)
    if runner.greenlets:
        fast_path.install(socketio.server, app.extensions["spml_fairness"])
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
