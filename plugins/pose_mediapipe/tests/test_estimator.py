"""The mediapipe estimator: options, model lookup, the RGB-once frame path, video decoding and bad input.

Every test runs the real MediaPipe PoseLandmarker on real pixels (the lite model where the
model does not matter); nothing is mocked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from spml_core.errors import SpmlError
from spml_core.registry import Registry
from spml_pose_mediapipe import model_files
from spml_pose_mediapipe.estimator import MediaPipePose


def lite(**options: object) -> MediaPipePose:
    return MediaPipePose({"model": "lite", **options})


# -- options and models ------------------------------------------------------------------
def test_registered_under_its_name() -> None:
    assert Registry().load().get("pose_estimator", "mediapipe") is MediaPipePose


def test_options_have_defaults_and_descriptions() -> None:
    opts = MediaPipePose().options
    assert (opts.model, opts.clahe, opts.stride, opts.max_frames, opts.world) == ("full", False, 1, None, True)
    assert opts.min_detection_confidence == opts.min_presence_confidence == opts.min_tracking_confidence == 0.5
    for name, field in MediaPipePose.Options.model_fields.items():
        assert field.description, f"option {name} has no description"


def test_unknown_model_lists_valid_ones() -> None:
    with pytest.raises(ValidationError, match="unknown model 'medium'; valid models: lite, full, heavy"):
        MediaPipePose({"model": "medium"})


@pytest.mark.parametrize("bad", [{"stride": 0}, {"max_frames": 0}, {"min_detection_confidence": 1.5}, {"colour": 1}])
def test_invalid_options_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        MediaPipePose(bad)


def test_missing_task_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "mine.task"
    with pytest.raises(ValidationError, match="mine.task' does not exist"):
        MediaPipePose({"model": str(missing)})
    with pytest.raises(ValidationError, match="must be a MediaPipe .task bundle"):
        MediaPipePose({"model": str(tmp_path / "model.tflite")})


def test_missing_bundle_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model_files.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setattr(model_files, "PACKAGE_MODELS_DIR", tmp_path / "pkg")
    with pytest.raises(SpmlError) as err:
        model_files.resolve_model("heavy")
    msg = str(err.value)
    assert "pose_landmarker_heavy.task not found" in msg
    assert str(tmp_path / "env" / "pose_landmarker_heavy.task") in msg
    assert "make setup" in msg and "python -m spml_pose_mediapipe.model_bundle --out" in msg
    assert "your own .task file" in msg
    with pytest.raises(ValidationError, match="make setup"):
        MediaPipePose({"model": "heavy"})


def test_env_folder_is_searched_before_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = model_files.resolve_model("lite")
    (tmp_path / "pose_landmarker_lite.task").symlink_to(packaged)
    monkeypatch.setenv(model_files.ENV_VAR, str(tmp_path))
    assert model_files.resolve_model("lite") == tmp_path / "pose_landmarker_lite.task"
    assert model_files.resolve_model("full").parent == model_files.PACKAGE_MODELS_DIR


def test_own_task_file_is_used(tmp_path: Path, first_frame: tuple[np.ndarray, float]) -> None:
    import cv2

    own = tmp_path / "my_pose.task"
    shutil.copyfile(model_files.resolve_model("lite"), own)
    bgr, ts = first_frame
    with MediaPipePose({"model": str(own)}) as est:
        assert est.model_path == own.resolve()
        assert "my_pose.task@" in est.version()
        xyzv, _ = est.process_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ts)
    assert not np.isnan(xyzv).any()


def test_version_names_library_and_bundle() -> None:
    from importlib.metadata import version

    v = lite().version()
    assert v.startswith(f"mediapipe {version('mediapipe')}; pose_landmarker_lite.task@")


# -- the frame path ----------------------------------------------------------------------
def test_video_and_frame_paths_see_the_same_rgb_pixels(example_video: Path, first_frame) -> None:
    """StreamPoseML converted BGR->RGB twice offline; here both paths give identical landmarks."""
    import cv2

    bgr, ts = first_frame
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for clahe in (False, True):
        with lite(clahe=clahe) as est:
            live, live_world = est.process_frame(rgb, ts)
        seq = lite(clahe=clahe, max_frames=1).estimate_video(example_video)
        np.testing.assert_array_equal(seq.xyzv[0], live)
        np.testing.assert_array_equal(seq.world[0], live_world)
    # The check has teeth: channel-swapped input moves the landmarks.
    with lite() as est:
        swapped, _ = est.process_frame(bgr, ts)
    assert np.nanmax(np.abs(swapped[:, :2] - live[:, :2])) > 1e-4


def test_process_frame_shapes_and_repeated_timestamps(first_frame) -> None:
    import cv2

    bgr, _ = first_frame
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with lite() as est:
        for _ in range(3):  # the same clock value three times: moved forward, not an error
            xyzv, world = est.process_frame(rgb, 1000.0)
            assert xyzv.shape == (33, 4) and xyzv.dtype == np.float32
            assert world is not None and world.shape == (33, 3)
            assert not np.isnan(xyzv).any()
            assert (0 <= xyzv[:, 3]).all() and (xyzv[:, 3] <= 1).all()
    with lite(world=False) as est:
        assert est.process_frame(rgb, 0)[1] is None


def test_blank_frame_gives_nan() -> None:
    with lite() as est:
        xyzv, world = est.process_frame(np.full((240, 320, 3), 128, np.uint8), 0)
    assert np.isnan(xyzv).all() and np.isnan(world).all()


@pytest.mark.parametrize(
    "frame", [np.zeros((240, 320), np.uint8), np.zeros((240, 320, 4), np.uint8), np.zeros((240, 320, 3), np.float32)]
)
def test_process_frame_rejects_non_rgb(frame: np.ndarray) -> None:
    with lite() as est, pytest.raises(SpmlError, match="expects an RGB uint8 image"):
        est.process_frame(frame, 0)


# -- the video path ----------------------------------------------------------------------
def test_stride_max_frames_progress_and_timestamps(example_video: Path) -> None:
    reported: list[int] = []
    seq = lite(stride=3, max_frames=40).estimate_video(example_video, progress=reported.append)
    assert seq.frame_index.tolist() == list(range(0, 40, 3))
    assert sum(reported) == 40 and all(n > 0 for n in reported)
    # The webm container's own presentation times (1 ms resolution), about 33.4 ms apart.
    assert seq.timestamps_ms[:3].tolist() == [0.0, 100.0, 200.0]
    assert (np.diff(seq.timestamps_ms) > 0).all()
    assert seq.detected.all()
    assert (seq.width, seq.height) == (1280, 720) and seq.fps == pytest.approx(30.0, abs=0.1)
    assert seq.estimator.options["stride"] == 3 and seq.source.sha256


def test_garbage_container_times_fall_back_to_frame_rate(tmp_path: Path, make_video) -> None:
    # OpenCV's MPEG-PS demuxer reports 0 ms for the last frame of this file.
    video = make_video(tmp_path / "clip.mpg", 6, fourcc="PIM1", fps=25)
    seq = lite().estimate_video(video)
    assert seq.timestamps_ms.tolist() == pytest.approx([0.0, 40.0, 80.0, 120.0, 160.0, 200.0])


def test_no_person_gives_nan_frames(grey_video: Path) -> None:
    seq = lite().estimate_video(grey_video)
    assert seq.n_frames == 12 and not seq.detected.any()
    assert np.isnan(seq.xyzv).all() and np.isnan(seq.world).all()


def test_world_off_keeps_no_world(grey_video: Path) -> None:
    assert lite(world=False).estimate_video(grey_video).world is None


def test_bad_videos_are_named(tmp_path: Path, make_video) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video\n")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    zero = make_video(tmp_path / "zero.avi", 0)
    cases = {
        tmp_path / "absent.mp4": "video file not found",
        tmp_path: "not a file",
        not_video: "cannot be decoded as a video",
        empty: "video file is empty",
        zero: "video contains no frames",
    }
    est = lite()
    for path, message in cases.items():
        with pytest.raises(SpmlError, match=message) as err:
            est.estimate_video(path)
        assert str(path) in str(err.value)


def test_clahe_matches_streamposeml_preprocessing(first_frame) -> None:
    """StreamPoseML equalises L in LAB from BGR; doing it from RGB gives the same pixels."""
    import cv2

    from spml_pose_mediapipe.landmarker import Landmarker

    bgr, _ = first_frame
    clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))
    lum, a, b = cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB))
    reference = cv2.cvtColor(cv2.cvtColor(cv2.merge((clahe.apply(lum), a, b)), cv2.COLOR_LAB2BGR), cv2.COLOR_BGR2RGB)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with Landmarker(model_files.resolve_model("lite"), clahe=True) as lm:
        out = lm.preprocess(rgb)
    np.testing.assert_array_equal(out, reference)
    assert not np.array_equal(out, rgb)
