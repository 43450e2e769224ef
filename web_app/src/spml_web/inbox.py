"""Bounded per-session input where the newest frame wins (docs/protocol.md, "Staleness").

The Socket.IO handler only stamps each frame with the time the server received it and queues
it; the session's worker takes frames in order. A frame older than the bound (``max_age_ms``,
default 250 ms) when the worker reaches it is dropped, never classified and never actuates: after
a stall the backlog is discarded, not replayed. The queue also holds at most ``capacity`` frames;
when full, the oldest goes. The time grid interpolates across dropped frames, so the window of
the frames that remain still covers the bundle's duration.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Item:
    """One queued frame: its event (keypoints or frame), parsed message and receipt time."""

    event: str
    msg: Any
    received: float  # time.perf_counter() when the handler got it

    def age_ms(self, now: float | None = None) -> float:
        """Milliseconds since the server received the frame."""
        return ((time.perf_counter() if now is None else now) - self.received) * 1000.0


class Inbox:
    """A session's queue of frames: put() from the socket handler, take() from the worker."""

    def __init__(self, max_age_ms: float = 250.0, capacity: int = 64) -> None:
        self.max_age_ms = float(max_age_ms)
        self.capacity = int(capacity)
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._overflow: list[Item] = []
        self._woken = threading.Event()
        self.dropped = 0

    def put(self, event: str, msg: Any, received: float | None = None) -> None:
        """Queue one frame (the oldest is dropped when the queue is full)."""
        item = Item(event, msg, time.perf_counter() if received is None else received)
        with self._cond:
            if self._closed:
                return
            self._items.append(item)
            while len(self._items) > self.capacity:
                self._overflow.append(self._items.popleft())
            # No notify: the handler that queued it drains it at once when the session is idle, and
            # wakes the worker only when it cannot (live_worker.py).

    def take(self, timeout: float | None = None) -> tuple[Item | None, list[Item]]:
        """(the next fresh frame or None, the frames dropped as late since the last take).

        Blocks until a frame arrives (or ``timeout`` seconds pass, or the inbox is closed).
        """
        with self._cond:
            if not self._items and not self._overflow and not self._closed:
                self._cond.wait(timeout)
            late, self._overflow = self._overflow, []
            now = time.perf_counter()
            while self._items and self._items[0].age_ms(now) > self.max_age_ms:
                late.append(self._items.popleft())
            item = self._items.popleft() if self._items else None
            self.dropped += len(late)
            return item, late


    def wake(self) -> None:
        """Tell the worker a frame is waiting for it."""
        self._woken.set()

    def wait(self, timeout: float) -> bool:
        """Block until wake() or close() (True), or ``timeout`` seconds pass (False)."""
        woken = self._woken.wait(timeout)
        self._woken.clear()
        return woken

    def clear(self) -> int:
        """Forget every queued frame (a stream ended or restarted); how many there were."""
        with self._cond:
            n = len(self._items) + len(self._overflow)
            self._items.clear()
            self._overflow = []
            return n

    def close(self) -> None:
        """Stop: queued frames are forgotten and take() returns at once from now on."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._overflow = []
            self._cond.notify_all()
        self._woken.set()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)
