"""gevent mode classifies the frames of many sessions together (spml_web/batcher.py): each session still gets
exactly the predictions it would get alone, in order, and the server really did batch them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

import spml_core
from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow  # needs the trained bundles

CAMERAS = 6
FRAMES = 90


def test_sessions_classified_together_get_what_each_would_get_alone(make_app: Any, recorder: Any,
                                                                     bundles: dict[str, Path], example_keypoints: Any,
                                                                     keypoint_messages: Any) -> None:
    seq = example_keypoints
    with BackgroundServer(make_app(async_mode="gevent")) as srv:
        clients = [recorder(srv.url) for _ in range(CAMERAS)]
        for k, c in enumerate(clients):
            c.client.emit("select_model", {"name": "steps" if k % 3 else "transfer"})
            c.wait_for("model_selected")
        # Each camera starts at another place in the video, all on one 30 Hz clock, so their frames reach
        # the server in the same turns of its loop.
        starts = [15 * k for k in range(CAMERAS)]
        messages = [keypoint_messages(seq, s, s + FRAMES) for s in starts]
        t0 = time.perf_counter() + 0.3

        def camera(k: int) -> None:
            for i, msg in enumerate(messages[k]):
                delay = t0 + i / 30.0 - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                clients[k].client.emit("keypoints", msg)

        threads = [threading.Thread(target=camera, args=(k,)) for k in range(CAMERAS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wanted = []
        for k, c in enumerate(clients):
            predictor = spml_core.load_bundle(bundles["steps" if k % 3 else "transfer"])
            s = starts[k]
            alone = predictor.predict_stream(seq.xyzv[s:s + FRAMES], seq.timestamps_ms[s:s + FRAMES],
                                             seq.width, seq.height)
            wanted.append({int(seq.frame_index[s + i]): r for i, r in enumerate(alone) if r is not None})
            c.wait_for("prediction", len(wanted[-1]), timeout=30)
        health = requests.get(f"{srv.url}/api/health", timeout=10).json()

    assert health["batches"]["mean_size"] > 1.3, health["batches"]
    for c, want in zip(clients, wanted):
        assert not c.of("late") and not c.of("error"), (c.of("late"), c.of("error"))
        got = {p["frame"]: p for p in c.of("prediction")}
        assert got.keys() == want.keys()
        assert [p["frame"] for p in c.of("prediction")] == sorted(got)  # in order
        ok = 0
        for frame, p in got.items():
            assert (p["status"], p["label"]) == (want[frame]["status"], want[frame]["label"]), frame
            if p["probabilities"] is not None:
                ok += 1
                probs = want[frame]["probabilities"]
                assert p["probabilities"] == pytest.approx(probs, abs=1e-6)
        assert ok > FRAMES / 2, "the window filled and the model answered"
