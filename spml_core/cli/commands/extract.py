"""`spml extract`: videos -> one keypoint Parquet file per video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spml_core.cli.args import add_executor_arguments, executor_from_args, parse_options


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("extract", help="extract pose keypoints from a video or a folder of videos")
    p.add_argument("videos", type=Path, help="a video file or a folder of videos")
    p.add_argument("--out", type=Path, required=True, help="output folder for <video stem>.parquet")
    p.add_argument("--estimator", default="mediapipe", help="pose estimator component (default: mediapipe)")
    p.add_argument("--model", help="estimator model, e.g. lite|full|heavy for mediapipe, or a .task file")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="estimator option (repeatable), e.g. -o clahe=true -o stride=2")
    p.add_argument("--format", choices=["parquet", "streamposeml"], default="parquet",
                   help="streamposeml also writes StreamPoseML's per-frame and sequence JSON")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    add_executor_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the extraction and print a summary; non-zero exit when a video failed."""
    from spml_core.pipeline import run_extract

    options = parse_options(args.option)
    if args.model:
        options["model"] = args.model
    executor, executor_options = executor_from_args(args)
    results = run_extract(
        args.videos, args.out, args.estimator, options,
        executor=executor, executor_options=executor_options,
        formats=("parquet", "streamposeml") if args.format == "streamposeml" else ("parquet",),
        json_summary=args.json, retries=args.retries,
    )
    return 1 if any(r.status == "failed" for r in results) else 0
