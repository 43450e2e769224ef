"""Hook implementations: cheap imports only; the strategies module loads on demand."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_segmenters() -> list[type]:
    """none, split_on_label, window, flatten_into_columns and flatten_on_example."""
    from spml_segment_window.strategies import STRATEGIES

    return list(STRATEGIES)
