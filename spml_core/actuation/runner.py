"""Actuation that never blocks classification: actuator runners and the action log.

Threads and queues:

- :class:`ActuatorRunner` drives one actuator on its own thread. ``submit`` only takes a lock
  and appends, so the classification loop never waits for a device.
- Drop/coalesce policy (a slow or failing device): an on-action that has not started when a
  newer action arrives is dropped (counted in ``dropped``), so at most one on-action is pending;
  an on-action not started within ``max_age_ms`` of its decision is dropped as stale (a late
  stimulus is a wrong one). Off actions are never dropped: identical pending offs coalesce
  into one, and an off whose send fails is retried (``retry_ms`` apart) until it is delivered
  or a newer off replaces it; ``close()`` still delivers pending offs within its timeout.
- :class:`ActionLog` appends one JSON line per action (sent, failed, dropped, suppressed) and
  flushes each line, from its own writer thread.
- The hub and per-stream sessions that feed runners are in :mod:`spml_core.actuation.hub`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spml_core.actuation.decisions import Decision

if TYPE_CHECKING:
    from spml_core.components import Actuator


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat(timespec="milliseconds")


class ActionLog:
    """Append-only JSON-lines log written by a background thread, flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"spml-action-log-{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record; returns at once."""
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                break
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        """Write what is queued, then close the file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._file.close()


@dataclass
class _Job:
    decision: Decision
    session: str | None
    decided_at: float  # epoch seconds, for the log
    decided_ns: int  # perf_counter_ns, for latency and staleness


class ActuatorRunner:
    """Runs one actuator on its own thread behind a non-blocking, coalescing queue."""

    def __init__(
        self,
        actuator: Actuator,
        name: str,
        log: ActionLog | None = None,
        max_age_ms: float = 500.0,
        retry_ms: float = 250.0,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        heartbeat: tuple[float, bytes] | None = None,
    ) -> None:
        self.actuator = actuator
        # (every_ms, payload): a keep-alive write whenever nothing else was written for every_ms,
        # so firmware that hears nothing for a few periods switches off by itself (server died).
        self.heartbeat = heartbeat
        self._next_beat = 0.0
        self.name = name
        self.log = log
        self.max_age_ms = max_age_ms
        self.retry_ms = retry_ms
        self.on_result = on_result
        self.counts = {"submitted": 0, "sent": 0, "failed": 0, "dropped": 0, "stale": 0, "coalesced": 0, "retried": 0,
                       "heartbeats": 0, "heartbeats_failed": 0}
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._run, name=f"spml-actuator-{name}", daemon=True)

    def start(self) -> ActuatorRunner:
        """Start the runner thread (it opens the actuator first)."""
        self._thread.start()
        return self

    # -- producer side (the classification loop) -----------------------------------------
    def submit(self, decision: Decision, session: str | None = None) -> None:
        """Queue an on or off action; never waits for the device."""
        if decision.payload is None or decision.action not in ("on", "off"):
            raise ValueError(f"only on/off actions with a payload can be sent, got {decision.action!r}")
        job = _Job(decision, session, time.time(), time.perf_counter_ns())
        dropped: list[tuple[_Job, str]] = []
        with self._cond:
            self.counts["submitted"] += 1
            # Any newer action supersedes on-actions that have not started yet.
            kept: deque[_Job] = deque()
            for old in self._pending:
                if old.decision.action == "on":
                    dropped.append((old, "dropped: superseded by a newer action"))
                else:
                    kept.append(old)
            if decision.action == "off" and kept and kept[-1].decision.payload == decision.payload:
                dropped.append((kept.pop(), "coalesced: an identical off action follows"))
            kept.append(job)
            self._pending = kept
            for _, why in dropped:
                self.counts["coalesced" if why.startswith("coalesced") else "dropped"] += 1
            self._cond.notify()
        for old, why in dropped:
            self._record(old, why)

    def pending(self) -> int:
        """Number of actions waiting for the device."""
        with self._cond:
            return len(self._pending)

    def status(self) -> dict[str, Any]:
        """Actuator state, message and counters, JSON-able."""
        st = self.actuator.status()
        with self._cond:
            counts = dict(self.counts, pending=len(self._pending))
        return {"actuator": self.name, "state": st.state, "message": st.message, **counts}

    # -- runner thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.actuator.open()
        except Exception:
            pass  # the actuator reports it through status(); send() reconnects
        self._next_beat = time.monotonic()
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    if self.heartbeat is None:
                        self._cond.wait()
                        continue
                    due = self._next_beat - time.monotonic()
                    if due <= 0:
                        break
                    self._cond.wait(due)
                if self._stopping:
                    self._drop_ons_for_shutdown()
                    if not self._pending or time.monotonic() > self._deadline:
                        break
                job = self._pending.popleft() if self._pending else None
            if job is None:
                self._beat()
            else:
                self._deliver(job)
            if self.heartbeat is not None:
                self._next_beat = time.monotonic() + self.heartbeat[0] / 1000.0
        try:
            self.actuator.close()
        except Exception:
            pass

    def _beat(self) -> None:
        assert self.heartbeat is not None
        try:
            self.actuator.send(self.heartbeat[1], None)
        except Exception:
            key = "heartbeats_failed"  # not connected: the device hears nothing, which is the point
        else:
            key = "heartbeats"
        with self._cond:
            self.counts[key] += 1

    def _drop_ons_for_shutdown(self) -> None:
        ons = [j for j in self._pending if j.decision.action == "on"]
        for job in ons:
            self._pending.remove(job)
            self.counts["dropped"] += 1
            self._record(job, "dropped: shutting down")

    def _deliver(self, job: _Job) -> None:
        d = job.decision
        age_ms = (time.perf_counter_ns() - job.decided_ns) / 1e6
        if d.action == "on" and age_ms > self.max_age_ms:
            with self._cond:
                self.counts["stale"] += 1
            self._record(job, f"dropped: stale ({age_ms:.0f} ms > max_age_ms {self.max_age_ms:g})")
            return
        try:
            assert d.payload is not None
            self.actuator.send(d.payload, d)
        except Exception as exc:
            msg = str(exc) or type(exc).__name__
            with self._cond:
                self.counts["failed"] += 1
                retry = d.action == "off" and not any(
                    j.decision.action == "off" and j.decision.payload == d.payload for j in self._pending
                )
                if retry:
                    self.counts["retried"] += 1
                    self._pending.appendleft(job)
            self._record(job, f"error: {msg}" + ("; off action will be retried" if retry else ""))
            if retry:
                with self._cond:
                    self._cond.wait(self.retry_ms / 1000.0)
            return
        with self._cond:
            self.counts["sent"] += 1
        self._record(job, "sent", sent_ns=time.perf_counter_ns())

    def _record(self, job: _Job, result: str, sent_ns: int | None = None) -> None:
        rec = job.decision.as_record()
        rec["session"] = job.session
        rec["decided_at"] = _iso(job.decided_at)
        rec["sent_at"] = None
        rec["latency_ms"] = None
        if sent_ns is not None:
            latency_s = (sent_ns - job.decided_ns) / 1e9
            rec["sent_at"] = _iso(job.decided_at + latency_s)
            rec["latency_ms"] = round(latency_s * 1000, 3)
        rec["result"] = result
        if self.log is not None:
            self.log.write(rec)
        if self.on_result is not None:
            try:
                self.on_result(rec)
            except Exception:
                pass  # a listener's failure must not stop the device thread

    def close(self, timeout: float = 2.0) -> None:
        """Deliver pending off actions (within ``timeout``), drop pending on-actions, close the actuator."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout + 5.0)
        elif not self._thread.ident:
            try:
                self.actuator.close()
            except Exception:
                pass


def log_decision(log: ActionLog | None, decision: Decision, session: str | None, result: str) -> None:
    """Log a decision that is not sent by a runner (suppressed bouts, browser-side actions)."""
    if log is None:
        return
    rec = decision.as_record()
    rec.update(session=session, decided_at=_iso(time.time()), sent_at=None, latency_ms=None, result=result)
    log.write(rec)
