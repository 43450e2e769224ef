"""`spml predict`: a model bundle classifies every frame of videos or keypoint files, offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spml_core.cli.args import add_executor_arguments, executor_from_args, parse_options


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "predict", help="classify every frame of videos or keypoint files with a model bundle",
        description="Per input: <stem>.predictions.parquet (frame, timestamp_ms, label, status, p_<class>, "
        "decision), <stem>.bouts.csv, <stem>.timeline.png and summary.json. Videos are extracted first (into "
        "OUT/keypoints) with the bundle's pose estimator. Re-runs skip inputs whose outputs are current. "
        "See docs/predict.md.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="videos, keypoint files (.parquet from `spml extract`/`spml import`, *_sequence.json) "
                   "or folders of them")
    p.add_argument("--model", required=True, type=Path, metavar="BUNDLE", help="model bundle folder or .zip")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--csv", action="store_true", help="also write <stem>.predictions.csv")
    p.add_argument("--export", action="append", default=[], metavar="FORMAT",
                   help="also write the predicted bouts for review: elan, labelstudio, dataloop, boris "
                   "(repeatable or comma-separated)")
    p.add_argument("--decisions", type=Path, metavar="FILE.yml",
                   help="a decision config (actions, threshold, min_bout, ...; docs/actuation.md): adds a "
                   "decision column, the class an actuator would hold on at each frame")
    p.add_argument("--estimator", help="pose estimator for videos (default: the bundle's, else mediapipe)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="pose estimator option for videos (repeatable); replaces the bundle's options")
    p.add_argument("--no-timeline", action="store_true",
                   help="skip <stem>.timeline.png (the slowest output for short inputs)")
    p.add_argument("--force", action="store_true", help="predict again even where outputs are current")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file lines")
    add_executor_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the predictions; non-zero exit when an input failed."""
    import functools
    import hashlib
    import json

    import yaml
    from pydantic import ValidationError

    from spml_core.actuation.decisions import DecisionConfig
    from spml_core.actuation.offline import decision_column
    from spml_core.errors import SpmlError, format_validation_error
    from spml_core.models.predict_run import run_predict

    exports = [f.strip() for item in args.export for f in item.split(",") if f.strip()]
    decide = None
    decide_key = ""
    if args.decisions:
        try:
            text = args.decisions.read_text(encoding="utf-8")
            raw = yaml.safe_load(text)
        except OSError as exc:
            raise SpmlError(f"{args.decisions}: cannot read decision config ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise SpmlError(f"{args.decisions}: not valid YAML ({exc})") from None
        try:
            config = DecisionConfig.model_validate(raw)
        except ValidationError as exc:
            raise SpmlError(format_validation_error(exc, str(args.decisions))) from None
        decide = functools.partial(decision_column, config)
        decide_key = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
    executor, executor_options = executor_from_args(args)
    results = run_predict(
        args.inputs, args.model, args.out, csv=args.csv, exports=exports, estimator=args.estimator,
        estimator_options=parse_options(args.option) if args.option else None, decide=decide,
        decide_key=decide_key, executor=executor, executor_options=executor_options, retries=args.retries,
        force=args.force, timeline=not args.no_timeline, quiet=args.quiet,
    )
    if args.json:
        print(json.dumps([{"source": str(r.source), "status": r.status, "frames": r.frames,
                           "message": r.message, "bouts": r.summary} for r in results], indent=2))
    return 1 if any(r.status == "failed" for r in results) else 0
