"""`spml serve` as a user runs it: a real process on 127.0.0.1, clear errors for bad arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def spml(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spml_core", *args], capture_output=True, text=True, timeout=timeout)


def test_help_is_cheap_and_lists_the_options() -> None:
    out = spml("serve", "--help")
    assert out.returncode == 0
    for option in ("--model", "--models-dir", "--host", "--port", "--every"):
        assert option in out.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, spml_core.cli as c; c.build_parser(); "
                               "print(sorted(m for m in ('flask', 'flask_socketio', 'spml_web.app') if m in sys.modules))"],
        capture_output=True, text=True,
    )
    assert probe.stdout.strip() == "[]"  # listing commands never imports the web stack


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    out = spml("serve", "--model", str(tmp_path / "nope"))
    assert out.returncode == 1 and "--model" in out.stderr and "not found" in out.stderr
    (tmp_path / "empty").mkdir()
    out = spml("serve", "--model", str(tmp_path / "empty"))
    assert out.returncode == 1 and "no manifest.json" in out.stderr
    out = spml("serve", "--every", "0")
    assert out.returncode == 1 and "every" in out.stderr


def test_bad_actuator_config_is_a_clear_error(tmp_path: Path) -> None:
    out = spml("serve", "--config", str(tmp_path / "nope.yml"))
    assert out.returncode == 1 and "nope.yml: config file not found" in out.stderr
    config = tmp_path / "config.yml"
    config.write_text("actuators:\n  - use: no_such_actuator\n    decisions: {actions: {step: '01'}}\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1
    assert f"{config}: actuators.0.use:" in out.stderr and "no_such_actuator" in out.stderr
    config.write_text("actuators:\n  - use: ble\n    options: {device_name: x}\n    decisions: {actions: {step: '0g'}}\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1 and "actuators.0.decisions.actions.step: cannot encode '0g' as hex" in out.stderr


@pytest.mark.slow
def test_serve_runs_until_interrupted(bundles: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spml_core", "serve", "--model", str(bundles["steps"]), "--models-dir",
         str(tmp_path / "models"), "--port", "0", "--every", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            if line.startswith("spml serve: http://"):
                url = line.split()[2].rstrip("/")
        assert url is not None, proc.stderr.read() if proc.poll() is not None else "no URL printed"  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        with urllib.request.urlopen(f"{url}/api/config", timeout=10) as resp:
            config = json.loads(resp.read())
        assert config["model"] == "steps" and config["every"] == 3
        with urllib.request.urlopen(f"{url}/", timeout=10) as resp:
            assert b"spml live" in resp.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
