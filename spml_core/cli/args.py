"""`spml dataset`'s feature and segmentation options (kept apart from spml_core.formatting so that
building the CLI parser imports neither numpy nor pydantic models)."""

from __future__ import annotations

from typing import Any

from spml_core.errors import ConfigError
from spml_core.features.defaults import DEFAULT_DECIMALS, DEFAULT_FEATURES

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


def spec_from_args(args: Any, registry: Any = None) -> Any:
    """The resolved spec the CLI options ask for, or None when no formatting option was given.

    Resolving here checks names and options before any keypoint file is read.
    """
    chosen = {flag: getattr(args, flag, None) for flag in CLI_STRATEGY_OPTIONS}
    given = {k: v for k, v in chosen.items() if v is not None}
    if not (args.features or args.feature_option or args.strategy or given or args.decimals is not None):
        return None
    from spml_core.cli.commands.extract import parse_options
    from spml_core.features.compute import _registry
    from spml_core.features.spec import FeaturePipelineSpec

    feature_options: dict[str, dict[str, Any]] = {}
    for item in args.feature_option:
        key = item.split("=", 1)[0]
        if "." not in key:
            raise ConfigError(f"--feature-option {item!r}: expected FEATURE.KEY=VALUE, e.g. angles.mode=3d")
        feature, _ = key.split(".", 1)
        feature_options.setdefault(feature, {}).update(parse_options([item[len(feature) + 1:]]))
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
        features, feature_options, strategy, options,
        DEFAULT_DECIMALS if args.decimals is None else args.decimals,
    )
    return spec.resolve(registry)
