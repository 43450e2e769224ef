"""spml's Dask executor: batch work on a dask.distributed cluster (see docs/scale-out.md)."""
