"""The server for real: Werkzeug on 127.0.0.1 (a free port, in a thread), real Socket.IO clients.

python-socketio clients speak the protocol as a browser's socket.io-client does; raw WebSocket
clients (websocket-client) send what no well-behaved client would: malformed JSON, oversized
messages, and a TCP connection dropped without a goodbye in the middle of a window.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow


@pytest.fixture()
def server(make_app: Any) -> Iterator[BackgroundServer]:
    with BackgroundServer(make_app(max_message_bytes=64 * 1024)) as srv:
        yield srv


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/health", timeout=5) as resp:
        return json.loads(resp.read())


def wait_sessions(url: str, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(health(url)["sessions"]) != n:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {n} sessions, server has {health(url)['sessions']}")
        time.sleep(0.05)


def test_real_client_gets_predictions_equal_to_offline(
    server: BackgroundServer, example_keypoints: Any, bundles: dict[str, Path], keypoint_messages: Any,
    recorder: Any,
) -> None:
    from spml_core.models.predictor import load_bundle

    seq = example_keypoints
    rec = recorder(server.url)
    try:
        rec.wait_for("hello")
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        for msg in keypoint_messages(seq, 0, 60):
            rec.client.emit("keypoints", msg)
        rec.wait_for("prediction", 60)
    finally:
        rec.close()
    results = rec.of("prediction")
    # Every frame gets a result with a status; the first 9 warm the 10-frame window up.
    assert [p["frame"] for p in results] == list(range(60))  # in order, none lost
    assert [p["status"] for p in results[:9]] == ["warming_up"] * 9 and all(p["label"] is None for p in results[:9])
    preds = [p for p in results if OK(p)]
    assert [p["frame"] for p in preds] == list(range(9, 60))
    assert all(p["bundle_fps"] == pytest.approx(30.0, abs=0.1) for p in results)
    # The 250 ms bound applies when a frame is taken; its age at the emit adds the model's time.
    assert all(0 <= p["age_ms"] < 1000 for p in results), [p["age_ms"] for p in results]
    offline = load_bundle(bundles["steps"])
    for p in preds[::10]:
        i = p["frame"]
        expected = offline.predict_window(seq.xyzv[i - 9 : i + 1], seq.width, seq.height)
        assert p["label"] == expected["label"]
        assert p["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    assert all(0 < p["latency_ms"] < 1000 for p in preds)
    wait_sessions(server.url, 0)


def test_long_polling_transport_works_too(
    server: BackgroundServer, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    rec = recorder(server.url, transports=["polling"])
    try:
        rec.client.emit("select_model", {"name": "transfer"})
        for msg in keypoint_messages(example_keypoints, 0, 8):
            rec.client.emit("keypoints", msg)
        assert [p["frame"] for p in rec.wait_for("prediction", 4, where=OK)] == [4, 5, 6, 7]
    finally:
        rec.close()


def _raw_ws(url: str) -> websocket.WebSocket:
    """A raw Engine.IO v4 WebSocket, connected to the Socket.IO main namespace."""
    ws = websocket.create_connection(url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    assert ws.recv().startswith("0{")  # engine.io open
    ws.send("40")  # socket.io connect
    while not (msg := ws.recv()).startswith("40"):
        pass
    return ws


def OK(p: dict[str, Any]) -> bool:
    """A result of a full window (ok, or unknown when the model's rejection threshold refuses it)."""
    return p["status"] in ("ok", "unknown")


def _recv_event(ws: websocket.WebSocket, name: str) -> Any:
    while True:
        msg = ws.recv()
        if msg == "2":  # engine.io ping
            ws.send("3")
            continue
        if msg.startswith("42"):
            event, *args = json.loads(msg[2:])
            if event == name:
                return args[0] if args else None


def test_malformed_json_gets_an_error_event_and_the_session_continues(
    server: BackgroundServer, example_keypoints: Any, keypoint_messages: Any
) -> None:
    ws = _raw_ws(server.url)
    try:
        ws.send('42["select_model",{"name":"transfer"}]')
        assert _recv_event(ws, "model_selected")["name"] == "transfer"
        for junk in ('42["keypoints",{"frame":1,"t_ms":', '42' + "[" * 5000 + "]" * 5000, "4{}", '42{"a":1}'):
            ws.send(junk)
            err = _recv_event(ws, "error")
            assert err["code"] in ("malformed", "bad_payload"), err
            assert "malformed" in err["message"] or "payload" in err["message"]
        for msg in keypoint_messages(example_keypoints, 0, 5):
            ws.send("42" + json.dumps(["keypoints", msg]))
        while not OK(p := _recv_event(ws, "prediction")):
            assert p["status"] == "warming_up" and p["label"] is None
        assert p["frame"] == 4
    finally:
        ws.close()


def test_oversized_message_drops_only_that_client(
    server: BackgroundServer, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    other = recorder(server.url)
    try:
        other.client.emit("select_model", {"name": "transfer"})
        other.wait_for("model_selected")
        ws = _raw_ws(server.url)
        huge = "42" + json.dumps(["keypoints", {"frame": 0, "t_ms": 0, "landmarks": [[0.5] * 4] * 33,
                                                "padding": "x" * (200 * 1024)}])
        ws.send(huge)  # 200 KiB > the 64 KiB limit: the server closes this connection
        with pytest.raises((websocket.WebSocketException, OSError)):  # closed (1009) or reset
            for _ in range(100):
                ws.recv()
        ws.close()
        for msg in keypoint_messages(example_keypoints, 0, 6):
            other.client.emit("keypoints", msg)
        assert [p["frame"] for p in other.wait_for("prediction", 2, where=OK)] == [4, 5]
        wait_sessions(server.url, 1)
        assert health(server.url)["status"] == "ok"
    finally:
        other.close()


def test_client_vanishing_mid_window_is_cleaned_up(
    server: BackgroundServer, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    ws = _raw_ws(server.url)
    ws.send('42["select_model",{"name":"steps"}]')
    _recv_event(ws, "model_selected")
    for msg in keypoint_messages(example_keypoints, 0, 5):  # half a window
        ws.send("42" + json.dumps(["keypoints", msg]))
    wait_sessions(server.url, 1)
    # Drop the TCP connection without a WebSocket close frame or a Socket.IO disconnect.
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    wait_sessions(server.url, 0)
    # The server carries on: a new client gets a fresh, empty window.
    rec = recorder(server.url)
    try:
        rec.client.emit("select_model", {"name": "steps"})
        for msg in keypoint_messages(example_keypoints, 5, 14):
            rec.client.emit("keypoints", msg)
        rec.client.emit("health_ping", {"t": 1})
        rec.wait_for("health_pong")
        rec.wait_for("prediction", 9)
        # 9 frames: not a full window, so every result says warming_up and none has a class.
        assert {p["status"] for p in rec.of("prediction")} == {"warming_up"}
    finally:
        rec.close()


def test_cross_origin_socket_connections_are_refused(server: BackgroundServer) -> None:
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, origin="https://evil.example", timeout=5)
    assert refused.value.status_code == 400
    request = urllib.request.Request(f"{server.url}/socket.io/?EIO=4&transport=polling",
                                     headers={"Origin": "https://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as polled:
        urllib.request.urlopen(request, timeout=5)
    assert polled.value.code == 400
    same = websocket.create_connection(url, origin=server.url, timeout=5)  # the page's own origin
    assert same.recv().startswith("0{")
    same.close()


@pytest.mark.parametrize("mode", ["gevent", "threading"])
def test_accepted_sockets_have_nagle_disabled(make_app: Any, mode: str) -> None:
    from spml_web.server import make_app_server

    app = make_app(async_mode=mode)
    seen: list[int] = []
    inner = app.wsgi_app

    def probe(environ: Any, start_response: Any) -> Any:
        # The accepted socket, as each server hands it to the app.
        sock = environ.get("werkzeug.socket")
        if sock is None:
            sock = environ["wsgi.input"].rfile.raw._sock
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return inner(environ, start_response)

    app.wsgi_app = probe
    srv = make_app_server(app, port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert health(f"http://127.0.0.1:{srv.server_port}")["status"] == "ok"
    finally:
        srv.shutdown()
        srv.server_close()
    assert seen and all(v != 0 for v in seen)
