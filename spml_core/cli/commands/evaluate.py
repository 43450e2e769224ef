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
    p.add_argument("--dataset", type=Path, required=True,
                   help="dataset from `spml dataset` (.parquet or .csv), or a session folder recorded by "
                        "`spml serve` (with --annotations)")
    p.add_argument("--annotations", type=Path, metavar="DIR",
                   help="for a session folder: annotations of the video it replayed (matched by file name, "
                        "aligned by time)")
    p.add_argument("--out", type=Path, help="output folder (default: BUNDLE/eval-<dataset name>)")
    p.add_argument("--mode", choices=["auto", "holdout", "cv"], default="auto",
                   help="auto (default): cv on the training data, holdout on other data")
    p.add_argument("--split", choices=["auto", "group", "blocked", "random"],
                   help="splits for --mode cv (default: the bundle's recorded training splits, else auto)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="cross-validation folds (default: the number training used, else 5)")
    p.add_argument("--fail-on-warning", action="store_true",
                   help="exit with an error when the report has quality warnings (for CI)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")
    return p


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the report."""
    from spml_core.datasets.sessions import is_session_folder, session_dataset
    from spml_core.errors import SpmlError
    from spml_core.models.evaluation import evaluate_bundle

    dataset, mode = args.dataset, args.mode
    if dataset.is_dir():
        if not is_session_folder(dataset):
            raise SpmlError(f"--dataset {dataset}: a folder, but not a session folder recorded by spml serve "
                            "(no session.json and keypoints.parquet)")
        if args.annotations is None:
            raise SpmlError(f"--dataset {dataset} is a recorded session: give --annotations DIR with the "
                            "annotations of the video it replayed")
        out = args.out or Path(args.bundle).with_suffix("") / f"eval-session-{dataset.name}"
        out.mkdir(parents=True, exist_ok=True)
        dataset = session_dataset(dataset, args.annotations, out / "session-dataset.parquet")
        mode = "holdout" if mode == "auto" else mode
        args.out = out
    elif args.annotations is not None:
        raise SpmlError("--annotations applies to a session folder only; a dataset file carries its labels")
    evaluate_bundle(args.bundle, dataset, args.out, mode=mode, split=args.split,
                    n_splits=args.folds, quiet=args.quiet, fail_on_warning=args.fail_on_warning)
    return 0
