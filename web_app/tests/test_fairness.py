"""Fair shares under attack: a flooding client, idle connections and one address's many connections."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import socketio

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow  # needs the trained bundles

# A client in its own process that sends `keypoints` as fast as it can for SECONDS and counts its notices.
FLOODER = textwrap.dedent("""
    import json, sys, time
    import socketio
    url, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    notices = []
    sio = socketio.Client(reconnection=False)
    sio.on("rate_limited", lambda d: notices.append(d))
    sio.connect(url, transports=["websocket"], wait_timeout=10)
    row = [[0.5, 0.5, 0.0, 1.0]] * 33
    sent, t0 = 0, time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        if sent < (now - t0) * rate:
            sio.emit("keypoints", {"frame": sent, "t_ms": sent * 0.5, "landmarks": row})
            sent += 1
        else:
            time.sleep(0.0005)
    seconds = time.monotonic() - t0
    # Until the server has read the backlog (its notices stop): a busy server reads a flood late.
    seen = -1
    while len(notices) != seen:
        seen = len(notices)
        time.sleep(1.5)
    print(json.dumps({"sent": sent, "seconds": seconds, "notices": notices}))
    sio.disconnect()
""")


@pytest.fixture(params=["gevent", "threading"])
def server(make_app: Any, request: Any) -> Iterator[BackgroundServer]:
    with BackgroundServer(make_app(max_events_per_s=60, async_mode=request.param)) as srv:
        yield srv


def round_trips(url: str, messages: list[dict[str, Any]], hz: float = 30.0) -> tuple[list[float], list[Any]]:
    """Send keypoints at `hz` like a camera page; round trip (ms) of each prediction, and notices received."""
    sent: dict[int, float] = {}
    rtt: list[float] = []
    notices: list[Any] = []
    sio = socketio.Client(reconnection=False)
    sio.on("prediction", lambda p: rtt.append((time.perf_counter() - sent[p["frame"]]) * 1000.0))
    sio.on("rate_limited", notices.append)
    sio.connect(url, transports=["websocket"], wait_timeout=10)
    try:
        sio.emit("select_model", {"name": "steps"})
        time.sleep(0.3)
        t0 = time.perf_counter()
        for i, msg in enumerate(messages):
            while time.perf_counter() < t0 + i / hz:
                time.sleep(0.001)
            sent[msg["frame"]] = time.perf_counter()
            sio.emit("keypoints", msg)
        deadline = time.monotonic() + 5
        while len(rtt) < len(messages) - 9 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sio.disconnect()
    return rtt, notices


def test_a_flooding_client_cannot_raise_another_clients_tail(
    server: BackgroundServer, example_keypoints: Any, keypoint_messages: Any
) -> None:
    messages = keypoint_messages(example_keypoints, 0, 240)  # 8 s at 30 Hz
    flood = subprocess.Popen([sys.executable, "-c", FLOODER, server.url, "12", "2000"], stdout=subprocess.PIPE,
                             text=True)
    try:
        time.sleep(2.0)  # the flood is on and its 4-s burst allowance is spent
        rtt, notices = round_trips(server.url, messages)
        out, _ = flood.communicate(timeout=60)
    finally:
        flood.kill()
    report = json.loads(out)
    assert report["sent"] / report["seconds"] > 1000, report  # it really flooded
    dropped = sum(n["dropped"] for n in report["notices"])
    assert dropped > 0.8 * report["sent"] and report["notices"][0]["limit_per_s"] == 60
    assert notices == []  # the camera-rate client is never limited
    assert len(rtt) >= len(messages) - 9, "every prediction of the well-behaved client arrived"
    p99 = float(np.percentile(rtt, 99))
    assert p99 <= 50.0, f"round trip p99 {p99:.1f} ms (p50 {np.median(rtt):.1f} ms) under a 2000 events/s flood"
    stats = requests.get(f"{server.url}/api/health", timeout=10).json()["fairness"]
    assert stats["dropped_events"] >= dropped


def test_idle_connections_cannot_lock_out_a_new_client(make_app: Any) -> None:
    app = make_app(max_sessions=4, idle_timeout_s=1.0)
    with BackgroundServer(app) as srv:
        requests.get(f"{srv.url}/api/models", timeout=60)  # bundles loaded: connecting is quick
        idle = []
        for _ in range(4):  # they connect, then only answer the server's pings
            c = socketio.Client(reconnection=False)
            c.connect(srv.url, transports=["websocket"], wait_timeout=10)
            idle.append(c)
        try:
            late = socketio.Client(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                late.connect(srv.url, transports=["websocket"], wait_timeout=5)  # full, for now
            time.sleep(2.0)  # the idle timeout closes them
            newcomer = socketio.Client(reconnection=False)
            newcomer.connect(srv.url, transports=["websocket"], wait_timeout=10)
            # An active client stays: it sends events (the page's health_ping every 2 s does this).
            for _ in range(4):
                newcomer.emit("health_ping", {"t": 1})
                time.sleep(0.5)
            assert newcomer.connected
            stats = requests.get(f"{srv.url}/api/health", timeout=10).json()["fairness"]
            assert stats["connections"] == 1 and stats["idle_closed"] >= 4, stats
            newcomer.disconnect()
        finally:
            for c in idle:
                if c.connected:
                    c.disconnect()


def test_one_address_cannot_take_every_slot(make_app: Any) -> None:
    with BackgroundServer(make_app(max_sessions_per_client=2)) as srv:
        clients = []
        try:
            for _ in range(2):
                c = socketio.Client(reconnection=False)
                c.connect(srv.url, transports=["websocket"], wait_timeout=10)
                clients.append(c)
            third = socketio.Client(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                third.connect(srv.url, transports=["websocket"], wait_timeout=5)
            clients[0].disconnect()
            time.sleep(0.3)
            third.connect(srv.url, transports=["websocket"], wait_timeout=10)
            clients.append(third)
        finally:
            for c in clients:
                if c.connected:
                    c.disconnect()

