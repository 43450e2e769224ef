"""When each WebSocket message reached the server, and the keypoints frames shed before the handler saw them.

Under overload the backlog does not build up in a session's inbox but one step earlier: in the
WebSocket's own buffer, where its reader puts every message it reads while the connection's handler
is still busy with an older one. A frame stamped only when its handler starts would look fresh after
waiting seconds there. So every message is stamped when it is taken off the socket (threading mode:
simple-websocket's reader thread appends to a :class:`StampedBuffer`; gevent mode: websocket.py stamps
each chunk it reads), and a ``keypoints`` event is shed right there, before any JSON is parsed, when it is older than the server's ``max_age_ms``: cheaply, so an
overloaded server spends its time on fresh frames and gives fewer predictions rather than later ones.

The handler of the message that is returned runs on the same thread (Flask-SocketIO with
``async_handlers=False``), which reads the message's arrival time and the shed frames from
:func:`current` to stamp its frame and to send the client a ``late`` notice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import greenlet

KEYPOINTS_PREFIX = '42["keypoints",'  # a text event on the main namespace (binary events are never shed)
_FRAME = re.compile(r'"frame":(-?\d+)')
_T_MS = re.compile(r'"t_ms":(-?[0-9.eE+-]+)')
KEEP_SHED = 900  # 30 s of a 30 Hz camera, about 0.8 MB


class StampedBuffer(list):  # type: ignore[type-arg]
    """simple-websocket's input buffer, recording when each message was appended (by its reader thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.popped_at = 0.0

    def append(self, item: Any) -> None:
        """Stamp, then append: a consumer that sees the message always finds its time."""
        self.times.append(time.perf_counter())
        super().append(item)

    def pop(self, index: Any = -1) -> Any:
        """Pop the message and remember when it arrived (``popped_at``)."""
        item = super().pop(index)
        self.popped_at = self.times.pop(index) if self.times else time.perf_counter()
        return item


@dataclass
class Shed:
    """Keypoints frames shed on one connection since its last keypoints event was handled."""

    count: int = 0
    first_frame: int | None = None
    last_frame: int | None = None
    last_t_ms: float | None = None
    oldest_age_ms: float = 0.0
    # The raw messages, for a session that records (session_api.record_shed): a recording keeps every
    # frame the client sent, classified or not. At most KEEP_SHED of them per stall.
    messages: list[str] = field(default_factory=list)

    def add(self, message: str, age_ms: float) -> None:
        """Count one shed message (frame number and time read without parsing the landmarks)."""
        if len(self.messages) < KEEP_SHED:
            self.messages.append(message)
        frame = _FRAME.search(message)
        t_ms = _T_MS.search(message)
        number = int(frame.group(1)) if frame else None
        if self.count == 0:
            self.first_frame, self.oldest_age_ms = number, age_ms
        self.count += 1
        self.last_frame = number
        try:
            self.last_t_ms = float(t_ms.group(1)) if t_ms else self.last_t_ms
        except ValueError:
            pass


@dataclass
class Arrival:
    """The message being handled on this thread: its arrival time and what was shed before it."""

    received: float | None = None
    shed: Shed = field(default_factory=Shed)

    def take_shed(self) -> Shed | None:
        """The frames shed so far (then forgotten), or None."""
        if self.shed.count == 0:
            return None
        shed, self.shed = self.shed, Shed()
        return shed


def current() -> Arrival:
    """This connection's arrival record: one per handler thread, or per greenlet in gevent mode.

    In gevent mode every connection's handler runs on the hub's one thread, and a handler that sheds
    frames yields to the others before it reads on: a thread-local record would hand one connection's
    shed frames (and its late notice) to whichever connection ran next. greenlet.getcurrent() is the
    thread's own main greenlet in threading mode, so one key serves both.
    """
    owner = greenlet.getcurrent()
    record = getattr(owner, "spml_arrival", None)
    if record is None:
        record = owner.spml_arrival = Arrival()
    return record


def is_sheddable(message: Any) -> bool:
    """Whether a raw message is a plain-text keypoints event (the only kind shed when late)."""
    return isinstance(message, str) and message.startswith(KEYPOINTS_PREFIX)
