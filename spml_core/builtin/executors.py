"""The `local` executor: a process pool over items (videos), with progress gathered from workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from pydantic import Field

from spml_core.components import Executor, Options

_PROGRESS_QUEUE: Any = None


ORPHAN_CHECK_S = 0.5


def _init_worker(queue: Any, driver_pid: int | None = None) -> None:
    # The queue reaches workers at process start (inheritance), the only way a plain
    # multiprocessing queue may be shared; it avoids a Manager server process, which would
    # outlive a driver killed with SIGKILL.
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue
    if driver_pid is not None:
        threading.Thread(target=_exit_when_orphaned, args=(driver_pid,), name="spml-orphan-watch", daemon=True).start()


def _exit_when_orphaned(driver_pid: int) -> None:
    """End this worker once its driver is gone (killed with SIGKILL, say): nobody would read its results,
    and it must not go on writing outputs. The parent pid changes when the driver dies (re-parenting)."""
    while os.getppid() == driver_pid:
        threading.Event().wait(ORPHAN_CHECK_S)
    os._exit(1)


def _call(fn: Callable[..., Any], item: Any) -> Any:
    queue = _PROGRESS_QUEUE
    return fn(item, queue.put if queue is not None else None)


class LocalExecutor(Executor):
    """Runs items in a pool of worker processes on this machine (one process when workers=1)."""

    name = "local"
    description = "process pool on this machine"

    class Options(Options):
        workers: int | None = Field(None, ge=1, description="Worker processes (default: number of cores)")

    def workers_for(self, n_items: int) -> int:
        """Processes actually started: never more than items, at least one."""
        wanted = self.options.workers or os.cpu_count() or 1
        return max(1, min(wanted, n_items))

    def map_unordered(
        self,
        fn: Callable[[Any, Callable[[int], None] | None], Any],
        items: list[Any],
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[Any, Any]]:
        """Yield (item, result) as items finish; fn(item, progress) runs in a worker."""
        workers = self.workers_for(len(items))
        if workers == 1:
            # In-process: no worker start-up cost, same code path as a worker.
            for item in items:
                try:
                    result = fn(item, on_progress)
                except Exception as exc:  # same contract as the pool: the failure is the result
                    result = exc
                yield item, result
            return
        # spawn, not fork: native libraries (MediaPipe, torch) are not fork-safe, and it is the
        # default on macOS and Windows, so every platform runs the same way.
        ctx = mp.get_context("spawn")
        queue = ctx.Queue() if on_progress is not None else None
        stop = threading.Event()
        pump = None
        if queue is not None and on_progress is not None:
            pump = threading.Thread(target=_drain, args=(queue, on_progress, stop), daemon=True)
            pump.start()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(queue, os.getpid()))
        finished = False
        try:
            futures: dict[Future[Any], Any] = {pool.submit(_call, fn, it): it for it in items}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    yield futures[fut], (exc if exc is not None else fut.result())
            finished = True
        finally:
            # Interrupted (Ctrl-C, generator closed): drop queued items instead of running them all
            # first; items already running end by themselves and write whole files or none.
            pool.shutdown(wait=finished, cancel_futures=not finished)
            stop.set()
            if pump is not None:
                pump.join(timeout=2)
            if queue is not None:
                queue.close()
                queue.cancel_join_thread()


def _drain(queue: Any, on_progress: Callable[[int], None], stop: threading.Event) -> None:
    import queue as queue_mod

    while not stop.is_set():
        try:
            on_progress(queue.get(timeout=0.1))
        except queue_mod.Empty:
            continue
        except (EOFError, OSError, ValueError):
            return
    # Counts sent just before the last item finished still belong on the bar.
    while True:
        try:
            on_progress(queue.get_nowait())
        except (queue_mod.Empty, EOFError, OSError, ValueError):
            return
