"""How the server runs its work: one OS thread per connection (``threading``) or greenlets on one hub (``gevent``).

Both are async modes Flask-SocketIO supports. In ``threading`` mode every WebSocket has four
threads (the request's, simple-websocket's reader, Engine.IO's writer, the session's worker), and
each frame hands the GIL from one to the next: on 2 cores with 20 cameras at 30 Hz that costs
more than classifying the frame (docs/web_app.md, "Capacity"). In ``gevent`` mode the same steps
are greenlet switches on one thread, a fraction of the cost, and ``--workers N`` processes use
the other cores.

gevent mode runs without monkey-patching the standard library, so the actuators' own threads and
asyncio loops (bumble) stay real threads. The rules that keep that safe live here:

* work from another OS thread that touches a Socket.IO connection (an actuator's ``action``
  event, the idle reaper closing a connection) goes through :meth:`Runner.call_soon`, which hands
  it to the hub's loop;
* slow blocking calls (server-side pose estimation, the child-process check of an uploaded
  bundle, zipping a recorded session) go through :meth:`Runner.blocking`, which runs them on the
  hub's thread pool so that every other connection carries on meanwhile.

In ``threading`` mode both are plain calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

AsyncMode = Literal["threading", "gevent"]
ASYNC_MODES: tuple[str, ...] = ("threading", "gevent")


class Runner:
    """The server's concurrency rules for one app (see the module doc)."""

    def __init__(self, mode: AsyncMode) -> None:
        self.mode = mode
        self._hub: Any = None
        self._hub_thread: int | None = None

    @property
    def greenlets(self) -> bool:
        """Whether connections are greenlets on one hub (gevent mode)."""
        return self.mode == "gevent"

    def bind(self) -> None:
        """Remember the hub of the serving thread (called from a connection's own handler; idempotent)."""
        if self.greenlets and self._hub is None:
            import gevent

            self._hub, self._hub_thread = gevent.get_hub(), threading.get_ident()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` where connections live: now when on the serving thread, else on the hub's loop."""
        if self._hub is None or threading.get_ident() == self._hub_thread:
            fn(*args)
            return
        self._hub.loop.run_callback_threadsafe(fn, *args)

    def lock(self) -> Any:
        """A lock for state that connections share: greenlet-aware in gevent mode, where a greenlet may wait
        on the thread pool while holding it and a plain lock would stall the whole hub."""
        if not self.greenlets:
            return threading.Lock()
        import gevent.lock

        return gevent.lock.Semaphore(1)

    def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a slow blocking function without stalling the other connections; its result."""
        if not self.greenlets:
            return fn(*args)
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)
