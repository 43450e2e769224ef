"""Running the app: Werkzeug's threaded server with TCP_NODELAY, in the foreground or a thread.

Flask-SocketIO's ``threading`` async mode answered fastest with the pinned versions (see
docs/web_app.md for the measurement): every WebSocket gets its own thread, so one client's
slow server-side pose estimation never delays another client. Nagle's algorithm is turned off
on every accepted socket: with it, small binary Socket.IO messages (JPEG frames, predictions)
waited ~40 ms for delayed ACKs.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("spml.web")


class NoDelayRequestHandler(WSGIRequestHandler):
    """Werkzeug request handler that sets TCP_NODELAY on its socket (socketserver honours the flag)."""

    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log requests at debug level only: a 30 Hz stream would flood the console otherwise."""
        log.debug('%s "%s" %s %s', self.address_string(), self.requestline, code, size)

    def log_error(self, format: str, *args: object) -> None:
        """Protocol noise (e.g. a WebSocket's close frame read as HTTP after the socket ends) at debug level."""
        log.debug("%s: " + format, self.address_string(), *args)


def make_app_server(app: Flask, host: str = "127.0.0.1", port: int = 5001, fd: int | None = None) -> BaseWSGIServer:
    """A threaded Werkzeug server for the app (port 0 picks a free port; see .server_port); ``fd``: a listening
    socket shared with other worker processes."""
    guard = app.extensions.get("spml_guard")
    if guard is not None:
        guard.allow_bound(host)  # the address served is a name clients may use
    return make_server(host, port, app, threaded=True, request_handler=NoDelayRequestHandler, fd=fd)


class BackgroundServer:
    """The app served from a daemon thread (tests, benchmarks); use as a context manager."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.server = make_app_server(app, host, port)
        self.host = host
        self.port = int(self.server.server_port)
        self._thread = threading.Thread(target=self.server.serve_forever, name="spml-web", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:51234."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections, close the listening socket, and shut the app's actuators down."""
        from spml_web.app import close_app

        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
        close_app(self.app)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_forever(app: Flask, host: str = "127.0.0.1", port: int = 5001, fd: int | None = None,
                  announce: bool = True) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM, SIGHUP) or an uncaught error, printing the URL; devices get
    their off actions on the way out in every case (SIGKILL and power loss: see heartbeat_ms)."""
    from spml_web.app import close_app

    server = make_app_server(app, host, port, fd)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd, docker stop, kill) and SIGHUP (the terminal closed) shut down like Ctrl-C,
        # so a stimulator is switched off.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _interrupt)
    # Everything imported and built so far (pandas, xgboost, torch, the app) lives as long as the process:
    # moved out of the collector's reach, a full collection takes ~0 ms instead of ~35 ms, a pause every
    # connection would otherwise wait out.
    gc.collect()
    gc.freeze()
    if announce:
        print(f"spml serve: http://{host}:{server.server_port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    except BaseException:
        log.critical("the server stopped on an uncaught error; switching devices off", exc_info=True)
        raise
    finally:
        server.server_close()
        close_app(app)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
