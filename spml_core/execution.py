"""Choosing an executor from the command line or config.yml, and running items with retries.

Batch commands (`spml extract`, `spml dataset`) share the flags ``--executor``, ``--scheduler``,
``--workers`` and ``--retries`` (spml_core.cli.args); :func:`map_with_retries` re-submits failed items in further
rounds so that one bad video never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from spml_core.errors import SpmlError, UnknownComponentError

DEFAULT_RETRIES = 1


def create_executor(registry: Any, name: str, options: dict[str, Any], where: str = "executor") -> Any:
    """Build the named executor with validated options; names the install when dask is missing."""

    try:
        return registry.build("executor", name, options, f"{where} options")
    except UnknownComponentError as exc:
        hint = " (install it: pip install -e plugins/executor_dask)" if name == "dask" else ""
        raise SpmlError(f"{exc}{hint}") from None


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
