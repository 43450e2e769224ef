"""Choosing an executor from the command line or config.yml, and running items with retries.

Batch commands (`spml extract`, `spml dataset`) share the flags ``--executor``, ``--scheduler``,
``--workers`` and ``--retries``; :func:`map_with_retries` re-submits failed items in further
rounds so that one bad video never stops the others.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

from spml_core.errors import SpmlError

DEFAULT_RETRIES = 1


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --executor, --scheduler, --workers and --retries to a batch subcommand."""
    group = parser.add_argument_group("execution (see docs/scale-out.md)")
    group.add_argument("--executor", default=None,
                       help="executor component: local (process pool, default) or dask (spml-executor-dask)")
    group.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="Dask scheduler to run on (implies --executor dask); without it dask starts "
                            "a LocalCluster on this machine")
    group.add_argument("--workers", type=int, metavar="N",
                       help="worker processes on this machine (default: number of cores)")
    group.add_argument("--retries", type=int, metavar="N", default=None,
                       help=f"times a failing item is retried before it is reported (default: {DEFAULT_RETRIES})")


def executor_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(executor name, options) from the flags of add_executor_arguments; clear errors on conflicts."""
    name = args.executor or ("dask" if args.scheduler else "local")
    options: dict[str, Any] = {}
    if args.workers is not None:
        if args.workers < 1:
            raise SpmlError(f"--workers {args.workers}: must be at least 1")
        options["workers"] = args.workers
    if args.scheduler:
        if name != "dask":
            raise SpmlError(f"--scheduler {args.scheduler}: only the dask executor connects to a scheduler "
                            f"(got --executor {name})")
        options["scheduler"] = args.scheduler
    if args.retries is not None and args.retries < 0:
        raise SpmlError(f"--retries {args.retries}: must be 0 or more")
    return name, options


def create_executor(registry: Any, name: str, options: dict[str, Any], where: str = "executor") -> Any:
    """Build the named executor with validated options; names the install when dask is missing."""
    from spml_core.errors import UnknownComponentError
    from spml_core.registry import validate_options

    try:
        cls = registry.get("executor", name)
    except UnknownComponentError as exc:
        hint = " (install it: pip install -e plugins/executor_dask)" if name == "dask" else ""
        raise SpmlError(f"{exc}{hint}") from None
    return cls(validate_options(cls, options, f"{where} options"))


def map_with_retries(
    executor: Any,
    fn: Callable[[Any, Callable[[int], None] | None], Any],
    items: list[Any],
    *,
    retries: int = DEFAULT_RETRIES,
    is_failure: Callable[[Any], bool] = lambda r: isinstance(r, BaseException),
    on_progress: Callable[[int], None] | None = None,
    before_round: Callable[[list[Any], int], None] | None = None,
) -> Iterator[tuple[Any, Any, int, bool]]:
    """Yield (item, result, attempt, final) as items finish; failures run again, up to `retries` times.

    Retries go in rounds after the current one, so that a crashed worker pool (a worker killed
    by the system, a native crash) is replaced too. ``final`` is False for a failure that will be
    retried; ``before_round(items, attempt)`` is called before each round starts.
    """
    pending, attempt = list(items), 1
    while pending:
        if before_round is not None:
            before_round(pending, attempt)
        again = []
        for item, result in executor.map_unordered(fn, pending, on_progress=on_progress):
            final = not is_failure(result) or attempt > retries
            if not final:
                again.append(item)
            yield item, result, attempt, final
        pending, attempt = again, attempt + 1
