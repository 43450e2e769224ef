"""Fair shares of one server: a per-connection event rate limit, a per-address connection limit, idle timeouts.

All three sit on the Engine.IO level, under Socket.IO, so a refused or dropped message costs no
Socket.IO decoding and never reaches a handler:

* **Rate limit.** Each connection has a token bucket (``max_events_per_s``, bursts of four seconds' worth).
  A message over the limit is dropped before it is decoded (a binary event together with its
  attachments), and the client gets a ``rate_limited`` notice at most once a second saying how
  many were dropped. One client sending 2,000 events/s thus costs the server little more than
  reading its bytes.
* **Connections per address.** At most ``max_sessions_per_client`` at once from one IP address;
  when unset, 16 for remote addresses and no limit for loopback (a reverse proxy or a load
  generator on this machine speaks for many clients).
* **Idle timeout.** A connection that sends no message for ``idle_timeout_s`` (answering the
  server's pings does not count) is closed, so idle or ping-only connections cannot hold the
  ``max_sessions`` slots and lock everyone else out.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from spml_web.concurrency import Runner

log = logging.getLogger("spml.web")

NOTICE_EVERY_S = 1.0
# A bucket holds this many seconds' worth of events: a page replaying a clip or catching up after a
# stall is not cut, while a sustained flood is held to the rate.
BURST_S = 4.0
BINARY_EVENT, BINARY_ACK = "5", "6"
DEFAULT_PER_CLIENT = 16


@dataclass
class _Conn:
    ip: str
    rate: float
    burst: float
    tokens: float
    last_refill: float
    last_seen: float
    skip_attachments: int = 0  # attachments of a dropped binary event still to come
    dropped: int = 0
    dropped_total: int = 0
    last_notice: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fairness:
    """The rate limit, address limit and idle reaper of one Socket.IO server (see the module doc)."""

    def __init__(self, sio: Any, max_events_per_s: float, idle_timeout_s: float, max_per_client: int | None,
                 runner: Runner | None = None) -> None:
        self.sio = sio
        self.runner = runner or Runner("threading")
        self.eio = sio.eio
        self.rate = float(max_events_per_s)
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_per_client = max_per_client
        self._conns: dict[str, _Conn] = {}
        self._lock = threading.Lock()
        self._connect = self.eio.handlers["connect"]
        self._message = self.eio.handlers["message"]
        self._disconnect = self.eio.handlers["disconnect"]
        self.eio.on("connect", self.on_connect)
        self.eio.on("message", self.on_message)
        self.eio.on("disconnect", self.on_disconnect)
        self.dropped_total = 0
        self.idle_closed = 0
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_forever, name="spml-idle-reaper", daemon=True)
        self._reaper.start()

    # -- Engine.IO handlers ----------------------------------------------------------------
    def on_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        """Refuse an address over its connection limit; start the connection's bucket and idle clock."""
        self.runner.bind()  # the serving thread: where the reaper hands its closes (gevent mode)
        ip = str(environ.get("REMOTE_ADDR") or "?")
        now = time.monotonic()
        with self._lock:
            limit = self.max_per_client
            if limit is None:
                limit = None if _is_loopback(ip) else DEFAULT_PER_CLIENT
            held = sum(1 for c in self._conns.values() if c.ip == ip)
            if limit is not None and held >= limit:
                log.info("connection from %s refused: it already holds %d (max_sessions_per_client)", ip, held)
                return False
            burst = BURST_S * self.rate
            self._conns[eio_sid] = _Conn(ip, self.rate, burst, burst, now, now)
        result = self._connect(eio_sid, environ)
        if result is False:
            with self._lock:
                self._conns.pop(eio_sid, None)
        return result

    def on_message(self, eio_sid: str, data: Any) -> Any:
        """Pass the message on, or drop it (and its attachments) when the connection is over its rate."""
        if not self.admit(eio_sid, data):
            return None
        try:
            return self._message(eio_sid, data)
        finally:
            self.touch(eio_sid)

    def admit(self, eio_sid: str, data: Any) -> bool:
        """Count one message against its connection's bucket: whether it goes on (else it is dropped, and the
        client told so at most once a second)."""
        conn = self._conns.get(eio_sid)
        if conn is None:
            return True
        now = time.monotonic()
        with conn.lock:
            conn.last_seen = now
            if conn.skip_attachments:
                conn.skip_attachments -= 1
                return False
            conn.tokens = min(conn.burst, conn.tokens + (now - conn.last_refill) * conn.rate)
            conn.last_refill = now
            admitted = conn.tokens >= 1.0 or not self._droppable(eio_sid, data)
            if admitted:
                conn.tokens -= 1.0
            else:
                conn.dropped += 1
                conn.dropped_total += 1
                conn.skip_attachments = _attachment_count(data)
                self.dropped_total += 1
            notice = self._take_notice(conn, now)
        if notice:
            self._notify(eio_sid, notice)
        return admitted

    def touch(self, eio_sid: str) -> None:
        """A message was handled: a slow handler (the first model load) is activity, not idleness."""
        conn = self._conns.get(eio_sid)
        if conn is not None:
            conn.last_seen = time.monotonic()

    def on_disconnect(self, eio_sid: str, *args: Any) -> Any:
        """Forget the connection."""
        with self._lock:
            self._conns.pop(eio_sid, None)
        return self._disconnect(eio_sid, *args)

    def _droppable(self, eio_sid: str, data: Any) -> bool:
        # Connect, disconnect and acks keep the protocol in step, and so do the attachments of an
        # event that was let through; everything else (events, junk) may be dropped.
        if isinstance(data, str):
            return data[:1] not in ("0", "1", "3", BINARY_ACK)
        return eio_sid not in self.sio._binary_packet

    # -- notices and the reaper ------------------------------------------------------------
    def _take_notice(self, conn: _Conn, now: float) -> dict[str, Any] | None:
        if conn.dropped and now - conn.last_notice >= NOTICE_EVERY_S:
            notice = {"dropped": conn.dropped, "dropped_total": conn.dropped_total, "limit_per_s": self.rate,
                      "message": f"sending faster than {self.rate:g} events/s: {conn.dropped} dropped"}
            conn.dropped, conn.last_notice = 0, now
            return notice
        return None

    def _notify(self, eio_sid: str, notice: dict[str, Any]) -> None:
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            self.sio.emit("rate_limited", notice, to=sid)

    def _reap_forever(self) -> None:
        period = max(0.05, min(1.0, self.idle_timeout_s / 4))
        while not self._stop.wait(period):
            self.reap_idle()

    def reap_idle(self) -> int:
        """Close connections idle longer than the timeout; how many were closed."""
        now = time.monotonic()
        with self._lock:
            idle = [sid for sid, c in self._conns.items() if now - c.last_seen > self.idle_timeout_s]
        for eio_sid in idle:
            log.info("closing connection %s: no event for %.0f s (idle_timeout_s)", eio_sid, self.idle_timeout_s)
            with self._lock:
                self._conns.pop(eio_sid, None)
            self.idle_closed += 1
            if self.runner.greenlets:  # connections belong to the hub: close it there (concurrency.py)
                self.runner.call_soon(self._close, eio_sid)
                continue
            # Each on its own thread, without waiting for the socket's writer: one slow close (its
            # session's off actions, a peer that stopped reading) must not hold up the others.
            threading.Thread(target=self._close, args=(eio_sid,), name="spml-idle-close", daemon=True).start()
        return len(idle)

    def _close(self, eio_sid: str) -> None:
        try:
            sock = self.eio._get_socket(eio_sid)
        except KeyError:  # already gone: nothing to close
            return
        try:
            sock.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
        finally:
            self.eio.sockets.pop(eio_sid, None)

    def stats(self) -> dict[str, Any]:
        """Counters for /api/health."""
        with self._lock:
            return {"connections": len(self._conns), "dropped_events": self.dropped_total,
                    "idle_closed": self.idle_closed, "max_events_per_s": self.rate,
                    "idle_timeout_s": self.idle_timeout_s}

    def close(self) -> None:
        """Stop the reaper."""
        self._stop.set()


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _attachment_count(data: Any) -> int:
    if isinstance(data, str) and data[:1] == BINARY_EVENT:
        digits = data[1:data.find("-")] if "-" in data[:12] else ""
        return int(digits) if digits.isdigit() else 0
    return 0
