"""Scale-out of the live app: two real `spml serve` processes share broadcasts through a real
redis-server on 127.0.0.1, while each connection's session stays in its own process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CHANNEL = "spml-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free 127.0.0.1 port, without persistence; stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (make setup installs it: scripts/install-system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the scale-out tests")
        pytest.skip(reason)
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port} (exit {proc.poll()})")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_subscribed(url: str, processes: int, timeout: float = 15.0) -> None:
    """Redis pub/sub is not durable: wait until the app processes listen on the channel."""
    import redis

    r = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while dict(r.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) < processes:
        assert time.monotonic() < deadline, f"{processes} app process(es) never subscribed to {CHANNEL}"
        time.sleep(0.05)


@pytest.mark.slow
def test_client_of_process_1_receives_a_broadcast_emitted_by_process_2(
    redis_url: str, bundles: dict[str, Path], zip_dir: Any, tmp_path: Path,
    recorder: Any, app_process: Any,
) -> None:
    models = tmp_path / "models"  # shared storage of both processes, as on a real deployment
    shutil.copytree(bundles["steps"], models / "steps")
    common = ("--models-dir", str(models), "--message-queue", redis_url, "--message-queue-channel", CHANNEL)
    one, two = app_process(*common), app_process(*common)
    client = None
    try:
        assert any("sharing rooms and broadcasts through redis://127.0.0.1" in line for line in one.lines)
        client = recorder(one.url)
        (hello,) = client.wait_for("hello")
        assert [m["name"] for m in hello["models"]] == ["steps"]
        wait_subscribed(redis_url, 1)  # process 1 listens once it has a client

        # Upload a bundle to process 2: its "models" broadcast reaches the client of process 1.
        bundle = zip_dir(bundles["transfer"], tmp_path / "transfer.zip")
        with bundle.open("rb") as fh:
            token = requests.get(f"{two.url}/api/config", timeout=10).json()["csrf_token"]
            resp = requests.post(f"{two.url}/api/models", files={"bundle": ("transfer.zip", fh)},
                                 data={"name": "transfer_v2"}, headers={"X-CSRF-Token": token}, timeout=60)
        assert resp.status_code == 201, resp.text
        update = client.wait_for("models", where=lambda d: "transfer_v2" in [m["name"] for m in d["models"]])[0]
        assert sorted(m["name"] for m in update["models"]) == ["steps", "transfer_v2"]

        # The client selects the new model on its own process; sessions stay where they connected.
        client.client.emit("select_model", {"name": "transfer_v2"})
        (selected,) = client.wait_for("model_selected")
        assert selected["name"] == "transfer_v2" and selected["window"] == 5
        assert [s["model"] for s in one.health()["sessions"]] == ["transfer_v2"]
        assert two.health()["sessions"] == []
    finally:
        if client is not None:
            client.close()
        one.stop()
        two.stop()


def test_unreachable_message_queue_is_a_clear_start_up_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run([sys.executable, "-m", "spml_core", "serve", "--port", "0", "--message-queue", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"spml: error: message queue {url}: cannot reach Redis" in done.stderr


def test_message_queue_must_be_a_redis_url() -> None:
    from spml_core.errors import ConfigError
    from spml_web.settings import as_config

    with pytest.raises(ConfigError, match="message_queue: .*expected a Redis URL like redis://HOST:6379/0"):
        as_config({"message_queue": "amqp://127.0.0.1"})


def test_passwords_are_not_printed() -> None:
    from spml_web.message_queue import redact

    assert redact("redis://:s3cret@cache.internal:6380/1") == "redis://:***@cache.internal:6380/1"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
