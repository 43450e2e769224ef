"""`spml plugins`: list installed plugins, their versions and components."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "plugins", help="list installed plugins and their components",
        description="List the installed plugin distributions (bundled under plugins/ or from pip), their "
                    "versions, load status and components. spml-core's own built-in components (the "
                    "sklearn models, the flatten/pooled formatters, ...) are hidden unless --all is given.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, version, components}")
    p.add_argument("--all", action="store_true",
                   help="also list spml-core's built-in plugins (status 'builtin'); without it only "
                        "installed plugins are shown")
    return p


def run(args: argparse.Namespace) -> int:
    """List plugins; exit 1 when any plugin failed to load."""
    from spml_core.registry import Registry

    registry = Registry().load()
    records = [r for r in registry.records if args.all or r.status != "builtin"]
    if args.json:
        print(json.dumps([r.as_json() for r in records], indent=2))
    else:
        if not records:
            print("No plugins installed. Install one, e.g. pip install -e plugins/pose_mediapipe "
                  "(spml plugins --all also lists spml-core's built-ins)")
        for r in records:
            print(f"{r.distribution} {r.version}  [{r.status}]  (entry point {r.name})")
            for kind, names in sorted(r.components.items()):
                print(f"    {kind}: {', '.join(names)}")
            for err in r.errors:
                print(f"    error: {err}")
    return 1 if any(r.status == "failed" for r in records) else 0
