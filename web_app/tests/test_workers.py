"""`spml serve --workers N` (one port, several processes) and `spml serve --model` on a crashing bundle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio

pytestmark = pytest.mark.slow

SPML = [sys.executable, "-m", "spml_core", "serve"]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*SPML, "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while True:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError(f"spml serve exited: {proc.stderr.read()}")  # type: ignore[union-attr]
        if line.startswith("spml serve: http://"):
            return proc, line.split()[2].rstrip("/")


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_share_one_port_and_stop_together(models_dir: Path) -> None:
    proc, url = start("--models-dir", str(models_dir), "--workers", "2")
    try:
        workers = children(proc.pid)
        assert len(workers) == 2
        # Connections land on both workers (the kernel hands each accept to one); each is a full app.
        pids = set()
        deadline = time.monotonic() + 60
        while pids != set(workers):
            assert time.monotonic() < deadline, f"answers came from {pids}, workers are {workers}"
            pids.add(requests.get(f"{url}/api/health", timeout=30).json()["pid"])
        for _ in range(4):
            c = socketio.Client(reconnection=False)
            hello: list[Any] = []
            c.on("hello", hello.append)
            c.connect(url, transports=["websocket"], wait_timeout=60)
            while not hello:
                time.sleep(0.01)
            assert [m["name"] for m in hello[0]["models"]] == ["steps", "transfer"]
            c.disconnect()
        # Long-polling would need every request of a session in one process: refused up front.
        resp = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=10)
        assert resp.status_code == 400
        # A dead worker is replaced; SIGTERM stops every worker.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not (len(children(proc.pid)) == 2 and workers[0] not in children(proc.pid)):
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        assert requests.get(f"{url}/api/health", timeout=30).status_code == 200
        last = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        for pid in last:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_model_refuses_a_crashing_bundle_cleanly(bundles: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundles["steps"], bad)
    weights = bytearray((bad / "model" / "model.ubj").read_bytes())
    for i in range(24, 32):
        weights[i] ^= 0xFF
    (bad / "model" / "model.ubj").write_bytes(bytes(weights))
    out = subprocess.run([*SPML, "--model", str(bad), "--port", "0"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"spml: error: {bad}: loading the model crashed (SIGSEGV)" in out.stderr
