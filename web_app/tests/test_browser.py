"""End to end in real headless Chromium (Debian's chromium driven by Playwright, never a downloaded
browser): the example video is the fake camera; pose runs in the page's worker (or on the server),
the overlay draws, predictions arrive, and nothing is fetched from anywhere but this server.
A screenshot is saved to build/test-artifacts/web_e2e.png. The Bluetooth panel writes the server's
decisions to a BLE device emulated by Chromium itself (DevTools' BluetoothEmulation domain).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
# MediaPipe's wasm logs its start-up (INFO:/I1125/W1125 lines) through console.error: not errors.
MEDIAPIPE_LOG = re.compile(r"^(INFO: |[IW]\d{4} )")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    # Web Bluetooth is behind a flag on Linux; the test device is emulated through DevTools.
    "--enable-features=WebBluetooth",
]
PAGE_ACTUATOR = {"use": "ble", "name": "page-ble", "run_in": "browser",
                 "options": {"device_name": "SPML-Page", "service_uuid": "ffe0", "characteristic_uuid": "ffe1"},
                 "decisions": {"actions": {"Left Step": "0a", "Right Step": "0b"}, "off": "ff", "min_bout": 3}}


def _requirements() -> str | None:
    from spml_web.vendor import vendor_status

    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (scripts/install-system-deps.sh installs Debian's chromium)"
    if shutil.which("ffmpeg") is None:
        return "ffmpeg not found (scripts/install-system-deps.sh installs it)"
    if not vendor_status()["complete"]:
        return "page assets missing: make setup runs npm ci and python -m spml_web.vendor"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e 'web_app[test]')"
    return None


@pytest.fixture(scope="module")
def fake_camera(example_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example video as an MJPEG file at 640x360, 30 fps: Chromium's fake camera plays it in a loop."""
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("camera") / "example_640x360.mjpeg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(example_video), "-vf", "scale=640:360",
                    "-r", "30", "-q:v", "5", "-f", "mjpeg", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    """One Playwright driver for the module: a second sync_playwright() in the same thread is refused."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def live(bundles: dict[str, Path], fake_camera: Path, tmp_path_factory: pytest.TempPathFactory, pw: Any) -> Iterator[Any]:
    """(server, browser): the app on 127.0.0.1 with both bundles ('steps' preselected) and Chromium."""
    from spml_web import create_app
    from spml_web.server import BackgroundServer

    models = tmp_path_factory.mktemp("browser_models")
    for name, path in bundles.items():
        shutil.copytree(path, models / name)
    app = create_app({"models_dir": models, "model": models / "steps", "actuators": [PAGE_ACTUATOR],
                      "actuation_dir": tmp_path_factory.mktemp("actuation")})
    with BackgroundServer(app) as server:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={fake_camera}"])
        try:
            yield server, browser
        finally:
            browser.close()


class Page:
    """A page of the app, recording console errors and any request that leaves the server."""

    def __init__(self, server: Any, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.server = server
        self.page.goto(server.url)

    def _request(self, request: Any) -> None:
        if not request.url.startswith((self.server.url + "/", "blob:", "data:")):
            self.foreign.append(request.url)

    def state(self) -> dict[str, Any]:
        return self.page.evaluate("() => ({...window.spml})")

    def wait(self, predicate: str, timeout_s: float = 60) -> None:
        # A function (not a string) so the page's CSP, which forbids eval, allows it.
        self.page.wait_for_function(f"() => window.spml && ({predicate})", timeout=timeout_s * 1000)

    def overlay_pixels(self) -> int:
        return self.page.evaluate(
            """() => { const c = document.getElementById('overlay');
                       if (!c.width) return 0;
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        )

    def close(self) -> None:
        self.page.close()


def test_camera_pose_in_a_worker_overlay_and_predictions(live: Any) -> None:
    server, browser = live
    page = Page(server, browser)
    try:
        page.wait("window.spml.workerReady")
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 30 && window.spml.posesWithPerson >= 30")
        state = page.state()
        assert state["connected"] and state["transport"] == "websocket"
        assert state["model"] == "steps"
        last = state["lastPrediction"]
        assert last["model"] == "steps" and set(last["probabilities"]) == {"Left Step", "Right Step"}
        # A class, or "unknown" when the bundle's rejection threshold refuses the window (docs/live.md).
        assert page.page.inner_text("#label") in ("Left Step", "Right Step", "unknown")
        assert page.overlay_pixels() > 500  # the skeleton is drawn over the video
        assert float(page.page.inner_text("#rtt")) > 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / "web_e2e.png"))
        assert page.foreign == [], page.foreign  # no CDN, no model download: everything from the app
        assert state["errors"] == []
        assert page.page.is_visible("#bt-connect")  # the Bluetooth panel, preset from the server's actuators
        assert page.page.input_value("#bt-actuator") == "page-ble"
        assert page.page.input_value("#bt-name") == "SPML-Page"
        assert not [e for e in page.errors if not MEDIAPIPE_LOG.match(e)], page.errors
    finally:
        page.close()


