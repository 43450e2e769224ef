"""Resumable, loss-free extraction: a run killed with SIGKILL loses no finished video and leaves no
corrupt file, the re-run finishes only what is missing, stale outputs are redone, failing videos are
retried and reported while the others finish, and the run log survives torn writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spml_core.builtin.executors import LocalExecutor
from spml_core.cli.main import main
from spml_core.errors import SpmlError
from spml_core.execution import map_with_retries
from spml_core.keypoints.runlog import RUNLOG_NAME, RunLog
from spml_core.pipeline import run_extract
from spml_core.keypoints.sequence import file_sha256, load_keypoints

SPML = Path(sys.executable).with_name("spml")
LITE = {"model": "lite"}


@pytest.fixture(scope="module")
def clips(cut_clips: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 60-frame clips of the example video (read-only: tests copy or link them)."""
    folder = tmp_path_factory.mktemp("clips")
    cut_clips(folder, 4, 60)
    return folder


@pytest.fixture(scope="module")
def finished(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished output folder for the first two clips (lite model), made once."""
    out = tmp_path_factory.mktemp("finished")
    results = run_extract([clips / "clip0.avi", clips / "clip1.avi"], out, "mediapipe", LITE, quiet=True)
    assert [r.status for r in results] == ["written", "written"]
    return out


def state(folder: Path) -> dict[str, tuple[int, str]]:
    """Output file name -> (mtime_ns, sha256) for every keypoint file in folder."""
    return {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in sorted(folder.glob("*.parquet"))}


# -- killed runs -------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing_and_rerun_finishes_only_the_missing(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.Popen(
        [str(SPML), "extract", str(clips), "--out", str(out), "--model", "lite", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.parquet")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        # The whole process group, workers included: like a crashed machine or `kill -9` of a job.
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    survivors = state(out)
    assert 1 <= len(survivors) < 4, f"the kill should land mid-run, found {sorted(survivors)}"
    for name in survivors:  # every file present is whole: atomic writes
        assert load_keypoints(out / name).n_frames == 60
    # A killed writer's temp file, as SIGKILL can leave one mid-write.
    leftover = out / ".clip3.parquet.x1y2z3.part"
    leftover.write_bytes(b"PAR1 half a parquet file")

    results = run_extract(clips, out, "mediapipe", LITE, executor_options={"workers": 2}, quiet=True)

    by_name = {r.out.name: r.status for r in results}
    assert {n for n, s in by_name.items() if s == "skipped"} == set(survivors)
    assert {n for n, s in by_name.items() if s == "written"} == {f"clip{i}.parquet" for i in range(4)} - set(survivors)
    after = state(out)
    assert {n: after[n] for n in survivors} == survivors  # finished videos untouched (mtime and bytes)
    assert len(after) == 4 and all(load_keypoints(out / n).n_frames == 60 for n in after)
    assert not leftover.exists() and not list(out.glob(".*.part"))
    with RunLog.open(out) as manifest:
        for name in after:
            rec = manifest.get(name)
            assert rec.status == "done" and rec.out_sha256 == after[name][1]


# -- stale and partial outputs -------------------------------------------------------------
@pytest.mark.slow
def test_stale_or_corrupt_outputs_are_redone_and_good_ones_kept(finished: Path, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("clip0.parquet", "clip1.parquet", RUNLOG_NAME):
        (out / name).write_bytes((finished / name).read_bytes())
    for name in ("clip0.parquet", "clip1.parquet"):  # copies have new mtimes: verified by hash instead
        os.utime(out / name, ns=(time.time_ns(), time.time_ns()))
    # clip0: edited after extraction; its own metadata still claims the same video and options.
    seq = load_keypoints(out / "clip0.parquet")
    seq.xyzv[:, :, :2] += 0.01
    seq.save(out / "clip0.parquet")
    edited = file_sha256(out / "clip0.parquet")
    before = state(out)
    videos = [clips / "clip0.avi", clips / "clip1.avi"]

    results = run_extract(videos, out, "mediapipe", LITE, executor_options={"workers": 1}, quiet=True)

    assert {r.out.name: r.status for r in results} == {"clip0.parquet": "written", "clip1.parquet": "skipped"}
    assert file_sha256(out / "clip0.parquet") == file_sha256(finished / "clip0.parquet") != edited
    assert state(out)["clip1.parquet"] == before["clip1.parquet"]
    # A truncated file (not written by spml's atomic writer) is redone too.
    data = (out / "clip1.parquet").read_bytes()
    (out / "clip1.parquet").write_bytes(data[: len(data) // 2])
    results = run_extract(videos, out, "mediapipe", LITE, executor_options={"workers": 1}, quiet=True)
    assert {r.out.name: r.status for r in results} == {"clip0.parquet": "skipped", "clip1.parquet": "written"}
    np.testing.assert_array_equal(load_keypoints(out / "clip1.parquet").xyzv,
                                  load_keypoints(finished / "clip1.parquet").xyzv)


def test_outputs_without_a_manifest_are_adopted_not_redone(finished: Path, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip0.parquet").write_bytes((finished / "clip0.parquet").read_bytes())
    before = state(out)
    results = run_extract([clips / "clip0.avi"], out, "mediapipe", LITE, quiet=True)
    assert [r.status for r in results] == ["skipped"] and state(out) == before
    with RunLog.open(out) as manifest:
        rec = manifest.get("clip0.parquet")
        assert rec.status == "done" and rec.out_sha256 == before["clip0.parquet"][1]


# -- failures and retries ------------------------------------------------------------------
@pytest.mark.slow
def test_failing_video_is_retried_and_reported_while_others_finish(
    finished: Path, clips: Path, tmp_path: Path, capsys
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clip0.avi", "clip2.avi"):
        (videos / name).symlink_to(clips / name)
    (videos / "broken.avi").write_bytes(os.urandom(20_000))
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip0.parquet").write_bytes((finished / "clip0.parquet").read_bytes())

    code = main(["extract", str(videos), "--out", str(out), "--model", "lite", "--workers", "2",
                 "--retries", "2", "--json"])

    assert code == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out[captured.out.index("[\n"):])
    by_name = {Path(r["video"]).name: r for r in summary}
    assert by_name["broken.avi"]["status"] == "failed" and by_name["broken.avi"]["attempts"] == 3
    assert "cannot be decoded as a video" in by_name["broken.avi"]["message"]
    assert by_name["clip2.avi"]["status"] == "written" and by_name["clip0.avi"]["status"] == "skipped"
    assert load_keypoints(out / "clip2.parquet").n_frames == 60
    assert "failed on attempt 1 of 3, retrying" in captured.out + captured.err
    assert f"{videos / 'broken.avi'}: FAILED: " in captured.err and "(after 3 attempts)" in captured.err
    with RunLog.open(out) as manifest:
        rec = manifest.get("broken.parquet")
        assert rec.status == "failed" and rec.attempts == 3 and "cannot be decoded" in rec.error
    # The next run retries only the failed video; attempts keep counting for the same content.
    results = run_extract(videos, out, "mediapipe", LITE, retries=0, quiet=True)
    assert {r.video.name: r.status for r in results} == {
        "broken.avi": "failed", "clip0.avi": "skipped", "clip2.avi": "skipped"}
    with RunLog.open(out) as manifest:
        assert manifest.get("broken.parquet").attempts == 4


def test_a_transient_failure_succeeds_on_retry(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"

    def flaky(item: str, progress) -> str:
        if item == "flaky" and not marker.exists():
            marker.write_text("1")
            raise ConnectionError("worker lost")
        return item.upper()

    seen = list(map_with_retries(LocalExecutor({"workers": 1}), flaky, ["a", "flaky", "b"], retries=1))
    assert [(i, a, f) for i, r, a, f in seen if i == "flaky"] == [("flaky", 1, False), ("flaky", 2, True)]
    assert {i: r for i, r, _, f in seen if f} == {"a": "A", "flaky": "FLAKY", "b": "B"}
    # Without retries, the same failure is final at once.
    marker.unlink()
    seen = list(map_with_retries(LocalExecutor({"workers": 1}), flaky, ["flaky"], retries=0))
    assert len(seen) == 1 and isinstance(seen[0][1], ConnectionError) and seen[0][3] is True


# -- the manifest itself -------------------------------------------------------------------
def test_one_run_per_output_folder(tmp_path: Path) -> None:
    with RunLog.open(tmp_path):
        with pytest.raises(SpmlError, match=f"{tmp_path}: another spml run is writing to this folder \\(pid {os.getpid()}\\)"):
            with RunLog.open(tmp_path):
                pass
    with RunLog.open(tmp_path):  # released on exit
        pass


def test_torn_last_line_is_skipped_and_the_manifest_compacted(finished: Path, tmp_path: Path) -> None:
    lines = (finished / RUNLOG_NAME).read_text().splitlines()
    assert len(lines) == 4  # running + done for each of two videos
    (tmp_path / RUNLOG_NAME).write_text("\n".join(lines) + "\n" + lines[-1][: len(lines[-1]) // 2])
    with RunLog.open(tmp_path) as manifest:
        assert {name: rec.status for name, rec in manifest.records.items()} == {
            "clip0.parquet": "done", "clip1.parquet": "done"}
    compacted = (tmp_path / RUNLOG_NAME).read_text().splitlines()
    assert len(compacted) == 2 and all(json.loads(line)["status"] == "done" for line in compacted)


def test_bad_executor_flags_are_named(tmp_path: Path, capsys) -> None:
    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    assert main(["extract", str(video), "--out", str(tmp_path / "o"), "--executor", "local",
                 "--scheduler", "tcp://127.0.0.1:8786"]) == 1
    assert "--scheduler tcp://127.0.0.1:8786: only the dask executor connects to a scheduler" in capsys.readouterr().err
    assert main(["extract", str(video), "--out", str(tmp_path / "o"), "--retries", "-1"]) == 1
    assert "--retries -1: must be 0 or more" in capsys.readouterr().err
    assert main(["extract", str(video), "--out", str(tmp_path / "o"), "--executor", "slurm"]) == 1
    assert "slurm" in capsys.readouterr().err
