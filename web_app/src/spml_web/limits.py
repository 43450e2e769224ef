"""A hard size limit on WebSocket messages, enforced while reading.

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
from typing import Any

from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from simple_websocket import ConnectionClosed

POLL_S = 1.0


class BoundedWebSocket(SimpleWebSocketWSGI):
    """Engine.IO's threading WebSocket wrapper, with a read-time size limit that always ends cleanly."""

    def wait(self) -> Any:
        """The next message, or None once the connection is closed."""
        while True:
            try:
                data = self.ws.receive(timeout=POLL_S)
            except ConnectionClosed:
                return None
            if data is not None:
                return data
            if not self.ws.connected:
                return None


def limit_websocket_messages(eio: Any, max_bytes: int) -> None:
    """Make an Engine.IO server (threading mode) refuse WebSocket messages over max_bytes while reading."""
    if "websocket" in eio._async:
        eio._async = {**eio._async, "websocket": functools.partial(BoundedWebSocket, max_message_size=max_bytes)}
