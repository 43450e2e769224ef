"""The gevent-mode WebSocket (websocket.py) over a real socket pair: framing, limits, closing, and arrival stamps."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.socket
import pytest

from spml_web.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    DirectWebSocket,
    HandshakeError,
    accept_key,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455, section 1.3


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """A client's frame as a browser sends it (masked with a random key)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(sock: Any) -> tuple[int, bytes]:
    """One server frame (opcode, payload), or (-1, b"") at the end of the stream."""
    head = _exactly(sock, 2)
    if not head:
        return -1, b""
    assert not head[1] & 0x80, "server frames are not masked"
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", _exactly(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _exactly(sock, 8))[0]
    return head[0] & 0x0F, _exactly(sock, n)


def _exactly(sock: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return out
        out += chunk
    return out


@pytest.fixture
def pair() -> Iterator[tuple[DirectWebSocket, Any]]:
    """A server-side DirectWebSocket (1 KB message limit) and the client's end of its socket, handshake done."""
    server, client = gevent.socket.socketpair()
    environ = {"HTTP_SEC_WEBSOCKET_KEY": KEY, "HTTP_SEC_WEBSOCKET_VERSION": "13",
               "wsgi.input": SimpleNamespace(raw=SimpleNamespace(_sock=server))}
    ws = DirectWebSocket(environ, max_message_size=1000, pause=gevent.sleep)
    server.close()  # the connection now lives on the WebSocket's duplicate (gevent's server closes its own)
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        response += client.recv(1)
    assert response.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {accept_key(KEY)}".encode() in response
    yield ws, client
    ws._close_socket()
    client.close()


def test_the_accept_key_is_the_rfc_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_request_that_is_not_a_websocket_handshake_is_refused() -> None:
    with pytest.raises(HandshakeError, match="version 13"):
        DirectWebSocket({"HTTP_SEC_WEBSOCKET_VERSION": "8", "HTTP_SEC_WEBSOCKET_KEY": KEY})


def test_fragments_read_a_byte_at_a_time_make_one_message_and_pings_are_answered(
    pair: tuple[DirectWebSocket, Any],
) -> None:
    ws, client = pair
    text = '42["keypoints",{"frame":1,"note":"héllo wörld"}]'.encode()
    wire = (client_frame(TEXT, text[:10], fin=False) + client_frame(PING, b"are you there")
            + client_frame(CONTINUATION, text[10:30], fin=False) + client_frame(CONTINUATION, text[30:])
            + client_frame(BINARY, bytes(range(200)) * 2))

    def trickle() -> None:
        for i in range(len(wire)):
            client.sendall(wire[i:i + 1])
            if i % 7 == 0:
                gevent.sleep(0.001)

    sender = gevent.spawn(trickle)
    assert ws.receive() == text.decode()
    assert ws.receive() == bytes(range(200)) * 2
    sender.join()
    assert read_frame(client) == (PONG, b"are you there")


def test_a_message_over_the_limit_closes_with_1009_before_its_payload_arrives(
    pair: tuple[DirectWebSocket, Any],
) -> None:
    ws, client = pair
    client.sendall(client_frame(TEXT, b"fine"))
    client.sendall(struct.pack("!BBQ", 0x80 | TEXT, 0x80 | 127, 10**9) + os.urandom(4))  # 1 GB declared, none sent
    assert ws.receive() == "fine"
    assert ws.receive() is None
    opcode, payload = read_frame(client)
    assert opcode == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009 and b"too big" in payload


@pytest.mark.parametrize(("wire", "code"), [
    (client_frame(TEXT, b"hello", mask=False), 1002),  # clients must mask
    (client_frame(TEXT, b"\xff\xfe not utf-8"), 1007),
    (client_frame(CONTINUATION, b"nothing to continue"), 1002),
    (client_frame(PING, b"x" * 126), 1002),  # control frames carry at most 125 bytes
    (client_frame(0x3, b"reserved opcode"), 1002),
], ids=["unmasked", "not-utf8", "lone-continuation", "long-ping", "reserved-opcode"])
def test_protocol_errors_close_the_connection_with_their_code(pair: tuple[DirectWebSocket, Any], wire: bytes,
                                                             code: int) -> None:
    ws, client = pair
    client.sendall(wire)
    assert ws.receive() is None
    opcode, payload = read_frame(client)
    assert (opcode, struct.unpack("!H", payload[:2])[0]) == (CLOSE, code)


def test_a_client_close_is_answered_with_its_code_and_ends_the_connection(pair: tuple[DirectWebSocket, Any]) -> None:
    ws, client = pair
    client.sendall(client_frame(CLOSE, struct.pack("!H", 1001) + b"going away"))
    assert ws.receive() is None
    assert read_frame(client) == (CLOSE, struct.pack("!H", 1001))
    assert read_frame(client) == (-1, b"")  # and the socket is closed
    assert ws.close_code == 1001
    with pytest.raises(OSError):
        ws.send("too late")


def test_a_server_close_ends_a_reader_waiting_on_a_peer_that_never_answers(pair: tuple[DirectWebSocket, Any],
                                                                          monkeypatch: Any) -> None:
    import spml_web.websocket as websocket

    monkeypatch.setattr(websocket, "CLOSE_WAIT_S", 0.2)
    ws, client = pair
    reader = gevent.spawn(ws.receive)
    gevent.sleep(0.05)
    started = time.perf_counter()
    ws.close(1000, "bye")
    assert reader.get(timeout=5) is None
    assert time.perf_counter() - started < 1.0
    opcode, payload = read_frame(client)
    assert opcode == CLOSE and payload == struct.pack("!H", 1000) + b"bye"


def test_messages_sent_while_the_handler_is_busy_keep_the_time_they_arrived(pair: tuple[DirectWebSocket, Any]) -> None:
    """A handler that takes 300 ms (a model being selected) must not make the frames sent meanwhile look
    fresh: a helper reads them as they come, so each keeps the time it was taken off the socket."""
    ws, client = pair
    client.sendall(client_frame(TEXT, b"first"))
    assert ws.receive() == "first"
    ws.handling()  # "first" goes to a handler, which takes its time
    sent: list[float] = []

    def send_later() -> None:
        for i in range(3):
            gevent.sleep(0.05)
            sent.append(time.perf_counter())
            client.sendall(client_frame(TEXT, f"frame {i}".encode()))

    sender = gevent.spawn(send_later)
    gevent.sleep(0.3)  # the busy handler (a greenlet that yields, as gevent code does while it waits)
    sender.join()
    for i in range(3):
        assert ws.receive() == f"frame {i}"
        assert abs(ws.received_at - sent[i]) < 0.04, (ws.received_at - sent[i], i)


def test_large_binary_messages_round_trip(pair: tuple[DirectWebSocket, Any]) -> None:
    ws, client = pair
    ws.max_message_size = 1 << 21
    blob = os.urandom(300_000)
    sender = gevent.spawn(client.sendall, client_frame(BINARY, blob))
    assert ws.receive() == blob
    sender.join()
    writer = gevent.spawn(ws.send, blob)  # more than the socket buffers: written while the client reads
    assert read_frame(client) == (BINARY, blob)
    writer.get(timeout=5)
    ws.send("ünïcode")
    assert read_frame(client) == (TEXT, "ünïcode".encode())


def test_send_now_never_waits_and_never_leaves_half_a_message(pair: tuple[DirectWebSocket, Any]) -> None:
    """A client that stops reading must not stall the greenlet that classifies every session: send_now
    refuses (False) once the socket is full, and a message it began always ends before the next."""
    ws, client = pair
    texts, refused = [], 0
    for i in range(5000):
        text = f'42["prediction",{{"frame":{i},"pad":"{"x" * 2000}"}}]'
        started = time.perf_counter()
        if ws.send_now(text):
            texts.append(text)
        else:
            refused += 1
        assert time.perf_counter() - started < 0.05
        if refused > 20:
            break
    assert refused > 20, "the socket pair never filled up"

    def read_all() -> list[str]:
        got = []
        while len(got) < len(texts) + 1:
            opcode, payload = read_frame(client)
            assert opcode == TEXT
            got.append(payload.decode())
        return got

    reader = gevent.spawn(read_all)  # the client reads again
    ws.send("after")  # waits for its turn (and for room) behind anything send_now left half-written
    assert reader.get(timeout=10) == texts + ["after"]
