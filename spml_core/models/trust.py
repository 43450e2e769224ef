"""What metrics.json says about how far to trust a model: warnings, calibration, importances, baseline.

Used by `spml train` and `spml evaluate` on top of the plain cross-validation report.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.models.calibration import apply_temperature, brier_score, calibrate_cv, expected_calibration_error
from spml_core.models.novelty import novelty_cv
from spml_core.models.plots import importance_png, reliability_png
from spml_core.models.quality import (
    MIN_EVENTS,
    MIN_EXAMPLES,
    as_warning,
    baseline_warning,
    cv_warnings,
    data_warnings,
    dedupe,
)

if TYPE_CHECKING:
    from spml_core.models.evaluation import CVResult
    from spml_core.models.examples import ExampleSet
    from spml_core.models.importance import PermutationImportance

NOVELTY_KEEP = 0.99
RELIABILITY_PNG = "reliability.png"
IMPORTANCE_PNG = "importance.png"


def add_trust(
    report: dict[str, Any], ex: ExampleSet, cv: CVResult, *, importance: PermutationImportance | None = None,
    keep: float = 0.95, reject: bool = True, min_examples: int = MIN_EXAMPLES, min_events: int = MIN_EVENTS,
    novelty_keep: float = NOVELTY_KEEP,
) -> dict[str, Any]:
    """Add coded warnings, calibration (with the rejection thresholds) and importances to a CV report.

    Returns the novelty model (class means and spread) for the bundle; the report keeps its summary.
    """
    t = cv.tested
    index = {c: i for i, c in enumerate(cv.classes)}
    y = np.fromiter((index[v] for v in ex.y[t]), dtype=np.int64, count=int(t.sum()))
    fold_of = cv.fold_of[t] if cv.fold_of is not None else np.zeros(y.size, dtype=np.int64)
    if y.size:
        cal = calibrate_cv(cv.proba[t], y, fold_of, keep=keep, reject=reject)
        cal.pop("crossfit_proba")
        report["calibration"] = cal
    o, base = report["overall"], report["baseline"]
    base["beats_baseline"] = bool(o["accuracy"] > base["majority_class_accuracy"]
                                  and o["balanced_accuracy"] > base["chance_balanced_accuracy"])
    report["warnings"] = dedupe([as_warning(w) for w in report.get("warnings", [])]
                                + baseline_warning(o, base) + cv_warnings(ex, cv)
                                + data_warnings(ex, min_examples, min_events))
    if importance is not None:
        report["importance"] = {"permutation": importance.report(), "native": None}
    novelty: dict[str, Any] = {}
    if reject:
        novelty = novelty_cv(ex.X, ex.y, cv.classes, cv.plan.folds, cv.tested, novelty_keep)
        report["novelty"] = {k: v for k, v in novelty.items() if k not in ("centers", "scale")}
    return novelty


def holdout_calibration(proba: np.ndarray, y_true: np.ndarray, classes: list[str],
                        temperature: float | None, threshold: float | None) -> dict[str, Any] | None:
    """ECE and Brier of a bundle's raw and calibrated probabilities on a held-out set, and its unknown share."""
    index = {c: i for i, c in enumerate(classes)}
    keep = np.asarray([v in index for v in y_true])
    if not keep.any():
        return None
    y = np.fromiter((index[v] for v in y_true[keep]), dtype=np.int64)
    raw = proba[keep]
    cal = apply_temperature(raw, temperature) if temperature else raw
    return {
        "method": "the bundle's temperature" if temperature else "none (the bundle has no calibration)",
        "temperature": temperature,
        "ece_before": expected_calibration_error(raw, y), "ece_after": expected_calibration_error(cal, y),
        "brier_before": brier_score(raw, y), "brier_after": brier_score(cal, y),
        "rejection": {"threshold": threshold,
                      "rejected_share": float((cal.max(axis=1) < (threshold or 0.0)).mean())},
    }


def holdout_baseline(overall: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """The majority-class baseline of a held-out set (its own class counts)."""
    support = [m["support"] for m in overall["per_class"].values()]
    majority = max(support) / max(sum(support), 1) if support else 0.0
    base = {"majority_class_accuracy": majority, "chance_balanced_accuracy": 1.0 / max(len(classes), 1)}
    base["beats_baseline"] = bool(overall["accuracy"] > majority and overall["balanced_accuracy"] > base["chance_balanced_accuracy"])
    return base


def trust_files(report: dict[str, Any], title: str) -> dict[str, bytes]:
    """reliability.png and importance.png, when the report has what they show."""
    files = {}
    if "reliability_before" in (report.get("calibration") or {}):
        files[RELIABILITY_PNG] = reliability_png(report["calibration"], title)
    if report.get("importance"):
        files[IMPORTANCE_PNG] = importance_png(report["importance"], title)
    return files


def trust_lines(report: dict[str, Any]) -> list[str]:
    """Terminal lines: calibration, importances, and the score against the baseline (always last)."""
    lines = []
    cal = report.get("calibration")
    if cal:
        rej = cal.get("rejection") or {}
        if cal.get("applied", True):
            line = (f"calibration: ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f}, Brier {cal['brier_before']:.3f} "
                    f"-> {cal['brier_after']:.3f}")
            if cal.get("temperature"):
                line += f" (temperature {cal['temperature']:.2f})"
        else:
            line = (f"calibration: not applied (temperature {cal['fitted_temperature']:.2f} fitted on the other folds "
                    f"gave held-out ECE {cal['ece_crossfit']:.3f} against the model's own {cal['ece_before']:.3f})")
        if rej.get("threshold"):
            line += f"; 'unknown' below {rej['threshold']:.2f} ({rej['rejected_share']:.1%} of held-out answers)"
        lines.append(line)
    perm = (report.get("importance") or {}).get("permutation") or {}
    if perm.get("features"):
        top = ", ".join(f"{f['feature']} ({f['importance']:+.3f})" for f in perm["features"][:3])
        lines.append(f"most important (held-out permutation): {top}")
    for w in report.get("warnings", []):
        w = as_warning(w)
        lines.append(f"warning [{w['code']}]: {w['message']}")
    base = report.get("baseline")
    if base and "beats_baseline" in base:
        o = report["overall"]
        verdict = "above" if base.get("beats_baseline") else "NOT above"
        how = "cross-validated" if "split" in report else "held-out"
        lines.append(f"{how} balanced accuracy {o['balanced_accuracy']:.3f} vs baseline "
                     f"{base['chance_balanced_accuracy']:.3f} (accuracy {o['accuracy']:.3f} vs "
                     f"{base['majority_class_accuracy']:.3f} always answering the majority class): {verdict} baseline")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m spml_core.models.trust METRICS_JSON``: the warnings and the score against the baseline."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m spml_core.models.trust", description=main.__doc__)
    parser.add_argument("metrics", type=Path, help="metrics.json written by spml train or spml evaluate")
    parser.add_argument("--fail-below-baseline", action="store_true", help="exit 1 unless the model beats its baseline")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"spml: error: {args.metrics}: cannot read metrics ({exc})", file=sys.stderr)
        return 1
    lines = [line for line in trust_lines(report) if not line.startswith(("calibration:", "most important"))]
    print("\n".join(lines))
    return 1 if args.fail_below_baseline and not (report.get("baseline") or {}).get("beats_baseline") else 0


if __name__ == "__main__":
    raise SystemExit(main())
