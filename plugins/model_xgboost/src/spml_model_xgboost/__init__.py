"""spml model plugin: XGBoost gradient boosting and random forests (saved as XGBoost JSON/UBJ, never pickled)."""

__version__ = "0.1.0"
