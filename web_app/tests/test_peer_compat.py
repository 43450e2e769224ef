"""StreamPoseML's web client against `spml serve --peer-compat`: its keypoints payload in, frame_result out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow


def peer_payloads(seq: Any, stop: int) -> list[dict[str, Any]]:
    """What StreamPoseML's React client emits: the PoseLandmarkerResult, landmarks as objects, no frame or time."""
    out = []
    for i in range(stop):
        xyzv = seq.xyzv[i]
        pose = [] if np.isnan(xyzv).all() else [[
            {"x": float(x), "y": float(y), "z": float(z), "visibility": float(v)} for x, y, z, v in xyzv]]
        world = [[{"x": 0.0, "y": 0.0, "z": 0.0, "visibility": 1.0}] * 33] if pose else []
        out.append({"landmarks": pose, "worldLandmarks": world})
    return out


def test_streamposeml_client_gets_frame_results(make_app: Any, recorder: Any, example_keypoints: Any,
                                                bundles: dict[str, Path]) -> None:
    with BackgroundServer(make_app(peer_compat=True, peer_true_class="Left Step")) as srv:
        rec = recorder(srv.url)
        rec.wait_for("hello")
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        for payload in peer_payloads(example_keypoints, 150):
            rec.client.emit("keypoints", payload)
            time.sleep(1 / 30)  # a camera's pace: the server stamps frames on arrival
        rec.wait_for("frame_result", 20, timeout=60)
        time.sleep(1.0)  # the worker drains its inbox; then every prediction has its frame_result
        predictions = rec.of("prediction")
        results = rec.wait_for("frame_result", len(predictions), timeout=10)
    assert not rec.of("error"), rec.of("error")[:2]
    by_frame = {p["frame"]: p for p in predictions}
    assert len(results) == len(predictions) and all(r["frame"] in by_frame for r in results)
    frames = [r["frame"] for r in results]
    assert frames == sorted(frames) and frames[-1] < 150  # numbered by the server, in arrival order
    for r in results:
        p = by_frame[r["frame"]]
        assert (r["label"], r["status"]) == (p["label"], p["status"])
        assert r["classification"] is (p["status"] == "ok" and p["label"] == "Left Step")
        assert isinstance(r["timestamp"], str) and r["total_processing_time_ms"] >= 0
    assert {r["label"] for r in results if r["status"] == "ok"}, "no classified frame"


def test_without_peer_compat_the_payload_is_refused(make_app: Any, recorder: Any, example_keypoints: Any) -> None:
    with BackgroundServer(make_app()) as srv:
        rec = recorder(srv.url)
        rec.wait_for("hello")
        rec.client.emit("select_model", {"name": "steps"})
        rec.wait_for("model_selected")
        rec.client.emit("keypoints", peer_payloads(example_keypoints, 1)[0])
        err = rec.wait_for("error")[0]
    assert err["code"] == "bad_payload" and "unknown field" in err["message"]
    assert not rec.of("frame_result")


def test_bad_peer_payload_names_the_landmark() -> None:
    from spml_web.peer_compat import to_spml_keypoints
    from spml_web.protocol import ProtocolError

    class Session:
        pass

    good = {"x": 0.5, "y": 0.5, "z": 0.0, "visibility": 0.9}
    with pytest.raises(ProtocolError, match=r"landmarks\[0\]\[4\] must be an object with x, y, z"):
        to_spml_keypoints(Session(), {"landmarks": [[good] * 4 + [{"x": 1}] + [good] * 28]})
    with pytest.raises(ProtocolError, match="must be 33 landmark objects, got 2"):
        to_spml_keypoints(Session(), {"landmarks": [[good, good]]})
    s = Session()
    first = to_spml_keypoints(s, {"landmarks": []}, now=10.0)
    second = to_spml_keypoints(s, {"landmarks": [[good] * 33]}, now=10.0)  # same clock reading
    assert first["landmarks"] is None and (first["frame"], second["frame"]) == (0, 1)
    assert second["t_ms"] > first["t_ms"] and second["landmarks"][0] == [0.5, 0.5, 0.0, 0.9]
