"""A hard size limit on WebSocket messages, enforced while reading; late keypoints shed unread.

Engine.IO checks ``max_http_buffer_size`` only after a whole WebSocket message has been
buffered, so one client could make the server hold any amount of memory. Engine.IO builds its
WebSocket wrapper from a per-server driver table, which is where the limit goes in:

* threading mode: simple-websocket, which can refuse a message while reading it (close code 1009,
  "Message is too big") when told the limit. simple-websocket 1.1 can then miss the end of the
  connection (its reader may wake up before it marks the socket closed and wait again), so
  ``wait()`` polls with a timeout and checks the connection state: a refused client's session is
  gone in about a second, not after the ping timeout.
* gevent mode: websocket.DirectWebSocket, read by the connection's own greenlet (that module says
  why), which refuses an oversized message from its header, before its payload arrives.
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

    def __init__(self, handler: Any, server: Any, max_age_ms: float | None = None, **kwargs: Any) -> None:
        super().__init__(handler, server, **kwargs)
        self.max_age_s = max_age_ms / 1000.0 if max_age_ms else None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        """SimpleWebSocketWSGI.__call__, with the stamped input buffer in place before any message arrives."""
        self.ws = simple_websocket.Server(environ, **self.server_args)
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


class DirectWebSocketWSGI:
    """Engine.IO's WebSocket wrapper in gevent mode, over websocket.DirectWebSocket: the same size limit
    (close code 1009 while reading) and late keypoints shed before they are parsed, with no reader greenlet."""

    def __init__(self, handler: Any, server: Any, max_message_size: int | None = None,
                 max_age_ms: float | None = None, pause: Callable[[], Any] | None = None) -> None:
        self.app = handler
        self.max_message_size = max_message_size
        self.max_age_s = max_age_ms / 1000.0 if max_age_ms else None
        self.pause = pause
        self.ws: Any = None
        self.owner: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        """Answer the opening handshake (or 400) and run Engine.IO's handler on this connection."""
        from spml_web.websocket import DirectWebSocket, HandshakeError

        try:
            self.ws = DirectWebSocket(environ, self.max_message_size, self.pause)
        except HandshakeError as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [str(exc).encode()]
        self.owner = getattr(self.app, "__self__", None)  # the Engine.IO socket whose handler this is
        if self.owner is not None:
            self.owner.spml_ws = self.ws  # for fast_path.emit_now
        return self.app(self)

    def close(self) -> None:
        """Close the connection (a close frame, then the socket)."""
        self.ws.close()

    def send(self, message: Any) -> None:
        """Send one Engine.IO packet (OSError once closed, as Engine.IO's writer expects)."""
        self.ws.send(message)

    def wait(self) -> Any:
        """The next message, or None once the connection is closed."""
        arrival = current()
        ws, owner = self.ws, self.owner
        fast = getattr(getattr(owner, "server", None), "spml_fast_message", None)
        while True:
            data = ws.receive()
            if data is None:
                return None
            received = ws.received_at
            if not is_sheddable(data):
                arrival.received = received
                ws.handling()
                return data
            age_s = time.perf_counter() - received
            if self.max_age_s is not None and age_s > self.max_age_s:
                arrival.shed.add(data, age_s * 1000.0)
                continue
            arrival.received = received
            if fast is not None and owner.upgraded and not owner.upgrading and fast(owner.sid, data):
                continue  # handled here (fast_path.py), past Engine.IO's and Socket.IO's layers; never waits
            ws.handling()
            return data


def limit_websocket_messages(eio: Any, max_bytes: int, max_age_ms: float | None = None) -> None:
    """Make an Engine.IO server refuse WebSocket messages over max_bytes while reading, and shed keypoints
    events that waited longer than max_age_ms after they were read off the socket."""
    if "websocket" not in eio._async:
        return
    if eio.async_mode == "gevent":
        import gevent

        wrapper = functools.partial(DirectWebSocketWSGI, max_message_size=max_bytes, max_age_ms=max_age_ms,
                                    pause=gevent.sleep)
    else:
        wrapper = functools.partial(BoundedWebSocket, max_message_size=max_bytes, max_age_ms=max_age_ms)
    eio._async = {**eio._async, "websocket": wrapper}
