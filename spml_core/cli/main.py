"""The `spml` command line. Each core subcommand lives in spml_core/cli/commands/<name>.py and imports
heavy libraries only inside its run(), so `spml --help` stays fast; plugins add more through the
``spml_cli_commands`` hook (spml-web adds `spml serve`)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

from spml_core import __version__
from spml_core.errors import SpmlError

COMMANDS = ("plugins", "extract", "dataset", "train", "evaluate", "predict", "import", "run", "config")


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
    registry = _plugin_registry()
    if registry is not None:
        for name, cls in registry.commands().items():
            if name in COMMANDS:  # spml's own command wins
                print(f"spml: warning: a plugin's command '{name}' ({cls.__module__}) clashes with spml's own "
                      f"'spml {name}' and is ignored", file=sys.stderr)
                continue
            command = cls()
            p = command.add_parser(sub)
            p.set_defaults(_run=command.run, _registry=registry)
    return parser


def _plugin_registry() -> Any:
    """The plugin registry, for the commands plugins add; None (with a warning) if discovery itself fails."""
    from spml_core.registry import Registry

    try:
        return Registry().load()
    except Exception as exc:  # a broken environment must not take `spml --help` down with it
        print(f"spml: warning: plugin discovery failed ({type(exc).__name__}: {exc}); plugin commands are missing",
              file=sys.stderr)
        return None


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
