"""`spml dataset`: keypoint files + annotation files -> one table with a row per frame, and a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand; option groups keep inputs, labels and (later) formatting apart."""
    p = sub.add_parser(
        "dataset",
        help="merge keypoints with annotations into a dataset (.parquet or .csv)",
        description="Build one table with a row per frame: video, frame, timestamp_ms, width, height, the "
        "landmark columns and one column per annotation class. An alignment report is printed and written "
        "beside the output as <out>.report.json.",
    )
    inputs = p.add_argument_group("inputs and output")
    inputs.add_argument("--keypoints", type=Path, required=True,
                        help="folder of keypoint files (<video stem>.parquet from `spml extract`, "
                        "or StreamPoseML <video>_sequence.json)")
    inputs.add_argument("--annotations", type=Path, required=True,
                        help="folder of annotation files, one per video, matched by video stem")
    inputs.add_argument("--out", type=Path, required=True, help="output file: .parquet or .csv")
    inputs.add_argument("--config", type=Path,
                        help="config.yml with the annotation_schema (default: ./config.yml if present, "
                        "else StreamPoseML's default schema)")
    labels = p.add_argument_group("labels")
    labels.add_argument("--parser", default="json", help="annotation parser component (default: json)")
    unlabeled = labels.add_mutually_exclusive_group()
    unlabeled.add_argument("--include-unlabeled", dest="include_unlabeled", action="store_true", default=True,
                           help="keep frames without labels, with empty class columns (default)")
    unlabeled.add_argument("--labeled-only", dest="include_unlabeled", action="store_false",
                           help="keep only frames where every class used by some annotation has a label")
    labels.add_argument("--strict", action="store_true",
                        help="fail on clipped ranges, unknown labels and annotation files matching no video")
    labels.add_argument("--quiet", "-q", action="store_true", help="print no report table or progress")
    add_formatting_arguments(p)
    from spml_core.cli.args import add_executor_arguments

    # Without --executor the dataset is built in this process; with one, a video per task.
    add_executor_arguments(p)
    return p


def add_formatting_arguments(p: argparse.ArgumentParser) -> None:
    """Feature and segmentation options (defined in spml_core.cli.args)."""
    from spml_core.cli.args import add_cli_arguments

    add_cli_arguments(p)


def load_schema(config: Path | None) -> tuple[Any, Path | None]:
    """The annotation_schema of --config, else of ./config.yml, else the default (seed) schema."""
    from spml_core.config import load_config

    if config is None and Path("config.yml").is_file():
        config = Path("config.yml")
    cfg = load_config(config)
    return cfg, config


def run(args: argparse.Namespace) -> int:
    """Build and write the dataset and its report."""
    from spml_core.cli.args import gate_from_args, spec_from_args
    from spml_core.datasets.build import build_and_write
    from spml_core.features.offline import formatting_step

    cfg, config_path = load_schema(args.config)
    if config_path is not None and not args.quiet:
        print(f"spml dataset: annotation_schema from {config_path}", file=sys.stderr)
    executor, options = None, None
    if args.executor or args.scheduler or args.workers is not None:
        from spml_core.cli.args import executor_from_args

        executor, options = executor_from_args(args)
    elif args.retries is not None:
        from spml_core.errors import SpmlError

        raise SpmlError("--retries applies to a dataset built on an executor: add --executor local or dask")
    spec = spec_from_args(args)
    gate = gate_from_args(args)
    if spec is None and (not args.gate or args.gate_max_missing is not None or args.gate_min_visibility is not None):
        from spml_core.errors import SpmlError

        raise SpmlError("--no-gate and --gate-* apply to formatted windows; add --window/--strategy "
                        "(without them the raw per-frame table is written, which the gate never filters)")
    build_and_write(
        args.keypoints, args.annotations, args.out, cfg.annotation_schema, parser=args.parser,
        include_unlabeled=args.include_unlabeled, strict=args.strict,
        formatting=None if spec is None else formatting_step(spec, quiet=args.quiet, gate=gate),
        quiet=args.quiet, feature_spec=spec, executor=executor, executor_options=options, retries=args.retries,
        gate=gate,
    )
    return 0
