"""The page as a researcher's tool, in real headless Chromium: recording a session and downloading it,
replaying it through the current model, the model list's details, "(none)", reconnect with --model
keeping the chosen model and settings, the panels after Stop and while disconnected, the camera chooser
with two fake devices. Screenshots of each panel go to build/test-artifacts/panels/ (docs/web_app.md).
"""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from .test_browser import CHROMIUM, CHROMIUM_ARGS, MEDIAPIPE_LOG, Page, _requirements, _spml_serve, fake_camera  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PANELS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "panels"


@pytest.fixture(scope="module")
def studio(bundles: dict[str, Path], fake_camera: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(server, browser): the app with both bundles ('steps' preselected) and a sessions folder."""
    from playwright.sync_api import sync_playwright

    from spml_web import create_app
    from spml_web.server import BackgroundServer

    models = tmp_path_factory.mktemp("studio_models")
    for name, path in bundles.items():
        shutil.copytree(path, models / name)
    app = create_app({"models_dir": models, "model": models / "steps",
                      "sessions_dir": tmp_path_factory.mktemp("studio_sessions")})
    with BackgroundServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={fake_camera}"])
        try:
            yield server, browser
        finally:
            browser.close()


class StudioPage(Page):
    """A Page whose waits, on timeout, say what the page showed (its state and log)."""

    def wait(self, predicate: str, timeout_s: float = 60) -> None:
        try:
            super().wait(predicate, timeout_s)
        except Exception as exc:
            state = {k: v for k, v in self.state().items() if k not in ("sessions", "lastPrediction")}
            lines = self.page.eval_on_selector_all("#log li", "els => els.map(e => e.textContent)")
            raise AssertionError(f"waited for {predicate}: {exc}\nstate {state}\nlog {lines[:15]}\n"
                                 f"console {self.errors[-5:]}") from None


def shot(page: Page, selector: str, name: str) -> None:
    PANELS.mkdir(parents=True, exist_ok=True)
    page.page.locator(selector).screenshot(path=str(PANELS / f"{name}.png"))


def test_record_a_replay_download_it_and_replay_it(studio: Any, example_video: Path, example_dir: Path) -> None:
    from spml_core import load_keypoints

    server, browser = studio
    page = StudioPage(server, browser)
    try:
        page.wait("window.spml.workerReady && window.spml.connected")
        assert page.page.is_enabled("#record")
        page.page.check("#record")
        # The video's annotations go under the timeline's columns, at the frames' media times.
        page.page.set_input_files("#annotations-file", str(example_dir / "example_video.json"))
        page.wait("window.spml.annotations >= 10")
        page.page.set_input_files("#replay-file", str(example_video))
        # Pose on 1280x720 frames runs at a few frames a second on a busy 2-core machine: 8 are enough.
        page.wait("window.spml.recording && window.spml.recording !== 'starting' && window.spml.posesWithPerson >= 8")
        assert page.page.is_visible("#rec-dot")
        page.page.click("#stop")
        # The folder is finished, then the page's WebM arrives; the list shows both.
        page.wait("!window.spml.recording && window.spml.sessions.length === 1 && "
                  "window.spml.sessions[0].files.video && !window.spml.sessions[0].recording", timeout_s=30)
        assert page.page.inner_text("#label") == "stopped"
        shot(page, ".timeline-card", "timeline-annotations")
        session = page.state()["sessions"][0]
        assert session["source"] == "example_video.webm" and session["model"]["name"] == "steps"
        assert session["frames"] >= 8 and session["pose"] == {"estimator": "mediapipe", "model": "lite",
                                                                  "where": "browser"}
        shot(page, "#sessions-card", "sessions")
        with page.page.expect_download() as download:
            page.page.click(f"#sessions li[data-id='{session['id']}'] a.download")
        data = Path(download.value.path()).read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = sorted(n.split("/", 1)[1] for n in zf.namelist())
            assert names == ["events.jsonl", "keypoints.parquet", "session.json", "video.webm"]
            assert zf.read(f"{session['id']}/video.webm")[:4] == b"\x1a\x45\xdf\xa3"
        folder = server.app.extensions["spml"].archive.root / session["id"]
        seq = load_keypoints(folder)
        assert seq.n_frames == session["frames"] and (seq.width, seq.height) == (1280, 720)
        assert seq.detected.sum() >= 8 and seq.name == "example_video"

        # Replayed through another model: the recorded keypoints, at their pace, classified anew.
        page.page.select_option("#model-select", "transfer")
        page.wait("window.spml.model === 'transfer'")
        page.page.uncheck("#record")
        before = page.state()["predictions"]
        page.page.click(f"#sessions li[data-id='{session['id']}'] button.replay")
        page.wait(f"window.spml.source === 'session' && window.spml.predictions >= {before + 8}")
        page.wait("!window.spml.running")  # every recorded frame sent, at the recorded pace
        last = page.state()["lastPrediction"]
        # The class itself may be withheld on a busy machine (status too slow or unknown); the model is not.
        assert last["model"] == "transfer" and last["status"]
        assert last["label"] in (None, "Failure Weight Transfer", "Successful Weight Transfer")
        assert page.state()["errors"] == []
        assert not [e for e in page.errors if not MEDIAPIPE_LOG.match(e)], page.errors
        assert page.foreign == []
    finally:
        page.close()


def test_replay_speeds_keep_the_recorded_timing(studio: Any, example_keypoints: Any) -> None:
    server, browser = studio
    # A recorded session of 90 real frames (3 s at 30 fps), written by the server's own recorder.
    archive = server.app.extensions["spml"].archive
    recorder = archive.start({"model": None, "source": "speed-test", "source_name": "speed-test",
                              "pose": {"estimator": "mediapipe", "model": "lite", "where": "browser"}})
    seq = example_keypoints
    for i in range(60, 150):
        recorder.frame(int(seq.frame_index[i]), float(seq.timestamps_ms[i]), seq.xyzv[i], seq.width, seq.height)
    recorder.close()
    recorded_s = (seq.timestamps_ms[149] - seq.timestamps_ms[60]) / 1000
    page = StudioPage(server, browser)
    runs: dict[str, dict[str, Any]] = {}
    try:
        page.wait("window.spml.connected && window.spml.model === 'steps' && window.spml.sessions.length >= 1")
        options = page.page.eval_on_selector_all("#replay-speed option", "els => els.map(e => e.value)")
        assert options == ["0.5", "1", "2", "max"]
        button = f"#sessions li[data-id='{recorder.id}'] button.replay"
        for speed in ("2", "1", "0.5", "max"):
            page.page.select_option("#replay-speed", speed)
            page.page.evaluate("() => { window.spml.lastPrediction = null; }")
            page.page.click(button)
            page.wait(f"window.spml.replay && window.spml.replay.speed === '{speed}' && "
                      "window.spml.replay.wallMs !== null", timeout_s=30)
            page.wait("window.spml.lastPrediction !== null && window.spml.lastPrediction.input_fps != null")
            runs[speed] = {**page.state()["replay"], "input_fps": page.state()["lastPrediction"]["input_fps"],
                           "status": page.state()["lastPrediction"]["status"]}
            time.sleep(0.5)  # the last answers arrive before the next replay resets the stream
    finally:
        page.close()
    walls = {k: v["wallMs"] / 1000 for k, v in runs.items()}
    for speed, run in runs.items():
        assert run["sent"] == run["frames"] == 90, (speed, run)
        # The server's time grid sees the recorded 30 fps at every speed, not the wall-clock rate.
        assert 27 <= run["input_fps"] <= 33, (speed, run)
    # Fixed speeds: never early (the frames are due at recorded time / speed); late only by timer slack.
    for speed, factor in (("0.5", 0.5), ("1", 1.0), ("2", 2.0)):
        assert recorded_s / factor * 0.97 <= walls[speed] <= recorded_s / factor + 1.5, walls
    # The server answers a frame in milliseconds; a loaded 2-core machine in tens of them, so only
    # "faster than recorded" is certain (a quiet one replays these 3 s in well under 1 s).
    assert walls["max"] < min(walls["1"], recorded_s), walls
    assert runs["max"]["status"] != "too_slow", runs["max"]


def test_model_details_and_none_stops_classification(studio: Any) -> None:
    server, browser = studio
    page = StudioPage(server, browser)
    try:
        page.wait("window.spml.workerReady && window.spml.connected && window.spml.model === 'steps'")
        details = page.page.inner_text("#model-details")
        for text in ("xgboost", "step_type", "Left Step, Right Step", "balanced accuracy", "UTC",
                     "30.0 fps", "1280×720"):  # features.timing's rate; the pose model is not recorded
            assert text in details, (text, details)
        option = page.page.inner_text("#model-select option[value='transfer']")
        assert "xgboost" in option and "weight_transfer_type" in option
        assert page.page.is_visible("#upload-form")  # --models-dir: uploads are on
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 20")
        shot(page, "#result-card", "result")
        shot(page, "#model-card", "model")
        shot(page, "#health", "health")
        page.page.select_option("#model-select", "")
        page.wait("window.spml.model === null")
        assert page.page.inner_text("#label") == "no model"
        assert page.page.inner_text("#model-details") == ""
        count = page.state()["predictions"]
        time.sleep(1.5)  # the camera keeps running; no prediction may arrive
        assert page.state()["predictions"] == count
        assert page.state()["running"]
        shot(page, ".timeline-card", "timeline")  # with its "no model" mark
        shot(page, "#log-card", "log")
        # The filter hides every other kind; errors stay.
        page.page.select_option("#log-filter", "error")
        # A busy machine may log real errors (late frames dropped by the server): those must stay visible.
        shown = page.page.eval_on_selector_all(
            "#log li", "els => els.map(e => [e.dataset.kind, !e.hidden, e.textContent])")
        assert len([kind for kind, _, _ in shown if kind != "error"]) >= 3, shown
        assert all(visible == (kind == "error") for kind, visible, _ in shown), shown
        page.page.select_option("#log-filter", "all")
        assert page.state()["errors"] == []
    finally:
        page.close()


def test_reconnect_with_model_keeps_the_chosen_model_and_settings(studio: Any, bundles: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    _, browser = studio
    models = tmp_path / "models"
    for name, path in bundles.items():
        shutil.copytree(path, models / name)
    proc, url = _spml_serve("--model", str(models / "steps"), "--models-dir", str(models), "--port", "0")
    port = url.rsplit(":", 1)[1]

    class Server:
        pass

    server = Server()
    server.url = url  # type: ignore[attr-defined]
    page = StudioPage(server, browser)
    try:
        page.wait("window.spml.workerReady && window.spml.connected && window.spml.model === 'steps'")
        page.page.select_option("#model-select", "transfer")
        page.wait("window.spml.model === 'transfer'")
        page.page.fill("#every", "2")
        page.page.dispatch_event("#every", "change")
        page.wait("window.spml.every === 2")
        page.page.click("#start-camera")
        page.wait("window.spml.predictions >= 5")
        proc.kill()
        proc.wait()
        page.wait("!window.spml.connected", timeout_s=30)
        # While disconnected no panel shows the last class as if it were current.
        assert page.page.inner_text("#label") == "disconnected"
        assert page.page.inner_text("#probabilities") == ""
        assert page.page.inner_text("#ping") == "–"
        proc, _ = _spml_serve("--model", str(models / "steps"), "--models-dir", str(models), "--port", port)
        page.wait("window.spml.connected && window.spml.reconnects >= 1", timeout_s=30)
        before = page.state()["predictions"]
        page.wait(f"window.spml.predictions >= {before + 5}", timeout_s=30)
        state = page.state()
        assert state["model"] == "transfer" and state["lastPrediction"]["model"] == "transfer"
        assert page.page.input_value("#model-select") == "transfer"
        assert page.page.input_value("#every") == "2" and state["every"] == 2
        page.page.click("#stop")
        page.wait("window.spml.panels === 'stopped'")
        assert page.page.inner_text("#label") == "stopped"
    finally:
        page.close()
        proc.kill()
        proc.wait()


def test_camera_chooser_with_two_fake_devices(studio: Any) -> None:
    server, studio_browser = studio
    # Chromium's own fake cameras (two of them), not the example-video file the other tests use.
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--use-fake-device-for-media-stream")]
    browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True,
                                                 args=[*args, "--use-fake-device-for-media-stream=device-count=2"])
    if True:
        page = StudioPage(server, browser)
        try:
            page.wait("window.spml.connected")
            page.page.select_option("#resolution", "320x180")
            page.page.click("#start-camera")
            page.wait("window.spml.running && window.spml.cameras && window.spml.cameras.length === 2")
            assert page.state()["camera"]["width"] == 320
            cameras = page.state()["cameras"]
            assert cameras[0]["deviceId"] != cameras[1]["deviceId"]
            page.page.select_option("#camera", cameras[1]["deviceId"])
            page.page.select_option("#resolution", "640x360")
            page.page.click("#start-camera")
            page.wait(f"window.spml.running && window.spml.camera.deviceId === '{cameras[1]['deviceId']}'")
            assert page.state()["camera"]["width"] == 640
            options = page.page.eval_on_selector_all("#camera option", "els => els.map(e => e.textContent)")
            assert len(options) == 3  # the default and both devices, by label
            shot(page, ".stage .controls", "controls")
        finally:
            page.close()
            browser.close()


def test_bluetooth_panel_says_what_is_missing(studio: Any) -> None:
    server, studio_browser = studio
    # Linux Chromium on 127.0.0.1 without the flag: a secure context, the API switched off.
    args = [a for a in CHROMIUM_ARGS if a != "--enable-features=WebBluetooth"]
    browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    page = StudioPage(server, browser)
    try:
        page.page.wait_for_function("() => window.spmlBluetooth && window.spmlBluetooth.status === 'unsupported'")
        message = page.page.evaluate("() => window.spmlBluetooth.message")
        assert "flag" in message and "--enable-features=WebBluetooth" in message, message
        assert "Chrome or Edge" not in message
        assert page.page.is_disabled("#bt-connect")
        shot(page, "#bluetooth-card", "bluetooth")
    finally:
        page.close()
        browser.close()
    # With the flag, on a machine without a Bluetooth adapter (this one: no emulation, no hardware).
    browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = StudioPage(server, browser)
    try:
        page.page.wait_for_function("() => window.spmlBluetooth && window.spml.connected")
        if page.page.evaluate("() => navigator.bluetooth.getAvailability()") is False:
            # Chromium's own answer here: the panel says so before any click.
            page.page.wait_for_function("() => window.spmlBluetooth.status === 'adapter-off'", timeout=15000)
        page.page.click("#bt-connect")  # requestDevice needs a user gesture
        try:
            page.page.wait_for_function("() => window.spmlBluetooth.message.includes('adapter')", timeout=30000)
        except Exception:
            raise AssertionError(page.page.evaluate("() => [window.spmlBluetooth.status, window.spmlBluetooth.message]"))
        assert "adapter off" in page.page.evaluate("() => window.spmlBluetooth.message")
    finally:
        page.close()
        browser.close()


def _bluetooth_panel(browser: Any, url: str, init_script: str | None = None, **context: Any) -> Any:
    """A fresh page at url (its own context), optionally with a script run before the page's own."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    if init_script:
        ctx.add_init_script(init_script)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function("() => window.spmlBluetooth && window.spml && window.spml.connected", timeout=60000)
    return page


def _panel(page: Any) -> tuple[str, str]:
    return page.evaluate("() => [window.spmlBluetooth.status, window.spmlBluetooth.message]")


# The adapter cannot be switched off on this machine, and requestDevice's permission prompt cannot be
# answered in headless Chromium: these scripts stand in for the browser's own navigator.bluetooth answers.
ADAPTER_OFF = """
  if (navigator.bluetooth) {
    Bluetooth.prototype.getAvailability = () => Promise.resolve(false);
  }
"""
DENIED = """
  if (navigator.bluetooth) {
    Bluetooth.prototype.getAvailability = () => Promise.resolve(true);
    Bluetooth.prototype.requestDevice = () => Promise.reject(new DOMException(
      window.__denyAs === "SecurityError" ? "Origin is not allowed to access Bluetooth." :
      "User denied the browser permission to scan for Bluetooth devices.", window.__denyAs || "NotAllowedError"));
  }
"""


def test_bluetooth_panel_tells_each_missing_piece_apart(studio: Any) -> None:
    from spml_web import create_app
    from spml_web.server import BackgroundServer

    server, studio_browser = studio
    seen: dict[str, tuple[str, str]] = {}
    # Not a secure context: the same app reached by a name that is not localhost, over http.
    lan = create_app({"allowed_hosts": ["spml-lab.test"]})
    with BackgroundServer(lan) as lan_server:
        port = lan_server.url.rsplit(":", 1)[1]
        browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=[
            *CHROMIUM_ARGS, "--host-resolver-rules=MAP spml-lab.test 127.0.0.1"])
        try:
            page = _bluetooth_panel(browser, f"http://spml-lab.test:{port}/")
            assert page.evaluate("() => window.isSecureContext") is False
            seen["insecure"] = _panel(page)
            assert page.is_disabled("#bt-connect")
        finally:
            browser.close()
    # API absent: a browser without Web Bluetooth at all (its user agent is not Chromium's).
    args = [a for a in CHROMIUM_ARGS if a != "--enable-features=WebBluetooth"]
    browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        page = _bluetooth_panel(browser, server.url, user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
                                "Gecko/20100101 Firefox/128.0")
        seen["absent"] = _panel(page)
    finally:
        browser.close()
    # Adapter off, then on again (availabilitychanged), and permission denied both ways.
    browser = studio_browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        page = _bluetooth_panel(browser, server.url, ADAPTER_OFF)
        page.wait_for_function("() => window.spmlBluetooth.status === 'adapter-off'", timeout=15000)
        seen["adapter-off"] = _panel(page)
        page.evaluate("""() => { const e = new Event('availabilitychanged'); e.value = true;
                                 navigator.bluetooth.dispatchEvent(e); }""")
        page.wait_for_function("() => window.spmlBluetooth.status === 'disconnected'", timeout=15000)
        assert "adapter on" in _panel(page)[1]
        for deny_as in ("NotAllowedError", "SecurityError"):
            page = _bluetooth_panel(browser, server.url, DENIED + f"window.__denyAs = {deny_as!r};")
            page.click("#bt-connect")
            page.wait_for_function("() => window.spmlBluetooth.status === 'denied'", timeout=15000)
            seen[deny_as] = _panel(page)
            assert page.is_enabled("#bt-connect")  # the user can allow it and try again
            if deny_as == "NotAllowedError":
                PANELS.mkdir(parents=True, exist_ok=True)
                page.locator("#bluetooth-card").screenshot(path=str(PANELS / "bluetooth-denied.png"))
    finally:
        browser.close()
    status = {k: v[0] for k, v in seen.items()}
    assert status == {"insecure": "insecure", "absent": "unsupported", "adapter-off": "adapter-off",
                      "NotAllowedError": "denied", "SecurityError": "denied"}, seen
    assert "not a secure context" in seen["insecure"][1] and "http://spml-lab.test" in seen["insecure"][1]
    assert "no Web Bluetooth" in seen["absent"][1] and "secure" not in seen["absent"][1]
    assert "adapter off" in seen["adapter-off"][1]
    assert seen["NotAllowedError"][1].startswith("permission denied (User denied")
    assert seen["SecurityError"][1].startswith("permission denied by the browser's security policy")
    messages = [v[1] for v in seen.values()]
    assert len(set(messages)) == len(messages), messages
