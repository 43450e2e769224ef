"""A device hears from a live server all the time (heartbeat_ms), and hears nothing once it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from web_app.tests.test_live_actuation import actuators, health, peripheral, wait_until  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_heartbeats_while_serving_and_silence_after_sigkill(
    bundles: dict[str, Path], peripheral: Any, tmp_path: Path  # noqa: F811
) -> None:
    stim = {**actuators(peripheral, None)[0], "heartbeat_ms": 100, "heartbeat": "aa"}
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"actuators": [stim]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "spml_core", "serve", "--config", str(config), "--model", str(bundles["steps"]),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = ""
        while not url:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, "spml serve exited"
            if line.startswith("spml serve: http://"):
                url = line.split()[2].rstrip("/")
        wait_until(lambda: health(url)["actuators"][0]["state"] == "connected", what="BLE connection")
        # Idle (no session, no decision): the device still hears a keep-alive about every 100 ms.
        n0 = len(peripheral.received)
        time.sleep(1.5)
        beats = [r for r in peripheral.received[n0:] if r.data == b"\xaa"]
        assert 5 <= len(beats) <= 16, len(beats)
        assert health(url)["actuators"][0]["heartbeats"] >= len(beats)
        # Killed without a chance to send off: the keep-alives stop, which is what firmware acts on.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.3)
        n1 = len(peripheral.received)
        time.sleep(1.0)
        assert len(peripheral.received) == n1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
