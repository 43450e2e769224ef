"""Hostile or damaged inputs to the CLI: one line naming the file, never a traceback; no orphan workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_registry import fake_distribution, run_spml

REPO = Path(__file__).resolve().parents[1]

ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
)


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run failed with exactly one 'spml: error:' line containing every needle, and no traceback."""
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("spml: error:")]
    assert len(errors) == 1, out.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    cfg = tmp_path / "bomb.yml"
    cfg.write_text(ALIAS_BOMB + "\n")
    t0 = time.monotonic()
    out = run_spml("config", "validate", str(cfg))
    assert time.monotonic() - t0 < 30
    one_line_error(out, str(cfg), "alias bomb")
    loop = tmp_path / "loop.yml"
    loop.write_text("a: &a [1, *a]\n")
    one_line_error(run_spml("config", "validate", str(loop)), str(loop), "refers to itself")


def test_a_non_utf8_config_names_the_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.yml"
    cfg.write_bytes(b"# config\npipeline:\n  name: caf\xe9\n")
    one_line_error(run_spml("config", "validate", str(cfg)), str(cfg), "not UTF-8", "line 3")


@pytest.mark.parametrize("meta", [b"{not json", b"[1, 2]", b'{"format_version": 1, "fps": "fast"}'])
def test_corrupted_keypoint_metadata_is_one_line(tmp_path: Path, meta: bytes) -> None:
    import numpy as np

    import pyarrow.parquet as pq

    from spml_core.keypoints.sequence import FORMAT_VERSION, PoseSequence, VideoSource, load_keypoints

    seq = PoseSequence(xyzv=np.zeros((3, 33, 4), np.float32), frame_index=np.arange(3),
                       timestamps_ms=np.arange(3) * 33.3, fps=30.0, width=64, height=48,
                       source=VideoSource(path="v.mp4", sha256="0" * 64))
    good = tmp_path / "kp" / "v.parquet"
    good.parent.mkdir()
    seq.save(good)
    assert load_keypoints(good).n_frames == 3
    table = pq.read_table(good)
    meta = meta.replace(b'"format_version": 1', b'"format_version": %d' % FORMAT_VERSION)
    pq.write_table(table.replace_schema_metadata({b"spml.pose_sequence": meta}), good)
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "v.json").write_text('{"annotations": []}')
    out = run_spml("dataset", "--keypoints", str(good.parent), "--annotations", str(ann),
                   "--out", str(tmp_path / "d.parquet"))
    one_line_error(out, str(good), "corrupted spml keypoint metadata")
    assert not (tmp_path / "d.parquet").exists()


def test_train_out_zip_with_zip_is_refused_before_training(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_bytes(b"PAR1")  # never read: the clash is found first
    out = run_spml("train", str(data), "--target", "step_type", "--out", str(tmp_path / "m.zip"), "--zip")
    one_line_error(out, "m.zip", "use --out")
    assert not (tmp_path / "m.zip").exists()


def test_a_plugin_calling_sys_exit_at_import_is_a_failed_plugin(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "spml-quitter", "spml_quitter", "import sys\nsys.exit(3)\n")
    out = run_spml("plugins", "--json", site=tmp_path)
    import json

    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["spml-quitter"]["status"] == "failed"
    assert "called sys.exit(3) while importing" in plugins["spml-quitter"]["errors"][0]
    assert run_spml("--help", site=tmp_path).returncode == 0


@pytest.mark.slow
def test_a_truncated_video_warns_with_frames_read_and_declared(example_video: Path, tmp_path: Path) -> None:
    video = example_video
    cut = tmp_path / "cut.webm"
    cut.write_bytes(video.read_bytes()[:400_000])
    out = run_spml("extract", str(cut), "--out", str(tmp_path / "kp"))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "the video ends early: 150 frames read of the 382 its container declares" in text, text[-2000:]


WORKER = textwrap.dedent("""
    import os, time
    from pathlib import Path

    def slow_item(item, progress):
        Path(os.environ["SPML_TEST_PIDS"], str(os.getpid())).write_text("")
        time.sleep(4)
        Path(os.environ["SPML_TEST_OUT"], f"{item}.done").write_text("written after the driver died")
        return item
""")
DRIVER = textwrap.dedent("""
    from spml_core.builtin.executors import LocalExecutor
    from orphan_items import slow_item
    for item, result in LocalExecutor({"workers": 2}).map_unordered(slow_item, [1, 2], on_progress=lambda n: None):
        print(item, result, flush=True)
""")


def test_pool_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    (tmp_path / "orphan_items.py").write_text(WORKER)
    pids, out = tmp_path / "pids", tmp_path / "out"
    pids.mkdir()
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "SPML_TEST_PIDS": str(pids),
           "SPML_TEST_OUT": str(out)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2:
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        workers = [int(p.name) for p in pids.iterdir()]
        deadline = time.monotonic() + 3
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "pool workers outlived their driver"
            time.sleep(0.05)
        time.sleep(4.5)  # past the moment they would have written their outputs
        assert list(out.iterdir()) == []
    finally:
        driver.kill()
        shutil.rmtree(pids, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
