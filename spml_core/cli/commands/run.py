"""`spml run config.yml`: run the configured pipeline stages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("run", help="run the pipeline stages configured in a config file")
    p.add_argument("config", type=Path, nargs="?", default=Path("config.yml"), help="config file (default: config.yml)")
    p.add_argument("--only", action="append", metavar="STAGE", help="run only this stage (repeatable)")
    return p


def run(args: argparse.Namespace) -> int:
    """Validate and run."""
    from spml_core.pipeline import run_config

    run_config(args.config, only=args.only)
    return 0
