"""`spml import`: keypoints from another tool (CSV, OpenPose, StreamPoseML) -> spml keypoint files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spml_core.cli.args import parse_options


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "import", help="convert keypoints from another tool into spml keypoint files (+ annotations if labelled)",
        description="Read INPUT with a keypoint importer (`spml plugins` lists them: csv, openpose, streamposeml) "
        "and write OUT/<name>.parquet; labelled inputs also write OUT/annotations/<name>.json and OUT/config.yml "
        "for `spml dataset`. See docs/interchange.md.",
    )
    p.add_argument("format", help="keypoint importer name, e.g. csv, openpose, streamposeml")
    p.add_argument("input", type=Path, help="input file or folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="importer option (repeatable), e.g. -o width=1280 -o label_column=class")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary")
    return p


def run(args: argparse.Namespace) -> int:
    """Import and print what was written."""
    import sys

    from spml_core.datasets.imports import run_import

    results = run_import(args.format, args.input, args.out, parse_options(args.option))
    if not args.quiet:
        for r in results:
            extra = f", {r.labelled_frames} labelled -> {r.annotations}" if r.annotations else ""
            print(f"{r.name}: {r.frames} frames -> {r.keypoints}{extra}")
        print(f"spml import: {len(results)} sequence(s) -> {args.out}", file=sys.stderr)
    return 0
