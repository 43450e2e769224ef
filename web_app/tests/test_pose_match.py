"""The page runs the pose model a bundle was trained with (issue #12): the server names it (features.pose) in
/api/models and hello, and the page in headless Chromium switches its in-browser model to it, or warns visibly
when the user picks another or the bundle's model is not offered."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from web_app.tests.test_browser import CHROMIUM, CHROMIUM_ARGS, Page, _requirements, fake_camera, pw  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pose_models(example_keypoints_path: Path, example_video: Path, bundles: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder: 'posed' trained for real on a dataset that records its keypoints' estimator (lite),
    'custom' the same bundle as if trained on a pose model this server does not offer, and 'old' (no pose)."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_and_write
    from spml_core.models.training import train

    root = tmp_path_factory.mktemp("pose_match")
    data = root / "example.parquet"
    build_and_write(example_keypoints_path.parent, example_video.parent, data, AnnotationSchema(), quiet=True)
    models = root / "models"
    train(data, "step_type", models / "posed", "xgboost", {"n_estimators": 20, "early_stopping_rounds": None},
          window=10, n_splits=2, quiet=True)
    shutil.copytree(models / "posed", models / "custom")
    manifest = models / "custom" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["features"]["pose"]["model"] = m["features"]["pose"]["options"]["model"] = "/models/pose_landmarker_custom.task"
    manifest.write_text(json.dumps(m))
    shutil.copytree(bundles["steps"], models / "old")
    return models


def test_models_and_hello_name_each_bundles_pose_model(pose_models: Path) -> None:
    from spml_web import create_app

    app = create_app({"models_dir": pose_models})
    listed = {m["name"]: m for m in app.test_client().get("/api/models").get_json()["models"]}
    assert listed["posed"]["pose_model"] == "lite" and listed["posed"]["pose_estimator"] == "mediapipe"
    assert listed["posed"]["pose_smoothing"] is True
    assert listed["posed"]["fps"] == pytest.approx(30, abs=0.5)  # features.timing: "trained at 30.0 fps"
    assert listed["custom"]["pose_model"] == "/models/pose_landmarker_custom.task"
    assert listed["old"]["pose_model"] is None and listed["old"]["pose_estimator"] is None
    client = app.extensions["socketio"].test_client(app)
    (hello,) = [r["args"][0] for r in client.get_received() if r["name"] == "hello"]
    assert {m["name"]: m["pose_model"] for m in hello["models"]}["posed"] == "lite"
    client.disconnect()


@pytest.fixture(scope="module")
def pose_live(pose_models: Path, pw: Any, fake_camera: Path) -> Iterator[Any]:
    """(server, browser): the page's default pose model is 'full', the bundles were trained with 'lite'."""
    from spml_web import create_app
    from spml_web.server import BackgroundServer

    reason = _requirements()
    if reason:
        pytest.skip(reason)
    with BackgroundServer(create_app({"models_dir": pose_models, "pose_model": "full"})) as server:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={fake_camera}"])
        try:
            yield server, browser
        finally:
            browser.close()


def test_the_page_switches_to_the_bundles_pose_model_or_warns(pose_live: Any) -> None:
    server, browser = pose_live
    page = Page(server, browser)
    warning = page.page.locator("#pose-warning")
    try:
        page.wait("window.spml.workerReady")
        assert page.page.input_value("#pose-model") == "full"
        page.page.select_option("#model-select", "old")  # nothing recorded: nothing switched, no warning
        page.wait("window.spml.model === 'old'")
        assert page.page.input_value("#pose-model") == "full" and not warning.is_visible()

        page.page.select_option("#model-select", "posed")
        page.wait("window.spml.model === 'posed'")
        assert page.page.input_value("#pose-model") == "lite"
        page.wait("window.spml.workerReady")  # the worker restarted with the lite model
        assert not warning.is_visible()
        assert "pose model lite: the one bundle posed was trained with" in page.page.inner_text("#log")

        page.page.select_option("#pose-model", "full")  # the user overrides it: a visible warning
        assert warning.is_visible()
        assert "Bundle posed expects pose model lite; this page runs full" in warning.inner_text()
        page.page.select_option("#pose-model", "lite")
        assert not warning.is_visible()

        page.page.select_option("#model-select", "custom")  # a model this server does not offer
        page.wait("window.spml.model === 'custom'")
        assert warning.is_visible()
        text = warning.inner_text()
        assert "expects pose model /models/pose_landmarker_custom.task (not available on this server" in text
        assert page.page.input_value("#pose-model") == "lite"

        page.page.select_option("#pose-mode", "server")  # server-side pose runs the server's model
        page.page.select_option("#model-select", "posed")
        page.wait("window.spml.model === 'posed'")
        assert "server-side pose runs full" in warning.inner_text()
        assert page.state()["errors"] == []
    finally:
        page.close()
