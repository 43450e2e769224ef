"""Fair shares under attack: a flooding client, idle connections and one address's many connections."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest
import requests
import socketio

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow  # needs the trained bundles

# The clients below run in processes of their own and speak Socket.IO over a raw WebSocket with their frames
# encoded up front (as the benchmark's load generator does). python-socketio's client would spend a whole
# core of this 2-core machine on 2,000 events/s, and in the test's process its threads would share a GIL
# with whatever threads earlier tests left behind: the test would measure those, not the server.
RAW_CLIENT = textwrap.dedent("""
    import json, os, sys, threading, time
    from websockets.sync.client import connect

    def join(url, on_event):
        # Connect, join the main namespace, answer pings; on_event(name, data, arrival) on a reader thread.
        ws = connect(url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                     compression=None, max_size=None)
        assert ws.recv().startswith("0")
        ws.send("40")
        joined = threading.Event()
        def read():
            try:
                for msg in ws:
                    now = time.perf_counter()
                    if msg == "2":
                        ws.send("3")
                    elif msg.startswith("40"):
                        joined.set()
                    elif msg.startswith("42"):
                        name, data = (json.loads(msg[2:]) + [None])[:2]
                        on_event(name, data, now)
            except Exception:
                pass
        threading.Thread(target=read, daemon=True).start()
        joined.wait(30)
        return ws
""")

# Sends `keypoints` at RATE for SECONDS (or until STOP exists) and counts its notices.
FLOODER = RAW_CLIENT + textwrap.dedent("""
    url, seconds, rate, stop = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    notices = []
    ws = join(url, lambda name, data, t: notices.append(data) if name == "rate_limited" else None)
    row = json.dumps([[0.5, 0.5, 0.0, 1.0]] * 33, separators=(",", ":"))
    sent, t0 = 0, time.monotonic()
    while (now := time.monotonic()) - t0 < seconds and not (sent % 500 == 0 and os.path.exists(stop)):
        if sent < (now - t0) * rate:
            ws.send('42["keypoints",{"frame":%d,"t_ms":%s,"landmarks":%s}]' % (sent, sent * 0.5, row))
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
    ws.close()
""")


@pytest.fixture(params=["gevent", "threading"])
def server(app_process: Any, models_dir: Any, request: Any) -> Any:
    # In its own process, as `spml serve` runs: in the test's process the server's thread and the
    # test's threads would take turns on one GIL (5-ms switches), which is not the server's latency.
    return app_process("--models-dir", str(models_dir), "--workers", "1", "--max-events-per-s", "60",
                       "--async-mode", request.param)


# A camera-rate client: after selecting the model, it sends the frames of FRAMES_JSON at HZ, then prints the
# round trip (ms) of each prediction and the rate_limited notices it got.
CAMERA = RAW_CLIENT + textwrap.dedent("""
    url, frames, hz = sys.argv[1], json.load(open(sys.argv[2])), float(sys.argv[3])
    sent, rtt, notices = {}, [], []
    def on_event(name, data, arrival):
        if name == "prediction":
            rtt.append((arrival - sent[data["frame"]]) * 1000.0)
        elif name == "rate_limited":
            notices.append(data)
    ws = join(url, on_event)
    ws.send('42["select_model",{"name":"steps"}]')
    time.sleep(0.3)
    t0 = time.perf_counter()
    for i, (frame, text) in enumerate(frames):
        delay = t0 + i / hz - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[frame] = time.perf_counter()
        ws.send(text)
    deadline = time.monotonic() + 5
    while len(rtt) < len(frames) - 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({"rtt": rtt, "notices": notices}))
    ws.close()
""")


def round_trips(url: str, messages: list[dict[str, Any]], folder: Any, hz: float = 30.0
                ) -> tuple[list[float], list[Any]]:
    """Send keypoints at `hz` like a camera page; round trip (ms) of each prediction, and notices received."""
    frames = folder / "frames.json"
    frames.write_text(json.dumps([[m["frame"], "42" + json.dumps(["keypoints", m], separators=(",", ":"))]
                                  for m in messages]))
    out = subprocess.run([sys.executable, "-c", CAMERA, url, str(frames), str(hz)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    return report["rtt"], report["notices"]


def test_a_flooding_client_cannot_raise_another_clients_tail(
    server: Any, example_keypoints: Any, keypoint_messages: Any, tmp_path: Any
) -> None:
    messages = keypoint_messages(example_keypoints, 0, 240)  # 8 s at 30 Hz
    requests.get(f"{server.url}/api/models", timeout=60)  # bundles loaded: the first window is not start-up
    stop = tmp_path / "stop-flooding"
    flood = subprocess.Popen([sys.executable, "-c", FLOODER, server.url, "40", "2000", str(stop)],
                             stdout=subprocess.PIPE, text=True)
    # The virtual machines this runs on lose 20-40% of their CPU time to the hypervisor at moments (steal
    # time in /proc/stat), which alone puts a p99 over 50 ms. So the bound must hold in one of up to three
    # 8-s windows; a server that the flood slows down (e.g. one that classifies it) misses it in all three.
    tails: list[tuple[float, float]] = []
    try:
        time.sleep(2.0)  # the flood is on and its 4-s burst allowance is spent
        for _ in range(3):
            rtt, notices = round_trips(server.url, messages, tmp_path)
            assert notices == []  # the camera-rate client is never limited
            assert len(rtt) >= len(messages) - 9, "every prediction of the well-behaved client arrived"
            tails.append((float(np.median(rtt)), float(np.percentile(rtt, 99))))
            if tails[-1][1] <= 50.0:
                break
        stop.touch()
        out, _ = flood.communicate(timeout=60)
    finally:
        flood.kill()
    report = json.loads(out)
    assert report["sent"] / report["seconds"] > 1000, report  # it really flooded, all along
    dropped = sum(n["dropped"] for n in report["notices"])
    assert dropped > 0.8 * report["sent"] and report["notices"][0]["limit_per_s"] == 60
    shown = ", ".join(f"p50 {p50:.1f} / p99 {p99:.1f} ms" for p50, p99 in tails)
    assert tails[-1][1] <= 50.0, f"round trip under a 2000 events/s flood, each window: {shown}"
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

