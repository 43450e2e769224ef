"""gevent mode: a server WebSocket (RFC 6455) read and written by its connection's own greenlet.

simple-websocket, which Engine.IO uses otherwise, reads every connection on a second greenlet
(parsing frames with wsproto) and hands each message over through an event: per `keypoints` frame
that is several greenlet switches and a pure-Python frame parser, which on 2 cores with 20 cameras
cost as much as classifying the frame. Here the connection's greenlet reads the socket itself and
parses frames with numpy, and the engine's writer greenlet sends under a lock.

One thing the second greenlet did is kept: every message is stamped with the time it was taken off
the socket, also while the connection's handler is busy (a model being selected waits for its
session), so that frames which waited are shed as late (arrival.py) instead of looking fresh. A
message handed to a handler that may take long (:meth:`DirectWebSocket.handling`) arms a one-shot
timer: after ``STALL_S`` a helper greenlet goes on reading for it, until the connection's greenlet
asks for its next message. (A periodic watcher did the same, but waking an idle process 100 times a
second cost more CPU than a camera's frames.)

No extension is negotiated (permessage-deflate would cost more CPU than the bytes it saves on a
LAN). A message over ``max_message_size`` closes the connection with code 1009 before its payload
is buffered.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECEIVE_BYTES = 65536
STALL_S = 0.02  # a handler busy this long gets a helper greenlet that keeps reading (and stamping) its socket
CLOSE_WAIT_S = 1.0  # after our close frame, how long the peer has to answer before the socket is closed
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
NORMAL, PROTOCOL_ERROR, BAD_DATA, TOO_BIG = 1000, 1002, 1007, 1009


class HandshakeError(ValueError):
    """The request is not a WebSocket (version 13) opening handshake."""


class ConnectionClosed(OSError):
    """The WebSocket is closed."""


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def unmask(data: bytearray, mask: bytes) -> bytearray:
    """A client frame's payload XORed, in place, with its 4-byte masking key."""
    whole = len(data) & ~3
    if whole:
        np.frombuffer(data, np.uint32, whole >> 2)[...] ^= np.frombuffer(mask, np.uint32)[0]
    for i in range(whole, len(data)):
        data[i] ^= mask[i & 3]
    return data


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame's header (the payload follows it)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n))
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n)
    return struct.pack("!BBQ", 0x80 | opcode, 127, n)


