"""gevent mode: `keypoints` in and predictions out past Engine.IO's and Socket.IO's per-message layers.

At 30 Hz per camera the two libraries' generic path (packet objects, logging calls, handler lookup
through three dispatchers; on the way out, a queue and a writer greenlet per connection) cost about as
much as the WebSocket itself. Both shortcuts produce exactly what the libraries would have:

* :func:`handle_keypoints` takes a plain-text `keypoints` event (``42["keypoints",{...}]``) from the
  connection's WebSocket (limits.DirectWebSocketWSGI), applies the connection's rate limit and calls
  the registered handler, as python-socketio would; anything else, or anything it cannot parse, takes
  the usual path (which answers malformed JSON with an ``error`` event).
* :func:`emit_now` writes an event straight to the connection's WebSocket when nothing is queued ahead
  of it and the write need not wait; otherwise the caller emits as usual.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from socketio import packet

from spml_web.fairness import Fairness
from spml_web.packets import TolerantPacket

log = logging.getLogger("spml.web")


def install(sio: Any, fairness: Fairness) -> None:
    """Let the gevent-mode WebSockets of this Socket.IO server hand `keypoints` events to handle_keypoints."""
    sio.eio.spml_fast_message = partial(handle_keypoints, sio, fairness)


def handle_keypoints(sio: Any, fairness: Fairness, eio_sid: str, text: str) -> bool:
    """Dispatch one raw `keypoints` event as python-socketio would; False: not taken (use the usual path)."""
    if sio.packet_class is not TolerantPacket or eio_sid in sio._binary_packet:
        return False  # another encoding, or attachments pending: only python-socketio knows what this is
    if not fairness.admit(eio_sid, text):
        return True
    try:
        try:
            data = sio.packet_class.json.loads(text[2:])
        except (ValueError, RecursionError):
            data = None
        if not (isinstance(data, list) and 1 <= len(data) <= 2):
            sio._handle_eio_message(eio_sid, text)  # the usual path: a malformed_packet error event
            return True
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not sio.manager.is_connected(sid, "/"):
            return True  # as python-socketio: an event before the namespace is connected is ignored
        handler = sio.handlers.get("/", {}).get("keypoints")
        if handler is not None:
            handler(sid, *data[1:])
    except Exception:  # as Engine.IO's dispatcher: log, and the connection carries on
        log.exception("keypoints handler failed")
    finally:
        fairness.touch(eio_sid)
    return True


def emit_now(sio: Any, sid: str, event: str, data: Any) -> bool:
    """Write one event straight to a session's WebSocket (gevent mode, on the hub's thread); whether it was."""
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    sock = sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
    ws = getattr(sock, "spml_ws", None)
    if ws is None or sock.closed or sock.upgrading or not sock.upgraded or not sock.queue.empty():
        return False  # order first: whatever is queued goes out before this
    encoded = sio.packet_class(packet.EVENT, data=[event, data]).encode()
    if not isinstance(encoded, str):  # attachments, or a binary serializer: python-socketio's way
        return False
    return bool(ws.send_now("4" + encoded))  # "4": an Engine.IO message
