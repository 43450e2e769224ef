"""ActuatorRunner, ActionLog and ActuationSession: non-blocking submits, drop/coalesce policy, logs.

The device here is a small Actuator whose ``send`` blocks until the test opens a gate, so a
busy or failing device is reproduced exactly; the BLE and OSC plugins test real devices.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from spml_core.actuation.hub import ActuationHub
from spml_core.actuation.runner import ActionLog, ActuatorRunner
from spml_core.components import Actuator, ActuatorStatus
from spml_core.config import Config
from spml_core.actuation.decisions import Decision
from spml_core.errors import ConfigError


class GatedActuator(Actuator):
    """Records payloads; each send waits for the gate; can be told to fail the next sends."""

    name = "gated"

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.sent: list[bytes] = []
        self.fail_next = 0
        self.closed = False

    def send(self, payload: bytes, decision) -> None:
        self.started.set()
        if not self.gate.wait(10):
            raise TimeoutError("gate never opened")
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("device went away")
        self.sent.append(payload)

    def status(self) -> ActuatorStatus:
        return ActuatorStatus("connected", "test device")

    def close(self) -> None:
        self.closed = True


def on(payload: bytes, t: float = 0.0) -> Decision:
    return Decision("dev", "on", "step", "bout", t, int(t), 0.9, payload)


def off(t: float = 0.0) -> Decision:
    return Decision("dev", "off", "step", "class_end", t, int(t), None, b"\x00")


def wait_until(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_submit_never_waits_for_a_busy_device_and_keeps_only_the_latest_on(tmp_path):
    dev = GatedActuator()
    log = ActionLog(tmp_path / "actions.jsonl")
    runner = ActuatorRunner(dev, "dev", log).start()
    dev.gate.clear()
    runner.submit(on(b"\x01"))
    assert dev.started.wait(5)  # the device is now stuck inside send()
    worst = 0.0
    for i in range(2, 200):
        t0 = time.perf_counter()
        runner.submit(on(bytes([i % 256]), t=i))
        worst = max(worst, time.perf_counter() - t0)
    # The device stays stuck for the whole loop: a submit that waited for it would never return. The
    # bound is loose so that a loaded CI machine's scheduling pauses do not read as waiting.
    assert worst < 0.5, f"submit blocked for {worst * 1000:.1f} ms"
    assert runner.pending() == 1
    dev.gate.set()
    wait_until(lambda: len(dev.sent) == 2)
    assert dev.sent == [b"\x01", bytes([199])]
    assert runner.counts["dropped"] == 197
    runner.close()
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    results = [r["result"] for r in lines]
    assert results.count("sent") == 2
    assert sum(r.startswith("dropped: superseded") for r in results) == 197
    sent = [r for r in lines if r["result"] == "sent"]
    assert sent[0]["payload_hex"] == "01" and sent[0]["latency_ms"] >= 0 and sent[0]["sent_at"]
    assert {"frame", "t_ms", "label", "probability", "action", "decided_at"} <= set(sent[0])


def test_off_actions_are_never_dropped_and_coalesce():
    dev = GatedActuator()
    runner = ActuatorRunner(dev, "dev").start()
    dev.gate.clear()
    runner.submit(on(b"\x01"))
    assert dev.started.wait(5)
    runner.submit(off())
    runner.submit(on(b"\x02"))  # supersedes nothing but itself later
    runner.submit(off())
    runner.submit(off())  # identical to the pending off: coalesced
    dev.gate.set()
    wait_until(lambda: runner.pending() == 0 and runner.counts["sent"] >= 2)
    runner.close()
    assert dev.sent == [b"\x01", b"\x00"]
    assert runner.counts["dropped"] == 1 and runner.counts["coalesced"] == 2


def test_a_failed_off_is_retried_until_delivered():
    dev = GatedActuator()
    runner = ActuatorRunner(dev, "dev", retry_ms=20).start()
    dev.fail_next = 3
    runner.submit(off())
    wait_until(lambda: dev.sent == [b"\x00"])
    assert runner.counts["failed"] == 3 and runner.counts["retried"] == 3
    dev.fail_next = 1
    runner.submit(on(b"\x05"))
    wait_until(lambda: runner.counts["failed"] == 4)
    time.sleep(0.1)
    assert dev.sent == [b"\x00"]  # a failed on-action is not retried: a late stimulus is wrong
    runner.close()


def test_stale_on_actions_are_dropped():
    dev = GatedActuator()
    runner = ActuatorRunner(dev, "dev", max_age_ms=50).start()
    dev.gate.clear()
    runner.submit(on(b"\x01"))
    assert dev.started.wait(5)
    runner.submit(on(b"\x02"))
    time.sleep(0.15)
    dev.gate.set()
    wait_until(lambda: runner.counts["stale"] == 1)
    runner.close()
    assert dev.sent == [b"\x01"]


def test_close_delivers_pending_off_and_closes_the_device():
    dev = GatedActuator()
    runner = ActuatorRunner(dev, "dev").start()
    dev.gate.clear()
    runner.submit(on(b"\x01"))
    assert dev.started.wait(5)
    runner.submit(off())
    threading.Timer(0.1, dev.gate.set).start()
    runner.close(timeout=2)
    assert dev.sent == [b"\x01", b"\x00"] and dev.closed


class OneActuatorRegistry:
    """The registry interface ActuationHub uses, offering only GatedActuator."""

    def get(self, kind: str, name: str) -> type:
        from spml_core.errors import UnknownComponentError

        if kind == "actuator" and name == "gated":
            return GatedActuator
        raise UnknownComponentError(f"unknown {kind} {name!r}")

    def build(self, kind: str, ref: str, options: dict | None = None, where: str | None = None) -> object:
        """Registry.build: the named class, with its options validated."""
        cls = self.get(kind, ref)
        return cls(cls.Options.model_validate(options or {}))


def _hub(tmp_path, **decisions):
    registry = OneActuatorRegistry()
    cfg = Config.model_validate(
        {
            "actuators": [
                {
                    "use": "gated",
                    "log": str(tmp_path / "log.jsonl"),
                    "decisions": {"actions": {"step": [1]}, "off": [0], **decisions},
                },
                {
                    "use": "gated",
                    "name": "page",
                    "run_in": "browser",
                    "log": str(tmp_path / "log.jsonl"),
                    "decisions": {"actions": {"step": "s"}, "off": "x", "min_bout": 2},
                },
            ]
        }
    )
    cfg.base_dir = tmp_path
    return ActuationHub.from_config(cfg, registry, tick_ms=10)


def test_session_routes_decisions_to_runner_and_page_and_logs_them(tmp_path):
    hub = _hub(tmp_path, refractory_ms=1000)
    events = []
    session = hub.session(emit=events.append, session_id="abc")
    seq = ["step"] * 3 + ["rest"] * 2 + ["step"] * 3 + ["rest"]
    for i, label in enumerate(seq):
        session.on_prediction(i * 33.0, label, {"step": 0.9 if label == "step" else 0.1}, frame=i)
        wait_until(lambda: hub.targets[0].runner.pending() == 0)  # paced like a camera, not a flood
    device = hub.targets[0].actuator
    wait_until(lambda: device.sent == [b"\x01", b"\x00"])
    hub.close()
    assert [(e["actuator"], e["action"], e["payload_hex"], e["frame"]) for e in events] == [
        ("gated", "on", "01", 0),
        ("page", "on", "73", 1),
        ("gated", "off", "00", 3),
        ("page", "off", "78", 3),
        ("gated", "suppressed", None, 5),
        ("page", "on", "73", 6),
        ("page", "off", "78", 8),
    ]
    assert {e["run_in"] for e in events if e["actuator"] == "page"} == {"browser"}
    assert hub.targets[1].actuator.sent == []  # the page writes browser actuators, not the server
    records = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    by_result = {(r["actuator"], r["result"]) for r in records}
    assert ("gated", "sent") in by_result
    assert ("gated", "suppressed: refractory") in by_result
    assert ("page", "emitted to the page") in by_result
    assert all(r["session"] == "abc" for r in records)


def test_dead_man_watchdog_sends_off_when_predictions_stop(tmp_path):
    hub = _hub(tmp_path, dead_man_ms=100)
    events = []
    session = hub.session(emit=events.append)
    session.on_prediction(0.0, "step", {"step": 0.9})
    wait_until(lambda: any(e["reason"] == "dead_man" and e["actuator"] == "gated" for e in events), 3)
    device = hub.targets[0].actuator
    wait_until(lambda: device.sent == [b"\x01", b"\x00"])
    hub.close()


def test_closing_a_session_turns_devices_off(tmp_path):
    hub = _hub(tmp_path, dead_man_ms=None)
    session = hub.session()
    session.on_prediction(0.0, "step", {"step": 0.9})
    device = hub.targets[0].actuator
    wait_until(lambda: device.sent == [b"\x01"])
    session.close()
    wait_until(lambda: device.sent == [b"\x01", b"\x00"])
    assert [s["state"] for s in hub.status()] == ["connected", "browser"]
    hub.close()


def test_bad_payload_and_unknown_actuator_are_config_errors(tmp_path):
    cfg = Config.model_validate({"actuators": [{"use": "nope", "decisions": {"actions": {"a": 1}}}]})
    from spml_core.registry import Registry

    with pytest.raises(ConfigError, match=r"actuators.0.use: unknown actuator 'nope'"):
        ActuationHub.from_config(cfg, Registry(autoload=False))
    registry = OneActuatorRegistry()
    cfg = Config.model_validate({"actuators": [{"use": "gated", "log": None, "decisions": {"actions": {"a": 300}}}]})
    with pytest.raises(ConfigError, match=r"actuators.0.decisions.actions.a: cannot encode 300 as bytes"):
        ActuationHub.from_config(cfg, registry)


def test_heartbeat_keeps_writing_while_idle_and_stops_with_the_runner():
    dev = GatedActuator()
    runner = ActuatorRunner(dev, "dev", heartbeat=(30.0, b"HB")).start()
    wait_until(lambda: dev.sent.count(b"HB") >= 5, timeout=3)
    # A real write resets the period: the device hears something at least every 30 ms either way.
    runner.submit(on(b"\x01"))
    wait_until(lambda: b"\x01" in dev.sent)
    wait_until(lambda: dev.sent[-1] == b"HB" and dev.sent.count(b"HB") >= 7)
    dev.fail_next = 2  # not connected: heartbeats fail quietly, and the next ones go through again
    wait_until(lambda: runner.status()["heartbeats_failed"] == 2)
    runner.close()
    beats = dev.sent.count(b"HB")
    time.sleep(0.15)
    assert dev.sent.count(b"HB") == beats  # a dead server is silent, so the firmware switches off
    assert runner.status()["heartbeats"] == beats


def test_heartbeat_is_checked_like_a_payload(tmp_path):
    from spml_core.actuation.hub import ActuatorConfig

    decisions = {"actions": {"step": [1]}, "off": [0]}
    ok = ActuatorConfig(use="gated", decisions=decisions, heartbeat_ms=100, heartbeat="HB", log=None)
    hub = ActuationHub([ok], OneActuatorRegistry(), base_dir=tmp_path)
    try:
        assert hub.targets[0].runner.heartbeat == (100, b"HB")
    finally:
        hub.close()
    browser = ActuatorConfig(use="gated", decisions=decisions, heartbeat_ms=100, run_in="browser", log=None)
    with pytest.raises(ConfigError, match=r"actuators\.0\.heartbeat_ms: only server actuators"):
        ActuationHub([browser], OneActuatorRegistry(), base_dir=tmp_path)
