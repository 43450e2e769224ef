"""`spml config`: validate a config file, or print its JSON Schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("config", help="validate a config file or print the config JSON Schema")
    p.add_argument("action", choices=["validate", "schema"])
    p.add_argument("config", type=Path, nargs="?", default=Path("config.yml"))
    return p


def run(args: argparse.Namespace) -> int:
    """Validate (both passes) or print the schema."""
    from spml_core.config import Config, load_config, validate_components
    from spml_core.registry import Registry

    if args.action == "schema":
        print(json.dumps(Config.model_json_schema(), indent=2))
        return 0
    cfg = load_config(args.config)
    registry = getattr(args, "_registry", None) or Registry().load()
    validate_components(cfg, registry, str(args.config))
    for command in registry.commands().values():
        command().validate_config(cfg, args.config)
    if cfg.serve and "serve" not in registry.commands():
        print(f"{args.config}: note: serve: block not checked (spml-web is not installed)")
    stages = [n for n in type(cfg.pipeline).model_fields if getattr(cfg.pipeline, n) is not None]
    print(f"{args.config}: valid; stages: {', '.join(stages) or 'none'}")
    return 0
