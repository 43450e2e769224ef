"""`spml evaluate`: score a model bundle on a dataset; metrics.json and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate a model bundle on a dataset (metrics.json, confusion matrix, timeline)",
        description="On a new dataset, the bundle's fitted model predicts every example (held-out scores). "
        "On the bundle's own training data (same sha256), the bundle's recipe is cross-validated instead, "
        "by video/subject or blocked time. Writes metrics.json, confusion_matrix.png and timeline.png.",
    )
    p.add_argument("bundle", type=Path, help="model bundle folder or .zip from `spml train`")
    p.add_argument("--dataset", type=Path, required=True, help="dataset from `spml dataset` (.parquet or .csv)")
    p.add_argument("--out", type=Path, help="output folder (default: BUNDLE/eval-<dataset name>)")
    p.add_argument("--mode", choices=["auto", "holdout", "cv"], default="auto",
                   help="auto (default): cv on the training data, holdout on other data")
    p.add_argument("--split", choices=["auto", "group", "blocked", "random"], default="auto",
                   help="splits for --mode cv (default auto: by video/subject, else blocked time)")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")
    return p


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the report."""
    from spml_core.models.evaluation import evaluate_bundle

    evaluate_bundle(args.bundle, args.dataset, args.out, mode=args.mode, split=args.split,
                    n_splits=args.folds, quiet=args.quiet)
    return 0
