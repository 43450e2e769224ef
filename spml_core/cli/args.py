"""The CLI's shared option parsers: KEY=VALUE and FEATURE.KEY=VALUE options, executor flags, and
`spml dataset`'s feature and segmentation options. Building the parser imports neither numpy nor pydantic."""

from __future__ import annotations

import argparse
from typing import Any

from spml_core.errors import ConfigError, SpmlError
from spml_core.features.defaults import DEFAULT_DECIMALS, DEFAULT_FEATURES

# The default of execution.DEFAULT_RETRIES, repeated so that building the parser stays cheap
# (tests/test_cli.py checks they agree).
DEFAULT_RETRIES = 1


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> dict, values parsed as YAML scalars (true, 2, 0.5, text)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpmlError(f"option {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def feature_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """FEATURE.KEY=VALUE strings (--feature-option) -> {feature: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in pairs:
        key = item.split("=", 1)[0]
        if "." not in key or "=" not in item:
            raise ConfigError(f"--feature-option {item!r}: expected FEATURE.KEY=VALUE, e.g. angles.mode=3d")
        feature = key.split(".", 1)[0]
        out.setdefault(feature, {}).update(parse_options([item[len(feature) + 1:]]))
    return out


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --executor, --scheduler, --workers and --retries to a batch subcommand."""
    group = parser.add_argument_group("execution (see docs/scale-out.md)")
    group.add_argument("--executor", default=None,
                       help="executor component: local (process pool, default) or dask (spml-executor-dask)")
    group.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="Dask scheduler to run on (implies --executor dask); without it dask starts "
                            "a LocalCluster on this machine")
    group.add_argument("--workers", type=int, metavar="N",
                       help="worker processes on this machine (default: number of cores)")
    group.add_argument("--retries", type=int, metavar="N", default=None,
                       help=f"times a failing item is retried before it is reported (default: {DEFAULT_RETRIES})")


def executor_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(executor name, options) from the flags of add_executor_arguments; clear errors on conflicts."""
    name = args.executor or ("dask" if args.scheduler else "local")
    options: dict[str, Any] = {}
    if args.workers is not None:
        if args.workers < 1:
            raise SpmlError(f"--workers {args.workers}: must be at least 1")
        options["workers"] = args.workers
    if args.scheduler:
        if name != "dask":
            raise SpmlError(f"--scheduler {args.scheduler}: only the dask executor connects to a scheduler "
                            f"(got --executor {name})")
        options["scheduler"] = args.scheduler
    if args.retries is not None and args.retries < 0:
        raise SpmlError(f"--retries {args.retries}: must be 0 or more")
    return name, options



# CLI flag -> the strategy option it sets (StreamPoseML's parameter names).
CLI_STRATEGY_OPTIONS = {
    "window": "segmentation_window",
    "stride": "stride",
    "splitter_label": "segmentation_splitter_label",
    "window_label": "segmentation_window_label",
    "label_rule": "label_rule",
    "pool": "pool",
}


def add_cli_arguments(parser: Any) -> None:
    """Add the feature and segmentation options to `spml dataset`'s parser (an argument group)."""
    g = parser.add_argument_group(
        "features and segmentation",
        "Turn the per-frame table into training examples (docs/features.md). Any of these options "
        "switches formatting on; without them the raw per-frame table is written.",
    )
    g.add_argument("--features", metavar="LIST",
                   help=f"comma-separated feature extractors (default: {','.join(DEFAULT_FEATURES)}; "
                   "built-in: joints, normalized, angles, distances, velocities)")
    g.add_argument("--feature-option", "-F", action="append", default=[], metavar="FEATURE.KEY=VALUE",
                   help="feature option (repeatable), e.g. -F angles.mode=3d -F normalized.body_size=torso")
    g.add_argument("--strategy", metavar="NAME",
                   help="segmentation strategy: none (default), split_on_label, window, flatten_into_columns, "
                   "flatten_on_example")
    g.add_argument("--window", type=int, metavar="N", help="frames per window or example (segmentation_window)")
    g.add_argument("--stride", type=int, metavar="N", help="frames between window starts (default: the window)")
    g.add_argument("--splitter-label", metavar="CLASS", help="class whose label runs make examples "
                   "(segmentation_splitter_label)")
    g.add_argument("--window-label", metavar="CLASS", help="class that labels each window (segmentation_window_label)")
    g.add_argument("--label-rule", choices=["last", "majority"], help="a window's label: last frame's (default) "
                   "or majority")
    g.add_argument("--pool", metavar="STATS", help="pool each example into one row: comma-separated mean,max,std")
    g.add_argument("--decimals", type=int, metavar="N", help=f"round features (default {DEFAULT_DECIMALS})")
    add_gate_arguments(g, "windows")


def add_gate_arguments(g: Any, what: str, allow_off: bool = True) -> None:
    """--no-gate, --gate-max-missing and --gate-min-visibility: the live gate on training windows (docs/live.md).

    ``allow_off=False`` leaves out --no-gate (spml train: the bundle's gate also guards its live use).
    """
    if allow_off:
        g.add_argument("--no-gate", dest="gate", action="store_false", default=True,
                       help=f"keep {what} the live gate refuses (default: leave out those without a person or with "
                       "shoulders/hips below the visibility threshold in more than 30%% of their frames)")
    g.add_argument("--gate-max-missing", type=float, metavar="SHARE",
                   help="largest share of a window without a person or visible shoulders/hips (default 0.3)")
    g.add_argument("--gate-min-visibility", type=float, metavar="V",
                   help="visibility a required joint needs to count as seen (default 0.5)")


def gate_from_args(args: Any) -> Any:
    """The GateConfig the --no-gate / --gate-* flags ask for (the defaults without them)."""
    from pydantic import ValidationError

    from spml_core.features.timegrid import GateConfig

    fields: dict[str, Any] = {"enabled": bool(getattr(args, "gate", True))}
    for flag, name in (("gate_max_missing", "max_missing"), ("gate_min_visibility", "min_visibility")):
        value = getattr(args, flag, None)
        if value is not None:
            fields[name] = value
    try:
        return GateConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--gate-" + str(err["loc"][0]).replace("_", "-")
        raise ConfigError(f"{flag} {err['input']!r}: {err['msg']}") from None


def spec_from_args(args: Any, registry: Any = None) -> Any:
    """The resolved spec the CLI options ask for, or None when no formatting option was given.

    Resolving here checks names and options before any keypoint file is read.
    """
    chosen = {flag: getattr(args, flag, None) for flag in CLI_STRATEGY_OPTIONS}
    given = {k: v for k, v in chosen.items() if v is not None}
    if not (args.features or args.feature_option or args.strategy or given or args.decimals is not None):
        return None
    from spml_core.features.compute import _registry
    from spml_core.features.spec import FeaturePipelineSpec

    options_by_feature = feature_options(args.feature_option)
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    strategy = args.strategy or "none"
    registry = _registry(registry)
    cls = registry.get("segmenter", strategy)
    valid = set(cls.Options.model_fields)
    options: dict[str, Any] = {}
    for flag, value in given.items():
        name = CLI_STRATEGY_OPTIONS[flag]
        if name not in valid:
            usable = [f"--{f.replace('_', '-')}" for f, n in CLI_STRATEGY_OPTIONS.items() if n in valid]
            raise ConfigError(
                f"--{flag.replace('_', '-')} does not apply to strategy '{strategy}' "
                f"(its options: {', '.join(usable) or 'none'})"
            )
        options[name] = value
    spec = FeaturePipelineSpec.from_options(
        features, options_by_feature, strategy, options,
        DEFAULT_DECIMALS if args.decimals is None else args.decimals,
    )
    return spec.resolve(registry)
