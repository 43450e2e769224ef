"""Hook implementations: cheap imports only; xgboost itself loads when a model is fitted or loaded."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_models() -> list[type]:
    """The gradient-boosting and random-forest classifiers."""
    from spml_model_xgboost.model import XGBoostModel, XGBoostRandomForest

    return [XGBoostModel, XGBoostRandomForest]
