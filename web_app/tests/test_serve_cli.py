"""`spml serve` as a user runs it: a real process on 127.0.0.1, clear errors for bad arguments."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def spml(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spml_core", *args], capture_output=True, text=True, timeout=timeout)


def test_help_is_cheap_and_lists_the_options() -> None:
    out = spml("serve", "--help")
    assert out.returncode == 0
    for option in ("--model", "--models-dir", "--host", "--port", "--every"):
        assert option in out.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, spml_core.cli.main as c; c.build_parser(); "
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


def serve_and_check(args: list[str], cwd: Path, check: Any) -> None:
    """Start `spml serve ARGS`, wait for its URL, run check(url), then Ctrl-C it: it must exit 0."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spml_core", "serve", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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
        check(url)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_serve_runs_until_interrupted(bundles: dict[str, Path], tmp_path: Path) -> None:
    def check(url: str) -> None:
        assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        config = get_json(f"{url}/api/config")
        assert config["model"] == "steps" and config["every"] == 3
        with urllib.request.urlopen(f"{url}/", timeout=10) as resp:
            assert b"spml live" in resp.read()

    serve_and_check(["--model", str(bundles["steps"]), "--models-dir", str(tmp_path / "models"),
                     "--port", "0", "--every", "3"], tmp_path, check)


@pytest.mark.slow
def test_serve_block_of_the_config_sets_options_and_flags_win(bundles: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(bundles["steps"], study / "models" / "steps")
    shutil.copytree(bundles["transfer"], study / "models" / "transfer")
    (study / "config.yml").write_text(
        "serve:\n  models_dir: models\n  model: models/transfer\n  port: 0\n  every: 7\n  decision_frames: 4\n")

    def check(url: str) -> None:
        config = get_json(f"{url}/api/config")
        # Paths resolve against the config's folder, not the working folder; --every beats `every: 7`.
        assert config["model"] == "transfer" and config["every"] == 2
        assert sorted(m["name"] for m in get_json(f"{url}/api/models")["models"]) == ["steps", "transfer"]

    serve_and_check(["--config", str(study / "config.yml"), "--every", "2"], tmp_path, check)


def test_bad_serve_block_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("serve:\n  every: 0\n  port: 0\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1 and f"{config}: serve.every: Input should be greater than or equal to 1" in out.stderr
    out = spml("serve", "--config", str(config), "--every", "-1")  # the flag wins, and is named as the flag
    assert out.returncode == 1 and "--every: Input should be greater than or equal to 1" in out.stderr
    config.write_text("serve:\n  model: nope\n  prot: 5002\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1 and f"{config}: serve.model {tmp_path / 'nope'}: model bundle not found" in out.stderr
    config.write_text("serve:\n  prot: 5002\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1 and f"{config}: serve.prot: Extra inputs are not permitted" in out.stderr
    config.write_text("serve:\n  port: 70000\n")
    out = spml("serve", "--config", str(config))
    assert out.returncode == 1 and f"{config}: serve.port 70000: must be an integer 0..65535" in out.stderr


def test_config_validate_checks_the_serve_block(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    # The bundle may not exist yet (the config's own train stage makes it): valid.
    config.write_text("serve:\n  model: data/models/movement\n  every: 2\n  max_sessions: 8\n")
    out = spml("config", "validate", str(config))
    assert out.returncode == 0, out.stderr
    config.write_text("serve:\n  every: 0\n  max_sesions: 8\n")
    out = spml("config", "validate", str(config))
    assert out.returncode == 1
    assert f"{config}: serve.every: Input should be greater than or equal to 1" in out.stderr
    assert f"{config}: serve.max_sesions: Extra inputs are not permitted" in out.stderr
    config.write_text("serve:\n  max_upload_bytes: 1024\n")
    out = spml("config", "validate", str(config))
    assert out.returncode == 1 and f"{config}: serve.max_upload_bytes: not a serve setting; use max_upload_mb" in out.stderr
