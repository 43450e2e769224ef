"""gevent mode: the keypoints of every session that arrive in one turn of the hub's loop are classified together.

Each `keypoints` handler only stamps, parses and queues its frame, then wakes the batcher greenlet,
which runs once the hub has read what the sockets had ready. It takes the oldest fresh frame of each
waiting session (late ones are dropped with a `late` notice, as in live_worker.drain) and pushes them
all through ``StreamPredictor.push_many`` (then the next frame of the sessions that sent a burst, and
so on): features and models run once per bundle for the whole round instead of once per frame. Under
load the rounds grow, so each frame costs less exactly when the server is busiest. With at least
``BATCH_MIN_SESSIONS`` (4) sessions on the worker, a turn first waits ``batch_wait_ms`` (20 ms) for the
frames the other cameras send at about the same moment: on 2 cores with 20 cameras at 30 Hz, 20 ms
against 10 ms cuts the server's CPU per prediction by a sixth for about 8 ms more latency, and 10 ms
against 3 ms cut it by a fifth (docs/web_app.md, "Latency and capacity"). With fewer sessions a wait would rarely catch another frame, so none is
made. Each session still gets its frames in order, and a session whose lock is held (a model being
selected) waits for the next turn.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from spml_core import StreamPredictor
from spml_core.errors import SpmlError, TimestampError

from spml_web.inbox import Item
from spml_web.live_worker import _error, _late
from spml_web.protocol import ProtocolError
from spml_web.sessions import LiveSession

log = logging.getLogger("spml_web")

Prepare = Callable[[LiveSession, Item], Any]  # the session's stream for this frame (after an ended stream: a new one)
Emit = Callable[[LiveSession, dict[str, Any], float], None]
BATCH_MIN_SESSIONS = 4  # fewer sessions on a worker: no batch wait (too few frames to catch, latency first)
RETRY_S = 0.002  # a session whose lock is held is tried again this soon
MAX_ROUNDS = 64  # frames per session in one turn (a burst, e.g. a replay): the inbox's capacity


class Batcher:
    """One per server process (gevent mode): queue() from the handlers, classification on its own greenlet."""

    def __init__(self, app: Any, socketio: Any, prepare: Prepare, emit: Emit, wait_ms: float = 0.0,
                 busy: Callable[[], bool] = lambda: True) -> None:
        self.app = app
        self.wait_s = wait_ms / 1000.0
        self.busy = busy
        self.socketio = socketio
        self.prepare = prepare
        self.emit = emit
        self._ready: dict[str, LiveSession] = {}
        self._wake: Any = None
        self.turns = 0
        self.frames = 0

    def queue(self, session: LiveSession, msg: Any, received: float) -> None:
        """Queue one parsed `keypoints` frame stamped with its arrival; it is classified in this turn's batch."""
        session.inbox.put("keypoints", msg, received)
        import greenlet

        if greenlet.getcurrent().parent is None:
            # Not on a greenlet of a running hub (Flask-SocketIO's test client calls from a plain thread):
            # nothing would ever switch to the batcher, so classify now, as a batch of one.
            with self.app.app_context():
                self.turn([session])
            return
        self._ready[session.sid] = session
        if self._wake is None:
            import gevent
            import gevent.event

            self._wake = gevent.event.Event()
            gevent.spawn(self._run)
        self._wake.set()

    def _run(self) -> None:
        with self.app.app_context():  # prepare and emit read the app's state
            self._loop()

    def _loop(self) -> None:
        import gevent

        backlog = False
        while True:
            self._wake.wait()
            if backlog:
                gevent.sleep(0)  # the readers of other connections get their turn between two of ours
            elif self.wait_s and self.busy():
                gevent.sleep(self.wait_s)  # let the other sessions' frames of this moment join the batch
            self._wake.clear()
            ready, self._ready = list(self._ready.values()), {}
            try:
                retry = self.turn(ready)
            except Exception:  # a bug must not stop classification for every session
                log.error("batch failed:\n%s", traceback.format_exc())
                continue
            backlog = bool(self._ready) and not retry
            if retry:
                gevent.spawn_later(RETRY_S, self._wake.set)
            elif self._ready:
                self._wake.set()

    def turn(self, sessions: list[LiveSession]) -> bool:
        """Classify the queued fresh frames of each session, one frame of each per round (at most MAX_ROUNDS
        rounds; the rest wait for the next turn); whether a session had to wait for its lock."""
        held: list[LiveSession] = []
        retry = False
        try:
            for session in sessions:
                if session.inbox.closed:
                    continue
                if not session.lock.acquire(blocking=False):
                    self._ready[session.sid] = session
                    retry = True
                    continue
                held.append(session)
            active, rounds = held, 0
            while active and rounds < MAX_ROUNDS:
                active = self._round(active)
                rounds += 1
            for session in active:
                self._ready[session.sid] = session
        finally:
            for session in held:
                session.lock.release()
        return retry

    def _round(self, sessions: list[LiveSession]) -> list[LiveSession]:
        """The next fresh frame of each session, classified together; the sessions with more frames queued."""
        batch: list[tuple[LiveSession, Item, Any]] = []
        for session in sessions:
            item, late = session.inbox.take(timeout=0)
            if late:
                _late(self.socketio, session, late, locked=True)
            if item is None:
                continue
            try:
                batch.append((session, item, self.prepare(session, item)))
            except Exception as exc:
                self._failed(session, item, exc)
        results = StreamPredictor.push_many([(stream, item.msg.xyzv, item.msg.t_ms) for _, item, stream in batch])
        if batch:
            self.turns += 1
            self.frames += len(batch)
        for (session, item, _), result in zip(batch, results):
            try:
                if isinstance(result, TimestampError):
                    raise ProtocolError(f"keypoints: {result}", code=result.code)
                payload = session.finish(item.msg.frame, item.msg.t_ms, result, item.received)
                if payload is not None:
                    self.emit(session, payload, item.received)
            except Exception as exc:
                self._failed(session, item, exc)
        return [s for s in sessions if len(s.inbox) and not s.inbox.closed]

    def _failed(self, session: LiveSession, item: Item, exc: Exception) -> None:
        session.errors += 1
        if isinstance(exc, ProtocolError):
            _error(self.socketio, session, str(exc), exc.code, item)
        elif isinstance(exc, SpmlError):
            _error(self.socketio, session, f"{item.event}: {exc}", "failed", item)
        else:  # a bug must not take the session or the server down
            log.error("%s batch failed:\n%s", item.event, "".join(traceback.format_exception(exc)))
            _error(self.socketio, session, f"{item.event}: internal error ({type(exc).__name__}: {exc})",
                   "internal", item)
