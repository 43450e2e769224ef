"""`spml plugins`: list installed plugins, their versions and components."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("plugins", help="list installed plugins and their components")
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, version, components}")
    p.add_argument("--all", action="store_true", help="include the built-in plugins of spml-core")
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
            print("No plugins installed. Install one, e.g. pip install -e plugins/pose_mediapipe")
        for r in records:
            print(f"{r.distribution} {r.version}  [{r.status}]  (entry point {r.name})")
            for kind, names in sorted(r.components.items()):
                print(f"    {kind}: {', '.join(names)}")
            for err in r.errors:
                print(f"    error: {err}")
    return 1 if any(r.status == "failed" for r in records) else 0
