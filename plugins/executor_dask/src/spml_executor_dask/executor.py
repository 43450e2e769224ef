"""The ``dask`` executor: one task per item (video) on a dask.distributed cluster.

With ``scheduler`` it connects to a running scheduler (a cluster started by hand, by
``dask-jobqueue`` on SLURM/PBS, or by Kubernetes); without it, it starts a LocalCluster of
worker processes on 127.0.0.1 for the duration of the run. Workers report per-frame progress
as Dask events (``Worker.log_event``), which the driver turns into one progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import Field, field_validator

from spml_core.components import Executor, Options
from spml_core.errors import SpmlError

_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")
# Workers batch frame counts for this long before sending an event: a 30 fps bar needs no more,
# and one message per frame per worker would load the scheduler for nothing.
_FLUSH_SECONDS = 0.2


class DaskExecutor(Executor):
    """Runs items as tasks on a Dask cluster: a given scheduler, or a LocalCluster started here."""

    name = "dask"
    description = "dask.distributed cluster (--scheduler tcp://HOST:PORT) or a LocalCluster on this machine"

    class Options(Options):
        scheduler: str | None = Field(
            None, description="Scheduler address, e.g. tcp://10.0.0.5:8786; absent: start a LocalCluster here"
        )
        workers: int | None = Field(
            None, ge=1, description="LocalCluster worker processes (default: number of cores); unused with scheduler"
        )
        dashboard: str | None = Field(
            None, description="LocalCluster dashboard address, e.g. 127.0.0.1:8787 (needs bokeh); off when absent"
        )
        connect_timeout: float = Field(30.0, gt=0, description="Seconds to wait for the scheduler")

        @field_validator("scheduler")
        @classmethod
        def _address(cls, v: str | None) -> str | None:
            if v is not None and not _ADDRESS.match(v):
                raise ValueError("expected a scheduler address like tcp://HOST:PORT")
            return v

    def workers_for(self, n_items: int) -> int:
        """LocalCluster processes to start: never more than items, at least one."""
        wanted = self.options.workers or os.cpu_count() or 1
        return max(1, min(wanted, n_items))

    @contextlib.contextmanager
    def client(self, n_items: int) -> Iterator[Any]:
        """A connected distributed.Client; a LocalCluster it started is closed on exit."""
        from distributed import Client, LocalCluster

        opts = self.options
        if opts.scheduler:
            try:
                client = Client(opts.scheduler, timeout=opts.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise SpmlError(
                    f"dask scheduler {opts.scheduler}: cannot connect within {opts.connect_timeout:g} s ({exc})"
                ) from None
            with client:
                yield client
            return
        with _children_ignore_sigint(), _worker_environment():
            cluster = LocalCluster(
                n_workers=self.workers_for(n_items),
                threads_per_worker=1,  # one video per process: MediaPipe already uses about one core
                processes=True,
                host="127.0.0.1",
                dashboard_address=opts.dashboard,
                silence_logs=logging.ERROR,
            )
        with cluster, Client(cluster) as client:
            yield client

    def map_unordered(
        self,
        fn: Callable[[Any, Callable[[int], None] | None], Any],
        items: list[Any],
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[Any, Any]]:
        """Yield (item, result or exception) as tasks finish; fn(item, progress) runs on a worker."""
        if not items:
            return
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:12]
        topic = f"spml-progress-{run_id}"
        with self.client(len(items)) as client:
            _check_workers_can_import(client, [_module_of(fn), _module_of(items[0]), __name__])
            if on_progress is not None:
                client.subscribe_topic(topic, lambda event: on_progress(int(event[1])))
            futures = {
                client.submit(
                    _call, fn, item, topic if on_progress is not None else None,
                    key=f"spml-{run_id}-{i}", pure=False,
                ): item
                for i, item in enumerate(items)
            }
            try:
                for fut in as_completed(futures):
                    item = futures[fut]
                    if fut.status == "finished":
                        yield item, fut.result()
                    elif fut.status == "error":
                        yield item, fut.exception()
                    else:
                        yield item, RuntimeError(f"dask task {fut.key} ended as {fut.status}")
                    fut.release()
            finally:
                # Interrupted (Ctrl-C, generator closed): stop queued tasks; running ones finish
                # on their own and their atomic writes leave whole files or none.
                left = [f for f in futures if not f.done()]
                if left:
                    client.cancel(left)
                if on_progress is not None:
                    with contextlib.suppress(Exception):
                        client.unsubscribe_topic(topic)


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """LocalCluster workers without MALLOC_TRIM_THRESHOLD_, and this process's environment left as it was.

    Dask sets MALLOC_TRIM_THRESHOLD_=65536 for its workers so that freed data goes back to the
    OS; a video worker allocates a frame-sized buffer per frame, and with that setting glibc
    returns and maps them again every frame: measured 2.1 s instead of 0.35 s of system time per
    382-frame video. The nanny writes the worker variables into the environment of the process that
    starts the workers (this one); restore it so later pools here are not affected.
    """
    import dask

    before = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Worker processes started inside inherit an ignored SIGINT.

    Ctrl-C reaches the whole foreground process group; the driver alone should handle it (cancel
    the tasks, close the cluster) instead of every worker printing a KeyboardInterrupt traceback.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _module_of(obj: Any) -> str:
    return getattr(obj, "__module__", None) or type(obj).__module__


def _missing_modules(names: list[str]) -> list[str]:
    """On a worker: the modules of `names` it cannot import."""
    import importlib.util

    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _check_workers_can_import(client: Any, modules: list[str]) -> None:
    # A worker that cannot unpickle a task crashes its scheduler connection and the run would
    # wait forever (dask 2026.8), so ask every worker first. Functions of __main__ travel by value.
    names = sorted({m for m in modules if m not in ("__main__", "builtins")})
    try:
        report = client.run(_missing_modules, names)
    except Exception as exc:
        raise SpmlError(
            f"dask workers of {client.scheduler.address} cannot run spml tasks ({type(exc).__name__}: {exc}); "
            "install spml-core, spml-executor-dask and the plugins you use on every worker"
        ) from None
    for worker, missing in sorted(report.items()):
        if missing:
            raise SpmlError(
                f"dask worker {worker} cannot import {', '.join(missing)}: install spml-core, "
                "spml-executor-dask and the plugins you use (same versions) in every worker's environment"
            )


class _EventProgress:
    """progress(n) on a worker: sums frames and sends them as a Dask event now and then."""

    def __init__(self, topic: str) -> None:
        from distributed import get_worker

        self.worker = get_worker()
        self.topic = topic
        self.pending = 0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.pending += int(n)
            if time.monotonic() - self.last >= _FLUSH_SECONDS:
                self._flush()

    def flush(self) -> None:
        """Send what is left (called when the task ends)."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.worker.log_event(self.topic, self.pending)
            self.pending = 0
        self.last = time.monotonic()


def _call(fn: Callable[..., Any], item: Any, topic: str | None) -> Any:
    progress = _EventProgress(topic) if topic else None
    try:
        return fn(item, progress)
    finally:
        if progress is not None:
            progress.flush()
