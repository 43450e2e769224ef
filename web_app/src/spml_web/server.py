"""Running the app: gevent's WSGI server (gevent mode, the default) or Werkzeug's threaded server, with
TCP_NODELAY, in the foreground or a thread (concurrency.py says why gevent). Nagle's algorithm is turned off
on every accepted socket: with it, small binary Socket.IO messages (JPEG frames, predictions)
waited ~40 ms for delayed ACKs.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from werkzeug.serving import WSGIRequestHandler, make_server

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


def make_app_server(app: Flask, host: str = "127.0.0.1", port: int = 5001, fd: int | None = None) -> Any:
    """The app's server (port 0 picks a free port; see .server_port): gevent's WSGI server in gevent mode, else a
    threaded Werkzeug server; ``fd``: a listening socket shared with other worker processes."""
    guard = app.extensions.get("spml_guard")
    if guard is not None:
        guard.allow_bound(host)  # the address served is a name clients may use
    spml = app.extensions.get("spml")
    if spml is not None and spml.runner.greenlets:
        return GeventAppServer(app, host, port, fd)
    return make_server(host, port, app, threaded=True, request_handler=NoDelayRequestHandler, fd=fd)


class GeventAppServer:
    """gevent's WSGI server behind the Werkzeug server's interface (server_port, serve_forever, shutdown,
    server_close), with Nagle's algorithm off on every connection and no access log."""

    def __init__(self, app: Flask, host: str, port: int, fd: int | None = None) -> None:
        self.app = app
        if fd is not None:
            self._sock = socket.socket(fileno=os.dup(fd))
        else:
            self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(1024)
        self.server_port = int(self._sock.getsockname()[1])
        self._server: Any = None
        self._hub: Any = None
        self._done = threading.Event()

    def serve_forever(self) -> None:
        """Serve on this thread's hub until shutdown()."""
        import gevent
        from gevent import socket as gsocket
        from gevent.pywsgi import WSGIHandler, WSGIServer

        class Handler(WSGIHandler):  # type: ignore[misc]
            def handle(self) -> None:
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().handle()

        # A gevent socket belongs to the hub of the thread that made it: made here, where it is served.
        listener = gsocket.socket(fileno=self._sock.detach())
        self._server = WSGIServer(listener, self.app, handler_class=Handler, log=None, error_log=_ErrorLog())
        self._hub = gevent.get_hub()
        try:
            self._server.serve_forever()
        finally:
            self._done.set()

    def shutdown(self) -> None:
        """Stop serving (from any thread); returns once serve_forever() has."""
        import gevent

        if self._hub is None:
            return
        # The server belongs to its hub: stop it there, in a greenlet (stop() waits for connections).
        self._hub.loop.run_callback_threadsafe(gevent.spawn, self._server.stop, 1.0)
        self._done.wait(5.0)

    def server_close(self) -> None:
        """Close the listening socket."""
        if self._server is not None:
            self._server.close()
        elif self._sock.fileno() >= 0:
            self._sock.close()


class _ErrorLog:
    """gevent's error log into the spml.web logger (a client resetting its connection is not news)."""

    def write(self, text: str) -> None:
        """One chunk of gevent's error output."""
        if text.strip():
            log.debug("%s", text.rstrip())

    def flush(self) -> None:
        """Nothing buffered."""


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
    watchers: list[Any] = []
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd, docker stop, kill) and SIGHUP (the terminal closed) shut down like Ctrl-C,
        # so a stimulator is switched off.
        if isinstance(server, GeventAppServer):
            # An idle hub sleeps in C and would run a Python signal handler only when woken: the
            # hub's own signal watchers deliver the interrupt at once.
            import gevent

            main = gevent.getcurrent()
            watchers = [gevent.signal_handler(sig, gevent.kill, main, KeyboardInterrupt)
                        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)]
        else:
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
        for watcher in watchers:
            watcher.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
