"""The compact keypoints form (base64 float32) parses to the same array as the JSON rows, and classifies the same."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest

from spml_web.protocol import ProtocolError, parse_keypoints


def compact(xyzv: np.ndarray) -> str:
    return base64.b64encode(np.asarray(xyzv, dtype="<f4").tobytes()).decode()


def test_compact_and_nested_forms_parse_alike() -> None:
    xyzv = np.random.default_rng(1).random((33, 4)).astype(np.float32)
    nested = parse_keypoints({"frame": 3, "t_ms": 100.0, "landmarks": xyzv.tolist()})
    small = parse_keypoints({"frame": 3, "t_ms": 100.0, "landmarks": compact(xyzv)})
    np.testing.assert_array_equal(nested.xyzv, small.xyzv)
    assert len(compact(xyzv)) == 704


@pytest.mark.parametrize(("landmarks", "needle"), [
    ("not base64!", "must be base64"),
    (base64.b64encode(b"\0" * 100).decode(), "must decode to 528 bytes"),
    (compact(np.full((33, 4), np.nan)), "not finite"),
    (compact(np.full((33, 4), 1e6)), "out of range"),
])
def test_bad_compact_payloads_name_the_problem(landmarks: str, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        parse_keypoints({"frame": 0, "t_ms": 0.0, "landmarks": landmarks})


@pytest.mark.slow
def test_compact_payloads_get_the_same_predictions(make_app: Any, example_keypoints: Any,
                                                   keypoint_messages: Any) -> None:
    app = make_app()
    runs = []
    for form in ("nested", "compact"):
        client = app.extensions["socketio"].test_client(app)
        client.emit("select_model", {"name": "steps"})
        for msg in keypoint_messages(example_keypoints, 0, 40):
            if form == "compact" and msg["landmarks"] is not None:
                msg = {**msg, "landmarks": compact(np.asarray(msg["landmarks"]))}
            client.emit("keypoints", msg)
        deadline = time.monotonic() + 20
        got: list[Any] = []
        while time.monotonic() < deadline:
            got += [e["args"][0] for e in client.get_received() if e["name"] == "prediction"]
            if len(got) >= 40:
                break
            time.sleep(0.05)
        runs.append({p["frame"]: p["probabilities"] for p in got})
        client.disconnect()
    assert runs[0] and runs[0].keys() == runs[1].keys()
    assert sum(p is not None for p in runs[0].values()) >= 25  # the window filled and the model spoke
    for frame, probs in runs[0].items():
        assert runs[1][frame] == (probs if probs is None else pytest.approx(probs, abs=1e-6))
