"""A hard size limit on WebSocket messages, enforced while reading; late keypoints shed unread.

Engine.IO checks ``max_http_buffer_size`` only after a whole WebSocket message has been
buffered, so one client could make the server hold any amount of memory. simple-websocket can
refuse a message while reading it (close code 1009, "Message is too big") when told the limit;
Engine.IO builds its WebSocket wrapper from a per-server driver table, which is where the limit
goes in. simple-websocket 1.1 can then miss the end of the connection (its reader may wake up
before it marks the socket closed and wait again), so ``wait()`` polls with a timeout and
checks the connection state: a refused client's session is gone in about a second, not after
the ping timeout.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from simple_websocket import ConnectionClosed

from spml_web.arrival import StampedBuffer, current, is_sheddable

POLL_S = 1.0


class BoundedWebSocket(SimpleWebSocketWSGI):
    """Engine.IO's threading WebSocket wrapper, with a read-time size limit that always ends cleanly, and
    keypoints frames older than ``max_age_ms`` shed before they are parsed (arrival.py)."""

    def __init__(self, handler: Any, server: Any, max_age_ms: float | None = None,
                 pause: Callable[[], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(handler, server, **kwargs)
        self.max_age_s = max_age_ms / 1000.0 if max_age_ms else None
        self.pause = pause

    def __call__(self, environ: Any, start_response: Any) -> Any:
        """SimpleWebSocketWSGI.__call__, with the stamped input buffer in place before any message arrives."""
        self.ws = simple_websocket.Server(environ, **self.server_args)
        if self.pause is not None:
            # Its reader greenlet starts at the next switch, so it reads through the yielding socket.
            self.ws.sock = YieldingSocket(self.ws.sock, self.pause)
        # The client speaks only after the server's Engine.IO open packet, sent by the handler below.
        self.ws.input_buffer = self.buffer = StampedBuffer()
        ret = self.app(self)
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        if self.ws.mode == "werkzeug":
            raise ConnectionError()
        return ret

    def wait(self) -> Any:
        """The next message, or None once the connection is closed."""
        arrival = current()
        while True:
            if self.pause is not None and self.buffer:
                # Greenlets are not preempted: a client whose messages are already buffered (a flood)
                # would otherwise keep the hub to itself until its buffer is empty.
                self.pause()
            try:
                data = self.ws.receive(timeout=POLL_S)
            except ConnectionClosed:
                return None
            if data is None:
                if not self.ws.connected:
                    return None
                continue
            received = self.buffer.popped_at
            age_s = time.perf_counter() - received
            if self.max_age_s is not None and age_s > self.max_age_s and is_sheddable(data):
                arrival.shed.add(data, age_s * 1000.0)
                continue
            arrival.received = received
            return data


class YieldingSocket:
    """A socket whose every recv first lets the other greenlets run (gevent mode).

    simple-websocket's reader loops recv-parse-recv, and gevent's recv returns at once while data is
    waiting, so a client that keeps its socket full (a flood) would keep the hub to itself for as long as
    it sends: every other connection's frames would wait behind its parsing.
    """

    def __init__(self, sock: Any, pause: Callable[[], Any]) -> None:
        self._sock = sock
        self._pause = pause

    def recv(self, bufsize: int) -> bytes:
        """Yield, then read."""
        self._pause()
        return self._sock.recv(bufsize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def limit_websocket_messages(eio: Any, max_bytes: int, max_age_ms: float | None = None) -> None:
    """Make an Engine.IO server (threading mode) refuse WebSocket messages over max_bytes while reading,
    and shed keypoints events that waited longer than max_age_ms in the socket's buffer."""
    if "websocket" not in eio._async:
        return
    extra: dict[str, Any] = {}
    if eio.async_mode == "gevent":  # simple-websocket's reader as a greenlet, as Engine.IO's gevent driver does
        import gevent.event
        import gevent.selectors
        from engineio.async_drivers.gevent import Thread

        extra = {"thread_class": Thread, "event_class": gevent.event.Event,
                 "selector_class": gevent.selectors.DefaultSelector, "pause": gevent.sleep}
    eio._async = {**eio._async, "websocket": functools.partial(BoundedWebSocket, max_message_size=max_bytes,
                                                                max_age_ms=max_age_ms, **extra)}