def test_bluetooth_panel_writes_the_servers_actions_to_a_device(live: Any) -> None:
    server, browser = live
    page = Page(server, browser)
    from spml_web.emulated_ble import EmulatedBleDevice

    device = EmulatedBleDevice(browser, page.page, "SPML-Page", "0000ffe0-0000-1000-8000-00805f9b34fb",
                               "0000ffe1-0000-1000-8000-00805f9b34fb")
    try:
        page.page.wait_for_function("() => window.spmlBluetooth && window.spmlBluetooth.targets.length")
        page.wait("window.spml.workerReady && window.spml.connected")
        page.page.click("#bt-connect")  # requestDevice needs a user gesture
        page.page.wait_for_function("() => window.spmlBluetooth.status === 'connected'", timeout=15000)
        page.page.click("#start-camera")
        page.page.wait_for_function("() => window.spmlBluetooth.writes.length >= 3", timeout=60000)
        page.page.click("#stop")
        written = page.page.evaluate("() => window.spmlBluetooth.writes")
        sid = page.state()["sid"]
    finally:
        device.close()
        page.close()
    assert all(w["ok"] for w in written), written
    assert device.writes[: len(written)] == [w["payload_hex"] for w in written]
    assert written[0]["action"] == "on" and {w["payload_hex"] for w in written} <= {"0a", "0b", "ff"}
    # The bytes are the server's decisions for this page, in order: what its action log says it emitted.
    log = server.app.extensions["spml"].config.actuation_dir / "logs" / "actions.jsonl"
    deadline = time.monotonic() + 5
    while True:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        emitted = [r["payload_hex"] for r in records if r["session"] == sid and r["actuator"] == "page-ble"]
        if len(emitted) >= len(written) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [w["payload_hex"] for w in written] == emitted[: len(written)]


def test_server_side_pose_fallback(live: Any) -> None:
    server, browser = live
    page = Page(server, browser)
    try:
        page.page.select_option("#pose-mode", "server")
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 10 && window.spml.posesWithPerson >= 10")
        assert page.overlay_pixels() > 500
        assert page.state()["lastPrediction"]["latency_ms"] > 1  # it ran pose on the server
        assert page.foreign == []
    finally:
        page.close()


def test_replay_a_video_file_and_switch_models(live: Any, example_video: Path, bundles: dict[str, Path]) -> None:
    server, browser = live
    page = Page(server, browser)
    try:
        page.wait("window.spml.workerReady")
        page.page.select_option("#model-select", "transfer")
        page.wait("window.spml.model === 'transfer'")
        page.page.set_input_files("#replay-file", str(example_video))
        page.wait("window.spml.source === 'replay' && window.spml.predictions >= 10")
        last = page.state()["lastPrediction"]
        assert last["model"] == "transfer" and last["window"] == 5
        assert set(last["probabilities"]) == {"Failure Weight Transfer", "Successful Weight Transfer"}
        assert page.overlay_pixels() > 500
    finally:
        page.close()


def test_upload_a_bundle_from_the_page(live: Any, bundles: dict[str, Path], tmp_path: Path) -> None:
    server, browser = live
    archive = tmp_path / "uploaded-steps.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(bundles["steps"].rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(bundles["steps"]).as_posix())
    broken = tmp_path / "broken.zip"
    broken.write_bytes(io.BytesIO(b"not a zip").getvalue())
    page = Page(server, browser)
    try:
        page.wait("window.spml.connected")
        page.page.set_input_files("#upload-file", str(broken))
        page.page.click("#upload-form button")
        page.page.wait_for_selector("#log li.error >> text=upload refused")
        page.page.set_input_files("#upload-file", str(archive))
        page.page.click("#upload-form button")
        page.page.wait_for_selector("#model-select option[value='uploaded-steps']", state="attached")
        # An upload joins the list; it never switches the running session's model by itself.
        assert page.state()["model"] == "steps"
        page.page.select_option("#model-select", "uploaded-steps")
        page.wait("window.spml.model === 'uploaded-steps'")
    finally:
        page.close()


