"""Actuation wired into the live app, for real: the example video's keypoints stream over Socket.IO
to a trained bundle; each session's decisions drive the `ble` actuator over bumble to a virtual BLE
peripheral (a real host, link layer and GATT server) and reach the page as `action` events.

Expected decisions are computed by a fresh DecisionEngine from the predictions the client received,
so these tests check the glue (every prediction fed in order, with its own timestamps, to its own
session) and not the model's numerics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from spml_core.actuation.decisions import DecisionConfig, DecisionEngine
from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow
VirtualPeripheral = pytest.importorskip("spml_actuator_ble.virtual", reason="needs plugins/actuator_ble").VirtualPeripheral

STIM = {"actions": {"Left Step": "01", "Right Step": "02"}, "off": "00", "threshold": 0.52, "exit_threshold": 0.5,
        "min_bout": 3, "dead_man_ms": 5000}
PAGE = {"actions": {"Left Step": "0a", "Right Step": "0b", "Successful Weight Transfer": "0c"}, "off": "ff",
        "threshold": 0.52, "exit_threshold": 0.5, "min_bout": 3, "dead_man_ms": 1500}


def actuators(vp: Any, log: str | None = "actions.jsonl") -> list[dict[str, Any]]:
    """A server-side BLE stimulator on the virtual peripheral and a run_in: browser one for the page."""
    return [
        {"use": "ble", "name": "stim", "log": log, "decisions": STIM,
         "options": {"device_name": vp.name, "transport": "bumble", "hci_transport": vp.hci_transport,
                     "with_response": True, "scan_timeout_s": 2}},
        {"use": "ble", "name": "page", "run_in": "browser", "log": log, "decisions": PAGE,
         "options": {"device_name": "SPML-Page", "service_uuid": "ffe0", "characteristic_uuid": "ffe1"}},
    ]


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/health", timeout=5) as resp:
        return json.loads(resp.read())


def wait_until(pred: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.02)


def expected_actions(predictions: list[dict[str, Any]], name: str, decisions: dict[str, Any],
                     run_in: str) -> list[dict[str, Any]]:
    """The action events a fresh decision engine derives from these predictions (in order)."""
    engine = DecisionEngine.from_config(DecisionConfig(**decisions), lambda v, _: bytes.fromhex(v), name)
    out = []
    for p in predictions:
        for d in engine.update(p["t_ms"], p["label"], p["probabilities"], p["frame"], p.get("status")):
            out.append({**d.as_record(), "run_in": run_in})
    return out


def _on_after_each(predictions: list[dict[str, Any]], decisions: dict[str, Any]) -> list[bool]:
    """Whether a fresh decision engine leaves its device on after each prediction."""
    engine = DecisionEngine.from_config(DecisionConfig(**decisions), lambda v, _: bytes.fromhex(v), "probe")
    out = []
    for p in predictions:
        engine.update(p["t_ms"], p["label"], p["probabilities"], p["frame"], p.get("status"))
        out.append(engine.is_on)
    return out


def log_records(path: Path, actuator: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["actuator"] == actuator]


@pytest.fixture()
def peripheral() -> Iterator[Any]:
    with VirtualPeripheral(name="SPML-Web") as vp:
        yield vp


@pytest.fixture()
def live(make_app: Any, models_dir: Path, peripheral: Any, tmp_path: Path) -> Iterator[BackgroundServer]:
    """The app (every session starts with 'steps') with both actuators, on 127.0.0.1, BLE connected."""
    # These tests send a whole video in one burst to check the glue; a generous staleness bound keeps
    # every frame (test_live_lifecycle.py checks the 250 ms default drops late frames).
    app = make_app(model=models_dir / "steps", actuators=actuators(peripheral), actuation_dir=tmp_path,
                   max_age_ms=60_000)
    with BackgroundServer(app) as server:
        wait_until(lambda: health(server.url)["actuators"][0]["state"] == "connected", what="BLE connection")
        yield server


def test_sessions_drive_the_peripheral_and_the_page(
    live: BackgroundServer, peripheral: Any, tmp_path: Path, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    msgs = keypoint_messages(example_keypoints)
    b = recorder(live.url)  # another browser, on another model, connected throughout
    a = recorder(live.url)
    try:
        b.client.emit("select_model", {"name": "transfer"})
        b.wait_for("model_selected")
        (hello,) = a.wait_for("hello")
        assert hello["model"] == "steps"
        assert a.wait_for("actuators") == [{"actuators": [{
            "actuator": "page", "service_uuid": "0000ffe0-0000-1000-8000-00805f9b34fb",
            "characteristic_uuid": "0000ffe1-0000-1000-8000-00805f9b34fb", "with_response": False,
            "device_name": "SPML-Page", "max_age_ms": 500.0}]}]

        # A probe session finds the last frame at which both devices would be on, so that a's stream
        # ends mid-bout (what the dead-man and disconnect checks below need), whatever the model says.
        probe = recorder(live.url)
        probe.wait_for("hello")
        for msg in msgs:
            probe.client.emit("keypoints", msg)
        probe_preds = probe.wait_for("prediction", len(msgs))
        probe_sid = probe.sid
        probe.close()
        stim_on = _on_after_each(probe_preds, STIM)
        page_on = _on_after_each(probe_preds, PAGE)
        both = [i for i, (s, p) in enumerate(zip(stim_on, page_on)) if s and p]
        assert both, "the model never switches both devices on in the example"
        all_msgs, msgs = msgs, msgs[: both[-1] + 1]

        for msg in msgs:
            a.client.emit("keypoints", msg)
        preds = a.wait_for("prediction", len(msgs))  # warming-up results included
        want_stim = expected_actions(preds, "stim", STIM, "server")
        want_page = expected_actions(preds, "page", PAGE, "browser")
        assert len(want_stim) >= 6 and want_stim[0]["action"] == "on"  # several bouts of both steps
        got = a.wait_for("action", len(want_stim) + len(want_page))
        assert [e for e in got if e["actuator"] == "stim"] == want_stim
        assert [e for e in got if e["actuator"] == "page"] == want_page
        assert want_stim[-1]["action"] == "on" and want_page[-1]["action"] == "on"  # the video ends mid-bout

        # The stream stops: the page's actuator (dead_man_ms 1500) is switched off by the watchdog,
        # the stimulator (5000) stays on until the browser goes away.
        (dead,) = [e for e in a.wait_for("action", len(got) + 1, timeout=5)[len(got):]]
        assert (dead["actuator"], dead["action"], dead["reason"], dead["payload_hex"]) == ("page", "off", "dead_man", "ff")
        assert dead["t_ms"] == pytest.approx(preds[-1]["t_ms"] + 1500)
        assert peripheral.received[-1].data in (b"\x01", b"\x02")
        a.close()
        wait_until(lambda: peripheral.received and peripheral.received[-1].data == b"\x00", what="off on disconnect")
        assert b.of("action") == []  # nothing of a's reached b

        # b carries on: its own predictions and its own decisions (the transfer model only moves the page's).
        for msg in all_msgs:
            b.client.emit("keypoints", msg)
        preds_b = b.wait_for("prediction", len(all_msgs))  # warming-up results included
        assert [p["frame"] for p in preds_b] == list(range(len(all_msgs)))
        want_b = expected_actions(preds_b, "page", PAGE, "browser")
        assert want_b and want_b[0]["label"] == "Successful Weight Transfer"
        assert b.wait_for("action", len(want_b)) == want_b
        status = {s["actuator"]: s for s in health(live.url)["actuators"]}
        assert len(health(live.url)["sessions"]) == 1
    finally:
        a.close()
        b.close()
    live.stop()  # flushes the action log

    # Every decision has one log record (sent, or dropped by the runner's policy when the device was
    # busy: records are written when resolved, so a dropped one may precede an earlier decision's
    # "sent"), and the device received exactly what the log says was sent, in order.
    every = log_records(tmp_path / "actions.jsonl", "stim")  # the probe's session drove the device too
    records = [r for r in every if r["session"] == a.sid]
    off = {"action": "off", "label": want_stim[-1]["label"], "reason": "stream_end", "frame": preds[-1]["frame"]}

    def key(r: dict[str, Any]) -> tuple[int, bool, str, str]:
        return (r["frame"], r["action"] == "on", r["action"], r["label"])

    assert sorted(map(key, records)) == sorted(map(key, [*want_stim, off]))
    sent = [bytes.fromhex(r["payload_hex"]) for r in every if r["result"] == "sent"]
    assert [r.data for r in peripheral.received] == sent
    assert sent.count(b"\x01") + sent.count(b"\x02") >= 1 and sent[-1] == b"\x00"
    assert records[-1]["reason"] == "stream_end" and records[-1]["result"] == "sent"
    assert {r["session"] for r in every} == {a.sid, probe_sid}
    assert status["stim"]["sent"] == len(sent) and status["stim"]["state"] == "connected"
    page = log_records(tmp_path / "actions.jsonl", "page")
    assert {r["result"] for r in page} == {"emitted to the page"}
    assert {r["session"] for r in page} == {a.sid, b.sid, probe_sid}


def test_reset_and_model_switch_end_the_stream(
    live: BackgroundServer, peripheral: Any, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    msgs = keypoint_messages(example_keypoints, 0, 20)  # 'Right Step' from frame 9: on at frame 11
    a = recorder(live.url)
    try:
        a.wait_for("hello")
        for msg in msgs:
            a.client.emit("keypoints", msg)
        assert [(e["actuator"], e["action"], e["frame"]) for e in a.wait_for("action", 2)] == [
            ("stim", "on", 11), ("page", "on", 11)]
        assert [r.data for r in peripheral.wait_for(1)] == [b"\x02"]
        a.client.emit("reset")
        offs = a.wait_for("action", 4)[2:]
        assert {(e["actuator"], e["action"], e["reason"]) for e in offs} == {
            ("stim", "off", "stream_end"), ("page", "off", "stream_end")}
        assert [r.data for r in peripheral.wait_for(2)] == [b"\x02", b"\x00"]
        # After the reset the same frames are a new stream with a new session: it acts again.
        for msg in msgs:
            a.client.emit("keypoints", msg)
        a.wait_for("action", 6)
        assert [r.data for r in peripheral.wait_for(3)] == [b"\x02", b"\x00", b"\x02"]
        a.client.emit("select_model", {"name": "transfer"})
        a.wait_for("model_selected")
        assert [r.data for r in peripheral.wait_for(4)] == [b"\x02", b"\x00", b"\x02", b"\x00"]
    finally:
        a.close()


def test_no_actuators_configured(make_app: Any) -> None:
    app = make_app()
    client = app.extensions["socketio"].test_client(app)
    assert [e["args"][0] for e in client.get_received() if e["name"] == "actuators"] == [{"actuators": []}]
    assert app.test_client().get("/api/health").json["actuators"] == []


def test_spml_serve_config_drives_the_device_and_switches_it_off_on_sigterm(
    bundles: dict[str, Path], peripheral: Any, tmp_path: Path, example_keypoints: Any, keypoint_messages: Any,
    recorder: Any,
) -> None:
    import yaml

    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"actuators": actuators(peripheral, "logs/actions.jsonl")[:1]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "spml_core", "serve", "--config", str(config), "--model", str(bundles["steps"]),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    a = None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("spml serve: http://"):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise AssertionError(f"spml serve exited: {proc.stderr.read()}")  # type: ignore[union-attr]
            lines.append(line)
        url = lines[-1].split()[2].rstrip("/")
        assert f"actuator stim (ble, run_in server; actions logged to {tmp_path / 'logs/actions.jsonl'})" in "".join(lines)
        wait_until(lambda: health(url)["actuators"][0]["state"] == "connected", what="BLE connection")
        a = recorder(url)
        for msg in keypoint_messages(example_keypoints, 0, 20):
            a.client.emit("keypoints", msg)
        assert a.wait_for("action")[0]["action"] == "on"
        assert [r.data for r in peripheral.wait_for(1)] == [b"\x02"]
        proc.send_signal(signal.SIGTERM)  # systemd's stop, docker stop: the device must not stay on
        assert proc.wait(timeout=20) == 0
        assert [r.data for r in peripheral.wait_for(2)] == [b"\x02", b"\x00"]
        records = log_records(tmp_path / "logs" / "actions.jsonl", "stim")
        assert [(r["action"], r["reason"], r["result"]) for r in records] == [
            ("on", "bout", "sent"), ("off", "stream_end", "sent")]
    finally:
        if a is not None:
            a.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
