"""The dask executor on a real 2-worker LocalCluster (127.0.0.1): the executor contract, per-frame
progress from the workers, clear errors, and keypoints identical to the local executor's."""

from __future__ import annotations

import importlib
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spml_core.errors import SpmlError
from spml_core.registry import Registry


TASKS = textwrap.dedent('''
    import time

    def count_frames(item, progress):
        """A task: report `item` frames one by one, fail for 13, else return item * 2."""
        for _ in range(item):
            time.sleep(0.002)
            if progress is not None:
                progress(1)
        if item == 13:
            raise ValueError("thirteen is unlucky")
        return item * 2
''')


def import_tasks(folder: Path, name: str):
    """Write the task module into `folder` and import it from there (workers need it by name)."""
    (folder / f"{name}.py").write_text(TASKS)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory):
    """The task module, importable by worker processes (spawned workers inherit sys.path)."""
    folder = tmp_path_factory.mktemp("tasks")
    module = import_tasks(folder, "spml_dask_test_tasks")
    sys.path.insert(0, str(folder))
    yield module
    sys.path.remove(str(folder))
    sys.modules.pop("spml_dask_test_tasks", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_as_executor_dask() -> None:
    reg = Registry().load()
    assert "dask" in reg.names("executor")
    assert reg.get("executor", "dask").__module__ == "spml_executor_dask.executor"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scheduler": "10.0.0.5:8786"}, "expected a scheduler address like tcp://HOST:PORT"),
        ({"workers": 0}, "greater than or equal to 1"),
        ({"threads": 2}, "unknown option"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    from spml_core.execution import create_executor

    with pytest.raises(SpmlError, match=message) as err:
        create_executor(Registry().load(), "dask", options)
    assert "executor options" in str(err.value)


def test_unreachable_scheduler_is_a_clear_error(tasks) -> None:
    from spml_executor_dask.executor import DaskExecutor

    address = f"tcp://127.0.0.1:{free_port()}"
    ex = DaskExecutor({"scheduler": address, "connect_timeout": 1})
    with pytest.raises(SpmlError, match=f"dask scheduler {address}: cannot connect within 1 s"):
        list(ex.map_unordered(tasks.count_frames, [1]))


@pytest.mark.slow
def test_map_unordered_on_local_cluster_yields_results_errors_and_progress(tasks) -> None:
    from spml_executor_dask.executor import DaskExecutor

    frames = []
    items = [40, 13, 25, 60]
    got = dict(DaskExecutor({"workers": 2}).map_unordered(tasks.count_frames, items, on_progress=frames.append))
    assert set(got) == set(items)
    assert got[40] == 80 and got[25] == 50 and got[60] == 120
    assert isinstance(got[13], ValueError) and "thirteen is unlucky" in str(got[13])
    # Every frame reported on the workers reached the driver, in batches (not one event per frame).
    assert sum(frames) == sum(items)
    assert len(frames) < sum(items)


@pytest.mark.slow
def test_scheduler_address_runs_on_that_cluster(tasks, tmp_path: Path) -> None:
    from distributed import LocalCluster

    from spml_executor_dask.executor import DaskExecutor

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        ex = DaskExecutor({"scheduler": cluster.scheduler_address})
        got = dict(ex.map_unordered(tasks.count_frames, [3, 5, 7]))
        assert got == {3: 6, 5: 10, 7: 14}
        assert len(cluster.scheduler.workers) == 2  # the given cluster did the work; it is left running
        # Workers lacking a module the tasks need: a clear error naming the worker, not a hang.
        hidden = import_tasks(tmp_path, "spml_dask_hidden_tasks")  # imported here, not on sys.path
        with pytest.raises(SpmlError, match="cannot import spml_dask_hidden_tasks: install spml-core"):
            list(ex.map_unordered(hidden.count_frames, [1]))


@pytest.mark.slow
def test_dask_and_local_executors_write_identical_keypoints(tmp_path: Path, cut_clips: Any) -> None:
    from spml_core.keypoints.runlog import RunLog
    from spml_core.pipeline import run_extract
    from spml_core.keypoints.sequence import load_keypoints

    clips = cut_clips(tmp_path / "clips", 3, 60)
    local, dask = tmp_path / "local", tmp_path / "dask"
    r_local = run_extract(tmp_path / "clips", local, "mediapipe", {"model": "lite"},
                          executor="local", executor_options={"workers": 2}, quiet=True)
    r_dask = run_extract(tmp_path / "clips", dask, "mediapipe", {"model": "lite"},
                         executor="dask", executor_options={"workers": 2}, quiet=True)
    assert [r.status for r in r_local] == ["written"] * 3
    assert [r.status for r in r_dask] == ["written"] * 3
    for clip in clips:
        a = load_keypoints(local / f"{clip.stem}.parquet")
        b = load_keypoints(dask / f"{clip.stem}.parquet")
        assert a.n_frames == b.n_frames == 60 and bool(a.detected.all())
        np.testing.assert_array_equal(a.xyzv, b.xyzv)
        np.testing.assert_array_equal(a.world, b.world)
        np.testing.assert_array_equal(a.timestamps_ms, b.timestamps_ms)
        assert a.meta() == b.meta()
    # Both runs recorded every video as done with the same output hashes.
    with RunLog.open(local) as m_local, RunLog.open(dask) as m_dask:
        for clip in clips:
            rec_l, rec_d = m_local.get(f"{clip.stem}.parquet"), m_dask.get(f"{clip.stem}.parquet")
            assert rec_l.status == rec_d.status == "done"
            assert rec_l.out_sha256 == rec_d.out_sha256
    # A second dask run finds everything finished and starts no cluster work.
    again = run_extract(tmp_path / "clips", dask, "mediapipe", {"model": "lite"},
                        executor="dask", executor_options={"workers": 2}, quiet=True)
    assert [r.status for r in again] == ["skipped"] * 3
