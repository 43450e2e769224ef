"""Each session's worker thread: frames from its inbox (late ones dropped with a `late` notice, and
never actuated), classified in order; and the end of a stream (devices off at once).

The Socket.IO handler returns as soon as a frame is parsed and queued, so a slow model or a
stalled server never leaves frames waiting unseen in the socket: each frame's age is measured from
the moment the server received it (docs/protocol.md, "Staleness").
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from spml_core.errors import SpmlError
from spml_web.inbox import Item
from spml_web.protocol import ProtocolError
from spml_web.sessions import LiveSession

log = logging.getLogger("spml_web")

Process = Callable[[LiveSession, Item], None]
WAKE_S = 1.0  # a safety net only: the worker is woken when a frame is left waiting


def start_worker(app: Any, socketio: Any, session: LiveSession, process: Process) -> threading.Thread:
    """Start the session's worker (in an app context); it stops when the session's inbox is closed."""
    thread = threading.Thread(target=_run, args=(app, socketio, session, process),
                              name=f"spml-session-{session.sid[:8]}", daemon=True)
    thread.start()
    return thread


def _run(app: Any, socketio: Any, session: LiveSession, process: Process) -> None:
    with app.app_context():
        _loop(socketio, session, process)


def _loop(socketio: Any, session: LiveSession, process: Process) -> None:
    inbox = session.inbox
    while not inbox.closed:
        # Frames are drained by the handler that queued them when the session is idle; the worker is
        # woken only for those left waiting (another thread held the session), so idle sessions cost
        # nothing and a busy server is not woken 50 times a second per session.
        if inbox.wait(timeout=WAKE_S) and not inbox.closed:
            with session.lock:
                drain(socketio, session, process)


def submit(socketio: Any, session: LiveSession, process: Process, event: str, msg: Any, received: float,
           wait: bool = False) -> None:
    """Queue a frame stamped with its receipt time; classify at once when the session is idle.

    When the session's lock is free the handler drains the queue itself (in order, so a client
    that keeps up gets its results before its next event is read); when it is busy (a slow frame,
    a stall) the frame waits in the queue for the worker, which drops it if it grows too old.
    ``wait`` (gevent mode, no workers): a holder never yields, so the lock is held only briefly by
    another OS thread; wait for it, and drop what has grown too old meanwhile.
    """
    session.inbox.put(event, msg, received)
    if wait:
        with session.lock:
            drain(socketio, session, process)
        return
    if session.lock.acquire(blocking=False):
        try:
            drain(socketio, session, process)
        finally:
            session.lock.release()
    else:
        session.inbox.wake()  # the worker takes it once the session is free


def drain(socketio: Any, session: LiveSession, process: Process) -> None:
    """Classify every queued fresh frame in order and drop the late ones (the session's lock held)."""
    inbox = session.inbox
    while not inbox.closed:
        item, late = inbox.take(timeout=0)
        if late:
            _late(socketio, session, late, locked=True)
        if item is None:
            return
        try:
            process(session, item)
        except ProtocolError as exc:
            session.errors += 1
            _error(socketio, session, str(exc), exc.code, item)
        except SpmlError as exc:
            session.errors += 1
            _error(socketio, session, f"{item.event}: {exc}", "failed", item)
        except Exception as exc:  # a bug must not take the session or the server down
            session.errors += 1
            log.error("%s worker failed:\n%s", item.event, traceback.format_exc())
            _error(socketio, session, f"{item.event}: internal error ({type(exc).__name__}: {exc})", "internal", item)


def _late(socketio: Any, session: LiveSession, late: list[Item], locked: bool = False) -> None:
    """Dropped frames: the devices see a stale frame (off), the client a `late` notice."""
    newest = late[-1]
    if locked:
        session.stale(newest.msg.t_ms, newest.msg.frame)
    else:
        with session.lock:
            session.stale(newest.msg.t_ms, newest.msg.frame)
    socketio.emit("late", {"count": len(late), "first_frame": late[0].msg.frame, "last_frame": newest.msg.frame,
                           "oldest_age_ms": round(late[0].age_ms(), 1), "max_age_ms": session.inbox.max_age_ms},
                  to=session.sid)


def _error(socketio: Any, session: LiveSession, message: str, code: str, item: Item) -> None:
    socketio.emit("error", {"message": message, "code": code, "event": item.event, "frame": item.msg.frame},
                  to=session.sid)


def end_stream(session: LiveSession, reason: str) -> dict[str, Any]:
    """The client's stream ended (Stop, end of a replay, tab hidden or closed): devices off now.

    Runs on the event's own thread without waiting for the session's lock, so a worker busy with
    a slow frame cannot delay the off action; queued frames are dropped and nothing more is
    classified for this stream.
    """
    session.ended = True
    dropped = session.inbox.clear()
    actuation = session.actuation
    decisions = actuation.close() if actuation is not None else []
    return {"reason": reason, "dropped": dropped,
            "actions": [{"actuator": d.actuator, "action": d.action, "label": d.label, "reason": d.reason}
                        for d in decisions]}
