"""Fixtures for the web app's tests: the example video's real keypoints and real trained bundles.

The bundles are trained once per session with spml's own training code on the example video
and its annotations (../shared/data, or the copy `make setup` fetched; never copied into the repository).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def example_video(example_dir: Path) -> Path:
    """The example video (1280x720, 382 frames), from the root conftest's lookup."""
    return example_dir / "example_video.webm"


@pytest.fixture(scope="session")
def example_keypoints_path(example_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keypoints of the example video, extracted once with the real MediaPipe lite model."""
    from spml_core.pipeline import run_extract

    out = tmp_path_factory.mktemp("web_keypoints")
    results = run_extract(example_video, out, "mediapipe", {"model": "lite"}, quiet=True)
    assert [r.status for r in results] == ["written"], [r.message for r in results]
    return out / "example_video.parquet"


@pytest.fixture(scope="session")
def example_keypoints(example_keypoints_path: Path) -> Any:
    """The example video's PoseSequence (lite model)."""
    from spml_core.keypoints.sequence import load_keypoints

    return load_keypoints(example_keypoints_path)


@pytest.fixture(scope="session")
def example_dataset(example_keypoints_path: Path, example_video: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example video's labelled frame table (spml's dataset builder, the seed annotation schema)."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset

    frames, _report = build_dataset(example_keypoints_path.parent, example_video.parent, AnnotationSchema())
    return write_dataset(frames, tmp_path_factory.mktemp("web_dataset") / "example.parquet")


def train_bundle(dataset: Path, out: Path, target: str, window: int) -> Path:
    """Train a small real XGBoost bundle with spml's training code; returns its folder."""
    from spml_core.models.training import train

    options = {"n_estimators": 20, "early_stopping_rounds": None}
    result = train(dataset, target, out, "xgboost", options, window=window, n_splits=2, quiet=True)
    return result.bundle


@pytest.fixture(scope="session")
def bundles(example_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real bundles with different targets and windows: 'steps' (window 10) and 'transfer' (window 5)."""
    root = tmp_path_factory.mktemp("web_bundles")
    return {
        "steps": train_bundle(example_dataset, root / "steps", "step_type", 10),
        "transfer": train_bundle(example_dataset, root / "transfer", "weight_transfer_type", 5),
    }


@pytest.fixture()
def models_dir(bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh models folder holding copies of both bundles (uploads in a test don't leak)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name, path in bundles.items():
        shutil.copytree(path, folder / name)
    return folder


@pytest.fixture()
def make_app(models_dir: Path) -> Any:
    """Factory: a web app over the test models folder, with settings overrides."""
    from spml_web import create_app

    def make(**overrides: Any) -> Any:
        config: dict[str, Any] = {"models_dir": models_dir, **overrides}
        return create_app(config)

    return make


def _zip_dir(folder: Path, dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


def _keypoint_messages(seq: Any, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    out = []
    stop = seq.n_frames if stop is None else stop
    for i in range(start, stop):
        xyzv = seq.xyzv[i]
        out.append({
            "frame": int(seq.frame_index[i]),
            "t_ms": float(seq.timestamps_ms[i]),
            "landmarks": None if np.isnan(xyzv).all() else xyzv.tolist(),
            "width": seq.width,
            "height": seq.height,
        })
    return out


@pytest.fixture(scope="session")
def zip_dir() -> Any:
    """zip_dir(folder, dest, extra={name: bytes}): zip a folder's files at the archive root, plus extra members."""
    return _zip_dir


@pytest.fixture()
def stream_through_stall() -> Callable[..., tuple[dict[int, float], float]]:
    """stream_through_stall(rec, session, msgs): send ``msgs`` at 30 Hz; after the first 20 (and their
    predictions) the connection's own handler stalls for 1.5 s: its select_model waits for the session's
    lock, held by a thread, so the frames sent meanwhile wait in the WebSocket's buffer. Returns each later
    frame's send time and when the lock was released (perf_counter)."""

    def run(rec: Any, session: Any, msgs: list[dict[str, Any]], warm: int = 20,
            seconds: float = 1.5) -> tuple[dict[int, float], float]:
        for msg in msgs[:warm]:
            rec.client.emit("keypoints", msg)
            time.sleep(1 / 30)
        rec.wait_for("prediction", where=lambda p: p["frame"] == msgs[warm - 1]["frame"], timeout=20)
        held, released = threading.Event(), [float("inf")]

        def stall() -> None:
            with session.lock:
                held.set()
                time.sleep(seconds)
                released[0] = time.perf_counter()

        staller = threading.Thread(target=stall)
        staller.start()
        held.wait()
        rec.client.emit("select_model", {"name": "steps"})  # handled by the connection itself: it now waits
        sent_at: dict[int, float] = {}
        for msg in msgs[warm:]:
            sent_at[msg["frame"]] = time.perf_counter()
            rec.client.emit("keypoints", msg)
            time.sleep(1 / 30)
        staller.join()
        return sent_at, released[0]

    return run


@pytest.fixture(scope="session")
def keypoint_messages() -> Any:
    """keypoint_messages(seq, start, stop): the keypoints payloads a browser would send for those frames."""
    return _keypoint_messages


class AppProcess:
    """`spml serve` in a subprocess on a free port; its URL is read from what it prints."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spml_core", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: list[str] = []
        self.url = ""
        while not self.url:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line and self.proc.poll() is not None:
                break
            self.lines.append(line)
            if line.startswith("spml serve: http://"):
                self.url = line.split()[2].rstrip("/")
        if not self.url:
            self.stop()
            raise AssertionError("spml serve did not start:\n" + "".join(self.lines))
        # Keep reading its output so that a chatty process never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    def health(self) -> dict[str, Any]:
        """GET /api/health."""
        return requests.get(f"{self.url}/api/health", timeout=10).json()

    def stop(self) -> None:
        """Ctrl-C, then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture()
def app_process() -> Iterator[Callable[..., AppProcess]]:
    """app_process(*serve_args): a real `spml serve` in its own process (stopped after the test), for
    timings that must not share a GIL with the test's clients."""
    started: list[AppProcess] = []

    def make(*args: str) -> AppProcess:
        started.append(AppProcess(*args))
        return started[-1]

    yield make
    for proc in started:
        proc.stop()


class Recorder:
    """A python-socketio client that records every event it receives, for assertions on them."""

    def __init__(self, url: str, transports: list[str] | None = None) -> None:
        import socketio

        self.events: list[tuple[str, Any]] = []
        self.cond = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.connect(url, transports=transports or ["websocket"], wait_timeout=10)
        self.sid = self.client.get_sid()

    def _record(self, event: str, data: Any = None) -> None:
        with self.cond:
            self.events.append((event, data))
            self.cond.notify_all()

    def of(self, name: str, where: Callable[[Any], bool] | None = None) -> list[Any]:
        """The data of every `name` event so far (those `where` accepts, when given)."""
        with self.cond:
            return [d for e, d in self.events if e == name and (where is None or where(d))]

    def wait_for(self, name: str, count: int = 1, timeout: float = 20.0,
                 where: Callable[[Any], bool] | None = None) -> list[Any]:
        """Wait until `count` such events arrived; their data, in order (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.of(name, where)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout}s for {count} {name!r} events; got "
                                         f"{len(self.of(name, where))}; last events {[e for e, _ in self.events[-8:]]}")
                self.cond.wait(left)
            return self.of(name, where)

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture()
def recorder() -> Iterator[Callable[..., Recorder]]:
    """recorder(url, transports=None): a connected recording client, disconnected after the test."""
    made: list[Recorder] = []

    def make(url: str, transports: list[str] | None = None) -> Recorder:
        made.append(Recorder(url, transports))
        return made[-1]

    yield make
    for r in made:
        r.close()

