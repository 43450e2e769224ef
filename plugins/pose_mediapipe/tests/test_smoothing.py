"""Landmark smoothing is the same offline and live: the example video through estimate_video (the
batch path of `spml extract`) and frame by frame through process_frame (server-side live pose)
gives the same smoothed keypoints; the smoothing options are recorded in the keypoint metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spml_core import smooth_sequence
from spml_pose_mediapipe.estimator import MediaPipePose

FRAMES = 60


def _frames(video: Path, n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def test_smoothing_is_identical_offline_and_live(example_video: Path) -> None:
    offline = MediaPipePose({"model": "lite", "max_frames": FRAMES}).estimate_video(example_video)
    assert offline.estimator.options["smoothing"]["enabled"] is True
    assert offline.estimator.options["smoothing"]["beta"] == 80.0
    live_est = MediaPipePose({"model": "lite"})
    raw_est = MediaPipePose({"model": "lite", "smoothing": {"enabled": False}})
    try:
        frames = _frames(example_video, FRAMES)
        live = np.stack([live_est.process_frame(rgb, t)[0] for rgb, t in zip(frames, offline.timestamps_ms)])
        raw = np.stack([raw_est.process_frame(rgb, t)[0] for rgb, t in zip(frames, offline.timestamps_ms)])
    finally:
        live_est.close()
        raw_est.close()
    np.testing.assert_array_equal(live, offline.xyzv)
    # The filter itself, applied afterwards to the raw landmarks, gives the same keypoints too.
    np.testing.assert_allclose(smooth_sequence(raw, offline.timestamps_ms), live, atol=1e-6)
    # And it smooths: less frame-to-frame motion than the raw landmarks, while staying close to them.
    motion = lambda a: float(np.nanmean(np.abs(np.diff(a[:, :, :2], axis=0))))  # noqa: E731
    assert motion(live) < motion(raw)
    assert float(np.nanmean(np.abs(live[:, :, :2] - raw[:, :, :2]))) < 0.01
