"""spml entry point (group ``spml``, name ``executor_dask``): registers the ``dask`` executor."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_executors() -> list[type]:
    """The dask.distributed executor (component name ``dask``)."""
    from spml_executor_dask.executor import DaskExecutor

    return [DaskExecutor]
