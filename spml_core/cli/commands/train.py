"""`spml train`: a per-frame dataset -> cross-validated metrics and a safe model bundle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "train",
        help="train and cross-validate a model; write a model bundle with metrics and plots",
        description="Compute features for windows of frames, cross-validate by video (or subject column; "
        "blocked time splits for a single video), fit the final model on every labelled example, and write "
        "BUNDLE_DIR with manifest.json, the weights (no pickle), metrics.json, confusion_matrix.png and "
        "timeline.png. See docs/models.md.",
    )
    p.add_argument("dataset", type=Path, help="dataset from `spml dataset` (.parquet or .csv, a row per frame)")
    p.add_argument("--target", required=True, metavar="CLASS", help="class column to predict, e.g. step_type")
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE_DIR", help="bundle folder to write")
    p.add_argument("--model", default="xgboost", help="model component: xgboost, random_forest, lstm, ... "
                   "(`spml plugins` lists them; default xgboost)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="model option (repeatable), e.g. -o n_estimators=200 -o class_weight=none")
    f = p.add_argument_group("features (the bundle stores them for live use)")
    f.add_argument("--features", metavar="LIST", help="comma-separated feature extractors "
                   "(default: angles,distances,normalized)")
    f.add_argument("--feature-option", "-F", action="append", default=[], metavar="FEATURE.KEY=VALUE",
                   help="feature option (repeatable), e.g. -F normalized.body_size=torso")
    f.add_argument("--window", type=int, metavar="N", help="frames per example (default 10)")
    f.add_argument("--stride", type=int, default=1, metavar="N",
                   help="frames between example starts (default 1: every frame, as live prediction sees)")
    f.add_argument("--pool", metavar="STATS", help="summarise each window with mean,max,std instead of "
                   "flattening its frames (row models only)")
    f.add_argument("--label-rule", choices=["last", "majority"], default="last",
                   help="a window's label: its last frame's (default) or the majority")
    f.add_argument("--spec", type=Path, metavar="SPEC.json",
                   help="a full feature-pipeline spec (JSON) instead of the options above")
    e = p.add_argument_group("evaluation")
    e.add_argument("--split", choices=["auto", "group", "blocked", "random"], default="auto",
                   help="auto (default): by video/subject with 2+ groups, else blocked time splits; "
                   "random is leaky and only on request")
    e.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    e.add_argument("--search", action="store_true",
                   help="small hyperparameter search by nested grouped cross-validation")
    e.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t = p.add_argument_group("trust (docs/models.md, 'Trusting a model')")
    t.add_argument("--background", metavar="LABEL", help="keep unlabelled frames as an explicit class LABEL "
                   "(\"none of these\"), so the model can answer it")
    t.add_argument("--reject-keep", type=float, default=0.95, metavar="SHARE",
                   help="rejection threshold: answer 'unknown' below the calibrated probability that keeps this "
                   "share of the correct cross-validated answers (default 0.95)")
    t.add_argument("--no-reject", action="store_true", help="never answer 'unknown'")
    t.add_argument("--mirror", action="append", metavar="A<->B", nargs="?", const="",
                   help="add left/right-mirrored copies of the training folds; repeat for label pairs that "
                   "mirror into each other, e.g. --mirror 'Left Step<->Right Step' (bare --mirror: labels unchanged)")
    t.add_argument("--time-warp", metavar="F,F", help="add copies played F times faster, e.g. 0.9,1.1")
    t.add_argument("--jitter", type=float, default=0.0, metavar="SIGMA",
                   help="add a copy with Gaussian noise on x/y (share of the frame, e.g. 0.005)")
    t.add_argument("--min-examples", type=int, default=30, metavar="N",
                   help="warn about classes with fewer examples than this (default 30)")
    t.add_argument("--min-events", type=int, default=3, metavar="N",
                   help="warn about classes annotated in fewer events (runs of the label) than this (default 3)")
    t.add_argument("--fail-on-warning", action="store_true",
                   help="exit with an error when metrics.json has quality warnings (for CI); the bundle is still written")
    from spml_core.cli.args import add_gate_arguments

    # The gate is recorded in the bundle and guards its live use too, so training cannot switch it off here.
    add_gate_arguments(t, "windows", allow_off=False)
    p.add_argument("--zip", action="store_true", help="also write BUNDLE_DIR.zip (for upload to the web app)")
    p.add_argument("--notes", default="", help="free text stored in the manifest")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")
    return p


def run(args: argparse.Namespace) -> int:
    """Train, evaluate and write the bundle."""
    from spml_core.cli.args import feature_options, gate_from_args, parse_options
    from spml_core.errors import SpmlError
    from spml_core.models.examples import DEFAULT_WINDOW, default_spec
    from spml_core.models.training import train

    spec = None
    if args.spec:
        from pydantic import ValidationError

        from spml_core.errors import format_validation_error
        from spml_core.features.spec import FeaturePipelineSpec

        if args.features or args.window or args.pool or args.feature_option:
            raise SpmlError("--spec replaces --features/--feature-option/--window/--pool; give one or the other")
        try:
            spec = FeaturePipelineSpec.model_validate_json(args.spec.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpmlError(f"{args.spec}: cannot read ({exc.strerror})") from None
        except ValidationError as exc:
            raise SpmlError(format_validation_error(exc, str(args.spec))) from None
    else:
        features = [s.strip() for s in args.features.split(",") if s.strip()] if args.features else None
        pool = [s.strip() for s in args.pool.split(",") if s.strip()] if args.pool else None
        spec = default_spec(args.target, features, args.window or DEFAULT_WINDOW, args.stride, pool,
                            args.label_rule, feature_options(args.feature_option))
    train(args.dataset, args.target, args.out, args.model, parse_options(args.option), spec=spec,
          split=args.split, n_splits=args.folds, search=args.search, seed=args.seed, zip_bundle=args.zip,
          notes=args.notes, quiet=args.quiet, background=args.background,
          reject_keep=None if args.no_reject else args.reject_keep, augment=augment_settings(args),
          fail_on_warning=args.fail_on_warning, min_examples=args.min_examples, min_events=args.min_events,
          gate=gate_from_args(args))
    return 0


def augment_settings(args: argparse.Namespace) -> Any:
    """--mirror/--time-warp/--jitter as AugmentSettings (None when none is given)."""
    from spml_core.errors import SpmlError
    from spml_core.models.augment import AugmentSettings, parse_label_map

    mirror = parse_label_map([m for m in args.mirror if m]) if args.mirror is not None else None
    try:
        warp = [float(x) for x in args.time_warp.split(",") if x.strip()] if args.time_warp else []
    except ValueError:
        raise SpmlError(f"--time-warp {args.time_warp!r}: expected comma-separated numbers, e.g. 0.9,1.1") from None
    settings = AugmentSettings(mirror=mirror, time_warp=warp, jitter=args.jitter, seed=args.seed)
    return settings if settings.active else None
