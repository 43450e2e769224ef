"""Fail-safe live semantics, for real: a served app, a real Socket.IO client, a trained bundle, and
an OSC actuator sending UDP datagrams to a socket this test listens on (the "device").

- nobody in view: every result says no_person (or warming_up), nothing is classified, nothing sent;
- end_stream (Stop in the page): the device gets its off datagram within 50 ms;
- a 3 s stall of the session: the backlog is dropped as late, never classified, never switched on.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow

DECISIONS = {"actions": {"Left Step": 1, "Right Step": 2}, "off": 0, "threshold": 0.5, "min_bout": 1,
             "dead_man_ms": None}


class Device:
    """A UDP socket standing in for an OSC receiver: records (perf_counter, address) per datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except OSError:
                continue
            self.got.append((time.perf_counter(), data.split(b"\0", 1)[0].decode()))

    def wait(self, address: str, timeout: float = 10.0) -> float:
        """perf_counter time of the first datagram to ``address`` (AssertionError after timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, a in list(self.got):
                if a == address:
                    return t
            time.sleep(0.001)
        raise AssertionError(f"no datagram to {address} in {timeout} s; got {[a for _, a in self.got]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()


@pytest.fixture()
def device() -> Iterator[Device]:
    d = Device()
    yield d
    d.close()


@pytest.fixture()
def server(make_app: Any, models_dir: Any, device: Device, tmp_path: Any) -> Iterator[BackgroundServer]:
    actuators = [{"use": "osc", "name": "stim", "decisions": DECISIONS,
                  "options": {"host": "127.0.0.1", "port": device.port, "address": "/spml/{label}"}}]
    with BackgroundServer(make_app(model=models_dir / "steps", actuators=actuators, actuation_dir=tmp_path)) as srv:
        yield srv


def _messages(seq: Any, start: int, stop: int, empty: bool = False) -> list[dict[str, Any]]:
    return [{"frame": i, "t_ms": float(seq.timestamps_ms[i]),
             "landmarks": None if empty else seq.xyzv[i].tolist(), "width": seq.width, "height": seq.height}
            for i in range(start, stop)]


def test_nobody_in_view_gives_no_person_and_never_actuates(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device,
) -> None:
    rec = recorder(server.url)
    rec.wait_for("hello")
    for msg in _messages(example_keypoints, 0, 60, empty=True):
        rec.client.emit("keypoints", msg)
    results = rec.wait_for("prediction", 60)
    statuses = [r["status"] for r in results]
    # Nobody for more than 30% of the window's duration: no_person as soon as that is so.
    assert set(statuses[:3]) == {"warming_up"} and set(statuses[3:]) == {"no_person"}, statuses
    assert all(r["label"] is None and r["probabilities"] is None for r in results)
    time.sleep(0.2)
    assert rec.of("action") == [] and device.got == []


def test_end_stream_switches_the_device_off_within_50_ms(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device,
) -> None:
    rec = recorder(server.url)
    rec.wait_for("hello")
    for msg in _messages(example_keypoints, 0, 40):
        rec.client.emit("keypoints", msg)
    on = rec.wait_for("action", where=lambda a: a["action"] == "on")[0]
    device.wait("/spml/" + on["label"].replace(" ", "_"))  # OSC addresses have no spaces
    rec.wait_for("prediction", 40)
    sent = time.perf_counter()
    rec.client.emit("end_stream", {"reason": "stop"})
    off_at = device.wait("/spml/off")
    assert (off_at - sent) * 1000.0 < 50.0, f"off {1000 * (off_at - sent):.1f} ms after end_stream"
    ended = rec.wait_for("stream_ended")[0]
    assert ended["reason"] == "stop" and [a["action"] for a in ended["actions"]] == ["off"]
    # Nothing more for that stream: no prediction arrives after the end.
    n = len(rec.of("prediction"))
    time.sleep(0.3)
    assert len(rec.of("prediction")) == n


def test_each_action_reaches_the_page_before_the_prediction_it_follows(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device,
) -> None:
    """A page starts its Bluetooth write on `action`: that must not wait behind the prediction. Predictions
    take a shortcut to the socket when nothing is queued (fast_path.emit_now); an action just queued is."""
    rec = recorder(server.url)
    rec.wait_for("hello")
    for msg in _messages(example_keypoints, 0, 150):
        rec.client.emit("keypoints", msg)
        time.sleep(1 / 60)
    rec.wait_for("prediction", where=lambda p: p["frame"] == 149, timeout=20)
    order = [(e, d["frame"]) for e, d in rec.events if e in ("action", "prediction") and "frame" in d]
    actions = [i for i, (e, _) in enumerate(order) if e == "action"]
    assert actions, "the example switches the device on at least once"
    for i in actions:
        frame = order[i][1]
        prediction = order.index(("prediction", frame))
        assert i < prediction, f"action of frame {frame} came after its prediction"


def test_a_3_s_stall_drops_the_backlog_and_never_switches_on_for_it(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device,
) -> None:
    from spml_web.app import state

    rec = recorder(server.url)
    rec.wait_for("hello")
    session = state(server.app).sessions.get(rec.sid)
    assert session is not None
    msgs = _messages(example_keypoints, 0, 200)
    sent_at: dict[int, float] = {}
    release_at = [float("inf")]

    def stall() -> None:
        # A real stall: the session's worker cannot take its lock (as with a slow model or a GC pause).
        with session.lock:
            time.sleep(3.0)
            release_at[0] = time.perf_counter()

    staller = threading.Thread(target=stall)
    for i, msg in enumerate(msgs):
        if i == 30:
            staller.start()
            time.sleep(0.05)
        sent_at[msg["frame"]] = time.perf_counter()
        rec.client.emit("keypoints", msg)
        time.sleep(1 / 30)
    staller.join()
    rec.wait_for("prediction", where=lambda p: p["frame"] == 199, timeout=20)
    late = rec.wait_for("late")
    assert sum(n["count"] for n in late) > 30, late
    bound = 250.0
    stalled = [f for f, t in sent_at.items() if t < release_at[0] - bound / 1000.0 and t > sent_at[30]]
    assert len(stalled) > 60
    predicted = {p["frame"] for p in rec.of("prediction")}
    # No frame of the backlog was decided: each was older than the bound when the worker got to it.
    assert not predicted & set(stalled), sorted(predicted & set(stalled))[:10]
    assert all(p["age_ms"] < bound + 100 for p in rec.of("prediction"))
    on_frames = [a["frame"] for a in rec.of("action") if a["action"] == "on"]
    assert not set(on_frames) & set(stalled), on_frames


def test_frames_left_waiting_in_the_socket_are_shed_unread_and_never_actuate(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device, stream_through_stall: Any,
) -> None:
    """The connection's own thread stalls (its select_model waits 1.5 s for the session): the keypoints sent
    meanwhile wait in the WebSocket's buffer, and those older than the bound when the thread is free again
    are shed there, unparsed (arrival.py), with a late notice."""
    from spml_web.app import state

    rec = recorder(server.url, ["websocket"])
    rec.wait_for("hello")
    session = state(server.app).sessions.get(rec.sid)
    assert session is not None
    sent_at, released = stream_through_stall(rec, session, _messages(example_keypoints, 0, 150))
    rec.wait_for("prediction", where=lambda p: p["frame"] == 149, timeout=20)
    bound = 250.0
    stalled = {f for f, t in sent_at.items() if t < released - bound / 1000.0}
    assert len(stalled) > 25
    late = rec.wait_for("late")
    assert sum(n["count"] for n in late) >= len(stalled), (late, len(stalled))
    assert late[0]["first_frame"] == 20 and late[0]["max_age_ms"] == bound
    predicted = {p["frame"] for p in rec.of("prediction")}
    assert not predicted & stalled, sorted(predicted & stalled)[:10]
    # Ages count from the socket, not from the handler: none of the frames decided was held back long.
    assert all(p["age_ms"] < bound + 100 for p in rec.of("prediction"))
    on_frames = {a["frame"] for a in rec.of("action") if a["action"] == "on"}
    assert not on_frames & stalled, on_frames


def test_bad_timestamps_get_codes_and_never_actuate(
    server: BackgroundServer, example_keypoints: Any, recorder: Any, device: Device,
) -> None:
    rec = recorder(server.url)
    rec.wait_for("hello")
    msgs = _messages(example_keypoints, 0, 12)
    for msg in msgs[:6]:
        rec.client.emit("keypoints", msg)
    rec.client.emit("keypoints", {**msgs[6], "t_ms": msgs[2]["t_ms"]})  # backwards
    rec.client.emit("keypoints", {**msgs[6], "t_ms": "NaN"})  # not a number
    rec.client.emit("keypoints", {**msgs[5], "frame": 6})  # a repeated timestamp: nothing new to classify
    # The NaN is refused on receipt, the backwards frame by the session's worker: either may come first.
    codes = sorted(e["code"] for e in rec.wait_for("error", 2))
    assert codes == ["bad_payload", "out_of_order"], codes
    for msg in msgs[6:]:
        rec.client.emit("keypoints", msg)
    results = rec.wait_for("prediction", 12)  # the session carries on
    assert [r["frame"] for r in results] == list(range(12))
    assert all(r["status"] == "warming_up" for r in results[:9])


def test_a_bundle_from_before_timing_loads_with_the_30_fps_fallback(bundles: dict[str, Any], tmp_path: Any,
                                                                   example_keypoints: Any) -> None:
    import json
    import shutil

    from spml_core import load_bundle

    old = tmp_path / "old"
    shutil.copytree(bundles["steps"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("timing", "gate", "pose"):
        manifest["features"].pop(key, None)
    (old / "manifest.json").write_text(json.dumps(manifest))
    predictor = load_bundle(old)
    assert predictor.timing.source == "fallback" and predictor.timing.fps == 30.0
    assert load_bundle(bundles["steps"]).timing.source == "dataset"
    seq = example_keypoints
    got = predictor.predict_stream(seq.xyzv[:40], seq.timestamps_ms[:40], seq.width, seq.height)
    assert all(r["status"] == "warming_up" for r in got[:9])
    assert {r["status"] for r in got[9:]} <= {"ok", "unknown"}
