"""MediaPipe's native start-up lines stay off stderr (and the progress bar) and reach the logger instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = r"""
import logging, sys
from pathlib import Path
import cv2
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="LOG %(name)s %(message)s")
from spml_pose_mediapipe.landmarker import Landmarker
from spml_pose_mediapipe.model_files import resolve_model
cap = cv2.VideoCapture(sys.argv[1])
ok, bgr = cap.read()
with Landmarker(resolve_model("lite")) as lm:
    xyzv, _ = lm.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 0.0)
    lm.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 33.0)
print("person", bool((xyzv[:, 3] > 0.5).any()))
"""


@pytest.mark.parametrize("pass_through", ["", "1"])
def test_native_lines_go_to_the_logger_not_stderr(example_video: Path, pass_through: str, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SPML_MEDIAPIPE_LOGS": pass_through}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(example_video)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "person True" in proc.stdout
    native = "XNNPACK"  # TFLite's delegate line, printed by every landmarker at creation
    if pass_through:
        assert native in proc.stderr
    else:
        assert native not in proc.stderr and "W0000" not in proc.stderr, proc.stderr
        assert f"LOG spml_pose_mediapipe.native INFO: Created TensorFlow Lite {native}" in proc.stdout
