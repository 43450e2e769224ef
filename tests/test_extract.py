"""`spml extract` end to end with the real MediaPipe estimator: the example video, skipping,
re-extraction, failures that leave finished outputs intact, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spml_core.cli.main import main
from spml_core.keypoints.sequence import file_sha256, load_keypoints, read_keypoint_meta
from spml_core.keypoints.skeleton import INDEX

SPML = Path(sys.executable).with_name("spml")
HEAVY = ("mediapipe", "cv2", "torch", "xgboost")


def spml(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `spml` console script."""
    return subprocess.run([str(SPML), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def write_video(path: Path, frames: int, value: int = 128) -> Path:
    """A grey MJPEG video without a person (frames=0: a valid container with no frames)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    for _ in range(frames):
        writer.write(np.full((240, 320, 3), value, np.uint8))
    writer.release()
    return path


# -- the example video -------------------------------------------------------------------
@pytest.mark.slow
def test_example_video_person_in_every_frame(example_keypoints_dir: Path, example_video: Path) -> None:
    seq = load_keypoints(example_keypoints_dir / "example_video.parquet")
    assert seq.n_frames == 382 and bool(seq.detected.all())
    assert seq.frame_index.tolist() == list(range(382))
    assert seq.timestamps_ms[0] == 0.0 and (np.diff(seq.timestamps_ms) > 0).all()
    assert seq.timestamps_ms[-1] == pytest.approx(381 * 1000 / 30.0, abs=2)
    assert (seq.width, seq.height) == (1280, 720) and seq.world is not None
    assert seq.source.sha256 == file_sha256(example_video)
    assert seq.estimator.name == "mediapipe" and seq.estimator.options["model"] == "full"
    # An upright person: shoulders above hips above ankles in every frame (image y grows downwards).
    y = seq.xyzv[:, :, 1]
    shoulders = y[:, [INDEX["left_shoulder"], INDEX["right_shoulder"]]].mean(axis=1)
    hips = y[:, [INDEX["left_hip"], INDEX["right_hip"]]].mean(axis=1)
    ankles = y[:, [INDEX["left_ankle"], INDEX["right_ankle"]]].mean(axis=1)
    assert (shoulders < hips).all() and (hips < ankles).all()
    # World landmarks are metres around the hips: a person is well under 3 m tall.
    assert np.nanmax(np.abs(seq.world)) < 1.5


def test_keypoints_round_trip(example_keypoints_dir: Path, tmp_path: Path) -> None:
    seq = load_keypoints(example_keypoints_dir / "example_video.parquet")
    again = load_keypoints(seq.save(tmp_path / "copy.parquet"))
    np.testing.assert_array_equal(again.xyzv, seq.xyzv)
    np.testing.assert_array_equal(again.world, seq.world)
    np.testing.assert_array_equal(again.timestamps_ms, seq.timestamps_ms)
    assert again.meta() == seq.meta()
    table = seq.to_frame_table()
    assert table.shape == (382, 2 + 33 * 4 + 33 * 3) and table["frame"].iloc[0] == 0


@pytest.mark.slow
def test_cli_subprocess_extracts_every_frame(example_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "kp"
    done = spml("extract", str(example_video), "--out", str(out), "--model", "lite", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("[\n"):])
    assert [(s["status"], s["frames"], s["detected"]) for s in summary] == [("written", 382, 382)]
    assert load_keypoints(out / "example_video.parquet").detected.all()
    assert "1 written, 0 up to date, 0 failed" in done.stderr


def test_rerun_skips_by_hash(example_keypoints_dir: Path, example_video: Path, capsys) -> None:
    out = example_keypoints_dir / "example_video.parquet"
    before = (out.stat().st_mtime_ns, out.read_bytes())
    assert main(["extract", str(example_video), "--out", str(example_keypoints_dir), "--model", "full"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before


def test_changed_options_re_extract(example_keypoints_dir: Path, example_video: Path, tmp_path: Path) -> None:
    shutil.copy(example_keypoints_dir / "example_video.parquet", tmp_path)
    args = ["extract", str(example_video), "--out", str(tmp_path), "--model", "full"]
    assert main([*args, "-o", "max_frames=20", "--json"]) == 0
    meta = read_keypoint_meta(tmp_path / "example_video.parquet")
    assert meta["n_frames"] == 20 and meta["estimator"]["options"]["max_frames"] == 20


# -- failures ----------------------------------------------------------------------------
@pytest.mark.slow
def test_corrupt_video_fails_others_finish(example_video: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "good.webm").symlink_to(example_video)
    (videos / "broken.mp4").write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    out.mkdir()
    # A finished output of an earlier, good version of broken.mp4 must survive the failure.
    earlier = out / "broken.parquet"
    earlier.write_bytes(b"earlier result")
    done = spml("extract", str(videos), "--out", str(out), "--model", "lite", "-o", "max_frames=24",
                "--workers", "2")
    assert done.returncode == 1
    assert f"{videos / 'broken.mp4'}: FAILED:" in done.stdout + done.stderr
    assert "cannot be decoded as a video" in done.stdout + done.stderr
    assert load_keypoints(out / "good.parquet").n_frames == 24
    assert earlier.read_bytes() == b"earlier result"
    assert not list(out.glob(".*.part"))


def test_no_person_video_gives_nan_frames_and_says_so(tmp_path: Path, capsys) -> None:
    video = write_video(tmp_path / "empty_room.avi", 10)
    assert main(["extract", str(video), "--out", str(tmp_path / "out"), "--model", "lite"]) == 0
    assert "no person detected in any frame" in capsys.readouterr().out
    seq = load_keypoints(tmp_path / "out" / "empty_room.parquet")
    assert seq.n_frames == 10 and np.isnan(seq.xyzv).all()


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("zero.avi", lambda p: write_video(p, 0), "video contains no frames"),
        ("notes.mp4", lambda p: p.write_text("just text"), "cannot be decoded as a video"),
    ],
)
def test_bad_video_fails_with_its_name(tmp_path: Path, capsys, name: str, make, message: str) -> None:
    video = tmp_path / name
    make(video)
    assert main(["extract", str(video), "--out", str(tmp_path / "out"), "--model", "lite"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{video}: FAILED" in text and f"{video}: {message}" in text
    assert not (tmp_path / "out" / f"{video.stem}.parquet").exists()


def test_missing_video_is_named(tmp_path: Path) -> None:
    done = spml("extract", str(tmp_path / "nowhere.mp4"), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert f"spml: error: {tmp_path / 'nowhere.mp4'}: no such file or folder" in done.stderr


def test_unknown_model_is_an_error(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 2)
    done = spml("extract", str(video), "--out", str(tmp_path / "out"), "--model", "medium")
    assert done.returncode == 1
    assert "mediapipe options.model" in done.stderr
    assert "unknown model 'medium'; valid models: lite, full, heavy" in done.stderr


def test_unwritable_output_folder(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")  # tests run as root, so chmod cannot make a folder unwritable
    done = spml("extract", str(video), "--out", str(blocker / "sub"))
    assert done.returncode == 1
    assert f"spml: error: {blocker / 'sub'}: cannot create output folder" in done.stderr


# -- cheap commands stay cheap -----------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["extract", "--help"]])
def test_cli_listing_does_not_import_heavy_libraries(argv: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from spml_core.cli.main import main\n"
        "try:\n    main(%r)\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))\n"
    ) % (argv, HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_plugins_json_lists_the_mediapipe_plugin() -> None:
    done = spml("plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(done.stdout)}
    ours = plugins["spml-pose-mediapipe"]
    assert ours["version"] == "0.2.0" and ours["status"] == "loaded"
    assert ours["components"] == {"pose_estimator": ["mediapipe"]}
