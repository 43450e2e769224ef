"""The ble actuator against a virtual bumble peripheral: a real BLE host, link layer and GATT server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from spml_actuator_ble.actuator import BleActuator
from spml_actuator_ble.centrals import BleError
from spml_actuator_ble.virtual import VirtualPeripheral
from spml_core.actuation.hub import ActuationHub
from spml_core.actuation.runner import ActuatorRunner
from spml_core.config import Config
from spml_core.errors import ConfigError
from spml_core.registry import Registry


@pytest.fixture
def peripheral():
    with VirtualPeripheral(name="SPML-Test") as vp:
        yield vp


def ble(vp: VirtualPeripheral, **options) -> BleActuator:
    opts = {"device_name": "SPML-Test", "transport": "bumble", "hci_transport": vp.hci_transport, "scan_timeout_s": 2}
    return BleActuator({**opts, **options})


def wait_until(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.mark.parametrize("with_response", [True, False])
def test_bytes_arrive_exactly(peripheral, with_response):
    act = ble(peripheral, with_response=with_response)
    act.open()
    assert act.status().state == "connected", act.status()
    payloads = [act.encode(v, "x") for v in ("01", "00", "de ad be ef", "")] + [bytes(range(20))]
    for p in payloads:
        act.send(p, None)
    got = [r.data for r in peripheral.wait_for(len(payloads))]
    act.close()
    assert got == payloads


def test_struct_and_utf8_encodings(peripheral):
    act = ble(peripheral, encoding="struct", struct_format="<BH")
    assert act.encode([1, 500], "x") == b"\x01\xf4\x01"
    act2 = ble(peripheral, encoding="utf-8")
    assert act2.encode("a", "x") == b"a"


def test_reconnects_after_the_device_drops_the_link(peripheral):
    act = ble(peripheral, with_response=True, backoff_initial_s=0.1)
    act.open()
    act.send(b"\x01", None)
    assert peripheral.disconnect() == 1
    wait_until(lambda: act.status().state != "connected", 5)
    assert "disconnected" in act.status().message
    with pytest.raises(BleError, match="SPML-Test"):
        act.send(b"\x02", None)  # fails fast while down, with the status message
    wait_until(lambda: act.status().state == "connected", 10)
    assert "reconnected" in act.status().message
    act.send(b"\x03", None)
    assert [r.data for r in peripheral.wait_for(2)] == [b"\x01", b"\x03"]
    act.close()


def test_device_that_disconnects_mid_write():
    with VirtualPeripheral(name="SPML-Test", response_delay_s=2.0) as vp:
        act = ble(vp, with_response=True, write_timeout_s=5, backoff_initial_s=0.1)
        act.open()
        errors: list[Exception] = []

        def write() -> None:
            try:
                act.send(b"\x07", None)
            except Exception as exc:
                errors.append(exc)

        t = threading.Thread(target=write)
        t0 = time.monotonic()
        t.start()
        vp.wait_for(1)  # the write reached the device, which is slow to acknowledge
        vp.disconnect()
        t.join(10)
        assert time.monotonic() - t0 < 2.0, "the write waited for the slow ack instead of failing at disconnect"
        assert len(errors) == 1 and "disconnected during write" in str(errors[0])
        wait_until(lambda: act.status().state == "connected", 10)
        act.close()


def test_unknown_device_says_what_it_saw(peripheral):
    act = ble(peripheral, device_name="NoSuchDevice", scan_timeout_s=0.3, backoff_initial_s=5)
    act.open()
    st = act.status()
    act.close()
    assert st.state == "error"
    assert "no BLE device 'NoSuchDevice' found in a 0.3 s scan" in st.message
    assert "saw: SPML-Test [F0:F0:F0:F0:F0:F0]" in st.message


def test_device_by_address(peripheral):
    act = ble(peripheral, device_name=None, device_address="f0:f0:f0:f0:f0:f0")
    act.open()
    act.send(b"\x09", None)
    assert peripheral.wait_for(1)[0].data == b"\x09"
    act.close()


def test_wrong_service_uuid_lists_what_the_device_offers(peripheral):
    act = ble(peripheral, service_uuid="1234")
    act.open()
    st = act.status()
    with pytest.raises(BleError):
        act.send(b"\x01", None)
    act.close()
    assert st.state == "error"
    assert "service 00001234-0000-1000-8000-00805f9b34fb not found" in st.message
    assert "0000ffe0-0000-1000-8000-00805f9b34fb" in st.message


def test_wrong_characteristic_uuid_lists_the_service_characteristics(peripheral):
    act = ble(peripheral, characteristic_uuid="0000ffe9-0000-1000-8000-00805f9b34fb")
    act.open()
    st = act.status()
    act.close()
    assert "characteristic 0000ffe9-0000-1000-8000-00805f9b34fb not found" in st.message
    assert "it has: 0000ffe1-0000-1000-8000-00805f9b34fb" in st.message


def test_bad_options_are_clear():
    with pytest.raises(ValidationError, match="not a Bluetooth UUID"):
        BleActuator({"device_name": "x", "service_uuid": "not-a-uuid"})
    with pytest.raises(ValidationError, match="set device_name or device_address"):
        BleActuator({})
    with pytest.raises(ValidationError, match="struct_format"):
        BleActuator({"device_name": "x", "encoding": "struct"})


def test_unencodable_payload_is_a_config_error_naming_the_key():
    cfg = Config.model_validate(
        {"actuators": [{"use": "ble", "options": {"device_name": "x"}, "decisions": {"actions": {"step": "0g"}}}]}
    )
    with pytest.raises(ConfigError, match=r"actuators.0.decisions.actions.step: cannot encode '0g' as hex"):
        ActuationHub.from_config(cfg, Registry().load(), start=False)


@pytest.mark.skipif(
    os.path.exists("/run/dbus/system_bus_socket") or os.path.exists("/var/run/dbus/system_bus_socket"),
    reason="a D-Bus system bus exists here, so bleak would find BlueZ",
)
def test_bleak_without_bluez_explains_what_to_do():
    act = BleActuator({"device_name": "HMSoft", "transport": "bleak", "scan_timeout_s": 1})
    act.open()
    st = act.status()
    with pytest.raises(BleError, match="no BlueZ/D-Bus system bus"):
        act.send(b"\x01", None)
    act.close()
    assert st.state == "error"
    assert "no BlueZ/D-Bus system bus" in st.message and "bumble" in st.message


def test_runner_on_a_slow_device_never_blocks_and_counts_drops():
    with VirtualPeripheral(name="SPML-Test", response_delay_s=0.2) as vp:
        runner = ActuatorRunner(ble(vp, with_response=True), "slow", max_age_ms=5000).start()
        wait_until(lambda: runner.status()["state"] == "connected")
        from spml_core.actuation.decisions import Decision

        worst = 0.0
        for i in range(100):
            d = Decision("slow", "on", "step", "bout", float(i), i, 0.9, bytes([i]))
            t0 = time.perf_counter()
            runner.submit(d)
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.002)
        runner.submit(Decision("slow", "off", "step", "class_end", 100.0, 100, None, b"\x00"))
        wait_until(lambda: vp.received and vp.received[-1].data == b"\x00", 10)
        runner.close()
        got = [r.data for r in vp.received]
        st = runner.counts
    assert worst < 0.005, f"submit took {worst * 1000:.1f} ms"
    assert got[-1] == b"\x00" and len(got) < 10  # a 0.2 s device took a few; the rest were superseded
    assert st["dropped"] == 100 - (len(got) - 1) and st["sent"] == len(got)


def test_end_to_end_predictions_to_bytes_with_audit_log(tmp_path):
    with VirtualPeripheral(name="SPML-Test") as vp:
        cfg = Config.model_validate(
            {
                "actuators": [
                    {
                        "use": "ble",
                        "name": "stim",
                        "log": "actions.jsonl",
                        "options": {
                            "device_name": "SPML-Test",
                            "transport": "bumble",
                            "hci_transport": vp.hci_transport,
                            "with_response": True,
                        },
                        "decisions": {"actions": {"step": "01"}, "off": "00", "min_bout": 3, "dead_man_ms": 300},
                    }
                ]
            }
        )
        cfg.base_dir = tmp_path
        hub = ActuationHub.from_config(cfg, Registry().load())
        wait_until(lambda: hub.status()[0]["state"] == "connected")
        session = hub.session(session_id="s1")
        labels = ["rest", "step", "step", "rest", "step", "step", "step", "step", "step", "rest", "step"]
        for i, label in enumerate(labels):
            session.on_prediction(i * 33.4, label, {"step": 0.8 if label == "step" else 0.2}, frame=i)
            time.sleep(0.033)
        # The stream stops while "step" is only 1 window old: no new bout, nothing more to send.
        got = [r.data for r in vp.wait_for(2)]
        hub.close()
    assert got == [b"\x01", b"\x00"]
    records = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert [(r["action"], r["frame"], r["payload_hex"], r["result"]) for r in records] == [
        ("on", 6, "01", "sent"),
        ("off", 9, "00", "sent"),
    ]
    assert all(r["latency_ms"] < 1000 and r["session"] == "s1" for r in records)


def test_plugin_is_registered_and_cheap_to_import():
    assert Registry().load().get("actuator", "ble") is BleActuator
    code = (
        "import sys, spml_actuator_ble.plugin; from spml_core.registry import Registry; Registry().load();"
        "print(sorted(m for m in ('bleak', 'bumble') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]"