def _socket_of(environ: dict[str, Any]) -> Any:
    # gevent's WSGI server keeps the connection's socket behind wsgi.input (as simple-websocket finds it);
    # a duplicate, so that the server closing its own once the request "ends" leaves ours open.
    wsgi_input = environ.get("wsgi.input")
    if wsgi_input is not None and not hasattr(wsgi_input, "raw") and hasattr(wsgi_input, "rfile"):
        wsgi_input = wsgi_input.rfile
    raw = getattr(wsgi_input, "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is None:
        raise HandshakeError("cannot find the connection's socket in the WSGI environment (gevent's server only)")
    return sock.dup()


class DirectWebSocket:
    """One server-side WebSocket connection (gevent mode; see the module doc)."""

    def __init__(self, environ: dict[str, Any], max_message_size: int | None = None,
                 pause: Callable[[], Any] | None = None) -> None:
        import gevent.lock

        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13" or len(key) != 24:
            raise HandshakeError("not a WebSocket version 13 handshake (Sec-WebSocket-Key/-Version)")
        self.sock = _socket_of(environ)
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + accept_key(key).encode("ascii") + b"\r\n\r\n")
        self.mode = "gevent"
        self.connected = True
        self.max_message_size = max_message_size
        # Unparsed input beyond this is left in the kernel (TCP pushes back) while a handler is busy.
        self.max_buffer = max(4 << 20, 4 * (max_message_size or 0))
        self.pause = pause
        self.received_at = 0.0  # perf_counter when the last message returned was read off the socket
        self.close_code: int | None = None
        self._buf = bytearray()
        self._pos = 0
        self._marks: deque[list[Any]] = deque()  # [end offset in _buf, perf_counter] of each chunk read
        self._frag: bytearray | None = None
        self._frag_opcode = TEXT
        self._write = gevent.lock.Semaphore()
        self._stall = gevent.get_hub().loop.timer(STALL_S)
        self._helper: Any = None
        self._closed_socket = False

    # -- reading ---------------------------------------------------------------------------
    def handling(self) -> None:
        """The message just received goes to a handler that may take long: should it, the socket is read
        (and each message stamped) meanwhile, until the next receive()."""
        self._stall.start(self._start_helper)

    def _start_helper(self) -> None:
        import gevent

        if self.connected and self._helper is None:
            self._helper = gevent.spawn(self._read_while_busy)

    def receive(self) -> str | bytes | None:
        """The next message (text as str, binary as bytes), or None once the connection is closed."""
        self._stall.stop()
        if self._helper is not None:
            self._helper.kill()
            self._helper = None
        if self.pause is not None and len(self._buf) > self._pos:
            # Greenlets are not preempted: a client whose messages are already here (a flood) would
            # otherwise keep the hub to itself until they are all handled.
            self.pause()
        while True:
            message = self._parse()
            if message is not None:
                return message
            if not self.connected or not self._read():
                self.connected = False
                self._close_socket()
                return None

    def _read(self) -> bool:
        try:
            chunk = self.sock.recv(RECEIVE_BYTES)
        except OSError:  # reset, or the socket closed by another greenlet
            return False
        if not chunk:
            return False
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
            self._marks.clear()
        self._buf += chunk
        self._marks.append([len(self._buf), time.perf_counter()])
        return True

    def _read_while_busy(self) -> None:
        """The helper greenlet: read and stamp while the handler is busy (until killed, closed or full)."""
        while self.connected and len(self._buf) - self._pos < self.max_buffer and self._read():
            pass

    def _parse(self) -> str | bytes | None:
        """The next complete data message in the buffer (control frames answered on the way), or None."""
        buf = self._buf
        while True:
            pos = self._pos
            avail = len(buf) - pos
            if avail < 2:
                return None
            b0, b1 = buf[pos], buf[pos + 1]
            opcode, length, head = b0 & 0x0F, b1 & 0x7F, 2
            if length == 126:
                if avail < 4:
                    return None
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if avail < 10:
                    return None
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b0 & 0x70 or not b1 & 0x80:
                return self._fail(PROTOCOL_ERROR, "frames from a client must be masked and use no extension")
            control = opcode >= CLOSE
            if control and (length > 125 or not b0 & 0x80):
                return self._fail(PROTOCOL_ERROR, "bad control frame")
            if not control:
                total = length + (len(self._frag) if self._frag is not None else 0)
                if self.max_message_size is not None and total > self.max_message_size:
                    return self._fail(TOO_BIG, "Message is too big")
            end = pos + head + 4 + length
            if len(buf) < end:
                return None
            payload = unmask(buf[pos + head + 4:end], bytes(buf[pos + head:pos + head + 4]))
            self._pos = end
            self._stamp(end)
            if control:
                if self._control(opcode, payload):
                    continue
                return None
            if opcode == CONTINUATION:
                if self._frag is None:
                    return self._fail(PROTOCOL_ERROR, "continuation without a message")
                self._frag += payload
            elif self._frag is not None:
                return self._fail(PROTOCOL_ERROR, "new message inside a fragmented one")
            elif opcode in (TEXT, BINARY):
                if not b0 & 0x80:
                    self._frag, self._frag_opcode = payload, opcode
                    continue
                return self._message(opcode, payload)
            else:
                return self._fail(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if b0 & 0x80:
                whole, self._frag = self._frag, None
                return self._message(self._frag_opcode, whole)

    def _message(self, opcode: int, payload: bytearray) -> str | bytes | None:
        if opcode == BINARY:
            return bytes(payload)
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(BAD_DATA, "text message is not UTF-8")

    def _stamp(self, end: int) -> None:
        marks = self._marks
        while len(marks) > 1 and marks[0][0] < end:
            marks.popleft()
        if marks:
            self.received_at = marks[0][1]
        if self._pos > RECEIVE_BYTES and self._pos * 2 > len(self._buf):
            del self._buf[:self._pos]
            for mark in marks:
                mark[0] -= self._pos
            self._pos = 0

    def _control(self, opcode: int, payload: bytearray) -> bool:
        """Answer a control frame; whether the connection goes on."""
        if opcode == PING:
            self._send_frame(PONG, bytes(payload))
            return True
        if opcode == PONG:
            return True
        if opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if self.connected:  # the peer's close: answer it with its own code
                self.close_code = code
                self._send_frame(CLOSE, bytes(payload[:2]))
            self.connected = False
            return False
        self._fail(PROTOCOL_ERROR, f"unknown control opcode {opcode}")
        return False

    def _fail(self, code: int, reason: str) -> None:
        self.close(code, reason)
        self._pos = len(self._buf)
        return None

    # -- writing ---------------------------------------------------------------------------
    def send(self, data: str | bytes) -> None:
        """Send one message: bytes as binary, anything else as text."""
        if not self.connected:
            raise ConnectionClosed("the WebSocket is closed")
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._send_frame(BINARY, bytes(data), raising=True)
        else:
            self._send_frame(TEXT, str(data).encode("utf-8"), raising=True)

    def send_now(self, text: str) -> bool:
        """Send a text message without ever waiting; False (nothing sent) when another send is under way or
        the socket's buffer is full, so the caller can queue it instead."""
        if not self.connected or self._write.locked():
            return False
        payload = text.encode("utf-8")
        data = frame(TEXT, payload) + payload
        self._write.acquire()
        try:
            sent = self.sock.send(data, 0, 0.0)
        except BlockingIOError:
            self._write.release()
            return False
        except OSError:  # the peer is gone: the connection's own greenlet ends it
            self.connected = False
            self._write.release()
            return True
        if sent == len(data):
            self._write.release()
            return True
        # Part of it went: the rest must follow before anything else, on a greenlet of its own.
        import gevent

        gevent.spawn(self._send_rest, data[sent:])
        return True

    def _send_rest(self, rest: bytes) -> None:
        try:
            self.sock.sendall(rest)
        except OSError:
            self.connected = False
        finally:
            self._write.release()

    def _send_frame(self, opcode: int, payload: bytes, raising: bool = False) -> None:
        head = frame(opcode, payload)
        try:
            with self._write:  # the engine's writer and a closing greenlet must not interleave frames
                if len(payload) < 65536:
                    self.sock.sendall(head + payload)
                else:
                    self.sock.sendall(head)
                    self.sock.sendall(payload)
        except OSError:
            self.connected = False
            if raising:
                raise ConnectionClosed("the WebSocket is closed") from None

    def close(self, reason: int = NORMAL, message: str = "") -> None:
        """Send a close frame; the socket closes when the peer answers, or after CLOSE_WAIT_S."""
        if not self.connected:
            return
        self.connected = False
        self._send_frame(CLOSE, reason.to_bytes(2, "big") + message.encode("utf-8")[:123])
        import gevent

        gevent.spawn_later(CLOSE_WAIT_S, self._close_socket)

    def _close_socket(self) -> None:
        if self._closed_socket:
            return
        self._closed_socket = True
        self.connected = False
        self._stall.stop()
        self._stall.close()
        if self._helper is not None:
            self._helper.kill(block=False)
            self._helper = None
        try:
            self.sock.close()  # wakes a greenlet still reading it
        except OSError:
            pass