def _spml_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`spml serve ARGS` as a process; returns it and its URL once it listens."""
    import os
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "spml_core", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.startswith("spml serve: http://"):
            return proc, line.split()[2].rstrip("/")
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("spml serve did not start")


def test_the_page_reconnects_after_the_server_restarts(live: Any, bundles: dict[str, Path], tmp_path: Path) -> None:
    _, browser = live
    models = tmp_path / "models"
    for name, path in bundles.items():
        shutil.copytree(path, models / name)
    proc, url = _spml_serve("--models-dir", str(models), "--port", "0")
    port = url.rsplit(":", 1)[1]

    class Server:
        pass

    server = Server()
    server.url = url  # type: ignore[attr-defined]
    page = Page(server, browser)
    try:
        page.wait("window.spml.workerReady && window.spml.connected")
        page.page.select_option("#model-select", "transfer")
        page.wait("window.spml.model === 'transfer'")
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 5")
        proc.kill()  # the server dies: every connection drops at once
        proc.wait()
        page.wait("!window.spml.connected", timeout_s=30)
        assert page.page.is_visible("#reconnect")
        proc, _ = _spml_serve("--models-dir", str(models), "--port", port)
        page.wait("window.spml.connected && window.spml.reconnects >= 1", timeout_s=30)
        # The new server knows nothing of the old session: the page selects its model again,
        # and predictions resume.
        before = page.state()["predictions"]
        page.wait(f"window.spml.predictions >= {before + 5}", timeout_s=30)
        assert page.state()["lastPrediction"]["model"] == "transfer"
        assert not page.page.is_visible("#reconnect")
    finally:
        page.close()
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def empty_live(bundles: dict[str, Path], example_video: Path, tmp_path_factory: pytest.TempPathFactory,
               pw: Any) -> Iterator[Any]:
    """(server, browser) with a camera that sees nobody: a still frame of an empty grey room."""
    from spml_web import create_app
    from spml_web.server import BackgroundServer

    reason = _requirements()
    if reason:
        pytest.skip(reason)
    camera = tmp_path_factory.mktemp("empty_camera") / "empty_640x360.mjpeg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=0x707070:s=640x360:r=30:d=4",
                    "-q:v", "5", "-f", "mjpeg", str(camera)], check=True)
    models = tmp_path_factory.mktemp("empty_models")
    shutil.copytree(bundles["steps"], models / "steps")
    app = create_app({"models_dir": models, "model": models / "steps"})
    with BackgroundServer(app) as server:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"])
        try:
            yield server, browser
        finally:
            browser.close()


def test_status_with_an_empty_camera_and_after_stop(empty_live: Any) -> None:
    """Nobody in view: the page says "no person" (never a class); Stop ends the stream on the server
    and the page says "stopped", with nothing drawn or classified afterwards."""
    server, browser = empty_live
    page = Page(server, browser)
    try:
        page.wait("window.spml.workerReady")
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 10 && window.spml.lastPrediction.status === 'no_person'")
        assert page.page.inner_text("#label") == "no person"
        state = page.state()
        assert state["posesWithPerson"] == 0 and state["lastPrediction"]["label"] is None
        assert " / 30" in page.page.inner_text("#rate")  # input fps next to the bundle's
        page.page.click("#stop")
        page.wait("window.spml.streamEnded && window.spml.streamEnded.reason === 'stop'", timeout_s=10)
        assert page.page.inner_text("#label") == "stopped"
        before = page.state()
        time.sleep(1.0)
        after = page.state()
        assert after["framesSent"] == before["framesSent"] and after["poses"] == before["poses"]
        assert page.page.inner_text("#label") == "stopped" and page.overlay_pixels() == 0
        assert after["errors"] == [], after["errors"]  # no "keypoints.width ... got 0" after Stop
    finally:
        page.close()


def test_the_pages_smoothing_equals_the_offline_filter(empty_live: Any, example_keypoints: Any) -> None:
    """static/smoothing.js in Chromium gives the same landmarks as spml_core's One Euro filter."""
    import numpy as np

    from spml_core import smooth_sequence

    server, browser = empty_live
    page = Page(server, browser)
    try:
        seq = example_keypoints
        frames = [None if np.isnan(x).all() else x.astype(float).tolist() for x in seq.xyzv[:120]]
        times = [float(t) for t in seq.timestamps_ms[:120]]
        got = page.page.evaluate(
            """async ([frames, times]) => {
                 const { OneEuroFilter } = await import('/static/smoothing.js');
                 const f = new OneEuroFilter();
                 return frames.map((lm, i) => f.apply(lm, times[i]));
               }""", [frames, times])
        expected = smooth_sequence(seq.xyzv[:120].astype(np.float64), np.asarray(times))
        for i, rows in enumerate(got):
            if rows is None:
                assert np.isnan(expected[i]).all()
            else:
                np.testing.assert_allclose(np.asarray(rows), expected[i], rtol=0, atol=1e-12)
    finally:
        page.close()
