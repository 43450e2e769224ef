"""The `spml` command line. Each subcommand lives in spml_core/commands/<name>.py and imports
heavy libraries only inside its run(), so `spml --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from spml_core import __version__
from spml_core.errors import SpmlError

COMMANDS = ("plugins", "extract", "dataset", "train", "evaluate", "predict", "import", "serve", "run", "config", "demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="spml",
        description="Real-time video pose classification: extract keypoints, build datasets, "
        "train and evaluate models, classify live streams.",
    )
    parser.add_argument("--version", action="version", version=f"spml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modname = f"spml_core.cli.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        module = importlib.import_module(modname)
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `spml` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except SpmlError as exc:
        print(f"spml: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spml: interrupted; finished outputs are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
