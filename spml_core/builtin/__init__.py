"""Default plugins shipped with spml_core (numpy-only): executors, feature extractors, logistic regression."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_executors() -> list[type]:
    """The process-pool executor."""
    from spml_core.builtin.executors import LocalExecutor

    return [LocalExecutor]


@hookimpl
def spml_feature_extractors() -> list[type]:
    """joints, normalized, angles, distances and velocities (numpy only)."""
    from spml_core.features import BUILTIN_EXTRACTORS

    return list(BUILTIN_EXTRACTORS)


@hookimpl
def spml_models() -> list[type]:
    """logistic_regression (numpy; weights saved as JSON)."""
    from spml_core.builtin.linear import LogisticRegressionModel

    return [LogisticRegressionModel]
