"""Evaluation: cross-validation, held-out reports, metrics.json and the plots beside it (docs/models.md)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.models.metrics import classification_metrics, onset_latency
from spml_core.models.splits import SplitPlan, plan_splits

if TYPE_CHECKING:
    from spml_core.models.examples import ExampleSet
from spml_core.keypoints.sequence import file_sha256
from spml_core.models.examples import ExampleSet, load_examples, read_table
from spml_core.models.augment import AugmentSettings, augmented_rows
from spml_core.models.importance import PermutationImportance
from spml_core.models.plots import confusion_png, timeline_png
from spml_core.models.quality import as_warning, baseline_warning, folds_warning
from spml_core.models.trust import add_trust, holdout_baseline, holdout_calibration, trust_files, trust_lines
from spml_core.models.predictor import load_bundle
from spml_core.registry import Registry
from spml_core.util.atomic import write_bytes_atomic
from spml_core.util.progress import progress_bar

CONFUSION_PNG = "confusion_matrix.png"


TIMELINE_PNG = "timeline.png"


METRICS_JSON = "metrics.json"




@dataclass
class CVResult:
    """Out-of-fold predictions of one cross-validation and what happened in each fold."""

    plan: SplitPlan
    classes: list[str]
    pred: np.ndarray
    proba: np.ndarray
    tested: np.ndarray
    folds: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    fold_of: np.ndarray | None = None  # the fold that tested each row (-1: untested)


def _place_proba(proba: np.ndarray, model_classes: list[str], classes: list[str]) -> np.ndarray:
    """Columns of a fold model's probabilities moved into the global class order (absent classes: 0)."""
    out = np.zeros((proba.shape[0], len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model_classes):
        out[:, index[c]] = proba[:, j]
    return out


def fit_predict(
    ex: ExampleSet, model_name: str, options: dict[str, Any], train: np.ndarray, test: np.ndarray,
    classes: list[str], registry: Any, on_model: Any = None, extra: Any = None,
) -> tuple[np.ndarray, str | None]:
    """Fit a fresh model on ``train`` rows, return probabilities for ``test`` rows (global class order).

    A training part holding a single class cannot train a classifier; its test rows then get that
    class (what any model trained on it would say), with a note, instead of a crash.
    """
    train_classes = sorted(set(ex.y[train].tolist()))
    if len(train_classes) < 2:
        proba = np.zeros((test.size, len(classes)))
        if train_classes:
            proba[:, classes.index(train_classes[0])] = 1.0
        return proba, f"training part holds only {train_classes or 'no'} class(es): predicted it for every test row"
    model = registry.create("model", model_name, options)
    model.show_progress = False
    rank = getattr(model, "input_rank", 2)
    X, y, groups = ex.X[train], ex.y[train], ex.groups[train]
    if extra is not None:  # augmented copies of the training rows only (augment.py)
        X, y, groups = extra.training_rows(train, X, y, groups)
    model.fit(ex.shape_input(rank, X), y, groups=groups)
    if on_model is not None:
        on_model(lambda rows: _place_proba(model.predict_proba(ex.shape_input(rank, rows)), list(model.classes_),
                                           classes), ex.X[test], ex.y[test], classes)
    return _place_proba(model.predict_proba(ex.model_input(rank, test)), list(model.classes_), classes), None


def cross_validate(
    ex: ExampleSet, model_name: str, options: dict[str, Any], plan: SplitPlan, registry: Any,
    *, show_progress: bool = True, desc: str = "cross-validation",
    choose_options: Any = None, on_model: Any = None, extra: Any = None,
) -> CVResult:
    """Fit one model per fold and collect out-of-fold predictions and per-fold metrics.

    ``choose_options(train_rows) -> options`` (nested search) picks each fold's options from its
    training rows only, so the outer test rows never influence the choice.
    """

    classes = ex.classes
    n = len(ex)
    proba = np.zeros((n, len(classes)))
    tested = np.zeros(n, dtype=bool)
    fold_of = np.full(n, -1, dtype=np.int64)
    folds: list[dict[str, Any]] = []
    warnings = list(plan.warnings)
    with progress_bar(len(plan.folds), desc=desc, unit="fold", disable=not show_progress) as bar:
        for i, fold in enumerate(plan.folds):
            if fold.train.size == 0:
                warnings.append(f"fold {i + 1}: no training rows left after the purge gap; skipped")
                bar.update(1)
                continue
            opts = choose_options(fold.train) if choose_options else options
            p, note = fit_predict(ex, model_name, opts, fold.train, fold.test, classes, registry, on_model, extra)
            proba[fold.test] = p
            tested[fold.test] = True
            fold_of[fold.test] = i
            y_pred = np.asarray(classes, dtype=object)[p.argmax(axis=1)]
            m = classification_metrics(ex.y[fold.test], y_pred, classes)
            info = {
                "fold": i + 1, "n_train": int(fold.train.size), "n_test": int(fold.test.size),
                "purged": int(fold.purged),
                "test_groups": sorted({str(g) for g in ex.groups[fold.test]})[:20],
                "test_frames": _frame_span(ex, fold.test),
                "classes_in_test": sorted(set(ex.y[fold.test].tolist())),
                "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
            }
            if choose_options:
                info["options"] = opts
            if len(info["classes_in_test"]) < 2:
                info["note"] = "test fold holds a single class: balanced accuracy is that class's recall"
            if note:
                info["note"] = note
                warnings.append(f"fold {i + 1}: {note}")
            folds.append(info)
            bar.update(1)
    pred = np.full(n, None, dtype=object)
    pred[tested] = np.asarray(classes, dtype=object)[proba[tested].argmax(axis=1)]
    return CVResult(plan, classes, pred, proba, tested, folds, warnings, dict(options), fold_of)


def _frame_span(ex: ExampleSet, rows: np.ndarray) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for v in np.unique(ex.video[rows]):
        sel = rows[ex.video[rows] == v]
        out[str(v)] = [int(ex.start[sel].min()), int(ex.end[sel].max())]
    return dict(list(out.items())[:20])


def _spread(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()), "max": float(arr.max())}


def evaluation_report(ex: ExampleSet, cv: CVResult, **context: Any) -> dict[str, Any]:
    """metrics.json content: pooled out-of-fold metrics, per-fold spread, onset latency, split note."""
    t = cv.tested
    overall = classification_metrics(ex.y[t], cv.pred[t], cv.classes)
    counts = ex.class_counts()
    majority = max(counts.values()) / max(len(ex), 1)
    predictions = {}
    for v in np.unique(ex.video[t]):
        sel = t & (ex.video == v)
        predictions[str(v)] = (ex.end[sel], cv.pred[sel])
    latency = onset_latency(ex.frame_labels, predictions, ex.fps)
    report: dict[str, Any] = {
        **context,
        "evaluation": "cross-validation (out-of-fold predictions)",
        "split": cv.plan.describe(),
        "examples": {"n": len(ex), "evaluated": int(t.sum()), "class_counts": counts,
                     "videos": int(np.unique(ex.video).size), "group_column": ex.group_column,
                     "groups": int(np.unique(ex.groups).size), "window": ex.window},
        "overall": overall,
        "folds": cv.folds,
        "fold_summary": {k: _spread([f[k] for f in cv.folds]) for k in ("balanced_accuracy", "macro_f1", "accuracy")},
        "baseline": {"majority_class_accuracy": majority, "chance_balanced_accuracy": 1.0 / max(len(cv.classes), 1)},
        "onset_latency": latency["per_class"],
        "onset_events": latency["events"][:500],
        "warnings": cv.warnings,
        "notes": ex.notes,
    }
    return report


def holdout_report(ex: ExampleSet, proba: np.ndarray, classes: list[str], **context: Any) -> dict[str, Any]:
    """metrics.json content for a fitted model scored on a separate dataset."""
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    unknown = sorted(set(ex.y.tolist()) - set(classes))
    keep = np.isin(ex.y, classes)
    warnings = []
    if unknown:
        warnings.append(f"labels {unknown} are not classes of the model; their {int((~keep).sum())} examples were left out")
    predictions = {str(v): (ex.end[ex.video == v], pred[ex.video == v]) for v in np.unique(ex.video)}
    latency = onset_latency(ex.frame_labels, predictions, ex.fps)
    return {
        **context,
        "evaluation": "held-out dataset (predictions of the bundle's fitted model)",
        "examples": {"n": len(ex), "evaluated": int(keep.sum()), "class_counts": ex.class_counts(),
                     "videos": int(np.unique(ex.video).size), "window": ex.window},
        "overall": classification_metrics(ex.y[keep], pred[keep], classes),
        "onset_latency": latency["per_class"],
        "onset_events": latency["events"][:500],
        "warnings": warnings,
        "notes": ex.notes,
    }, pred


def report_files(ex: ExampleSet, report: dict[str, Any], pred: np.ndarray, classes: list[str], title: str,
                 stride: int = 1) -> dict[str, bytes]:
    """metrics.json, confusion_matrix.png, timeline.png (and reliability/importance PNGs) as bytes, ready to write."""
    return {
        METRICS_JSON: (json.dumps(report, indent=2, default=_json_default) + "\n").encode(),
        CONFUSION_PNG: confusion_png(report["overall"], title),
        TIMELINE_PNG: timeline_png(ex, pred, classes, title, stride),
        **trust_files(report, title),
    }


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the terminal: split, headline metrics, per-class F1, latency."""
    o = report["overall"]
    lines = []
    if "split" in report:
        lines.append(f"split: {report['split']['note']}")
    fs = report.get("fold_summary", {}).get("balanced_accuracy", {})
    spread = f" (folds {fs['mean']:.3f} +/- {fs['std']:.3f})" if fs.get("mean") is not None else ""
    lines.append(f"balanced accuracy {o['balanced_accuracy']:.3f}{spread}, macro-F1 {o['macro_f1']:.3f}, "
                 f"accuracy {o['accuracy']:.3f} on {o['n']} examples")
    for c, m in o["per_class"].items():
        lat = report.get("onset_latency", {}).get(c)
        extra = ""
        if lat and lat.get("median_frames") is not None:
            extra = f", onset latency median {lat['median_frames']:.0f} frames ({lat['detected']}/{lat['events']} events)"
        elif lat:
            extra = f", no annotated event recognised (0/{lat['events']})"
        lines.append(f"  {c}: precision {m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f} "
                     f"(n={m['support']}){extra}")
    return lines + trust_lines(report)


# -- spml evaluate --------------------------------------------------------------------------
def default_eval_dir(bundle: Path, dataset: Path) -> Path:
    """Where `spml evaluate` writes: BUNDLE/eval-<dataset stem>/ (beside a zip for zipped bundles)."""
    stem = Path(dataset).name.split(".")[0]
    if bundle.is_dir():
        return bundle / f"eval-{stem}"
    return bundle.with_name(f"{bundle.stem}-eval-{stem}")


def evaluate_bundle(
    bundle: str | os.PathLike[str], dataset: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
    *, mode: str = "auto", split: str | None = None, n_splits: int | None = None, quiet: bool = False,
    registry: Any = None, fail_on_warning: bool = False,
) -> dict[str, Any]:
    """Score a bundle on a dataset and write metrics.json + plots; returns the report.

    mode ``auto``: cross-validate the bundle's recipe when the dataset is its training data (same
    sha256), else predict with the fitted model (``holdout``); ``cv`` / ``holdout`` force one.
    """

    bundle, dataset = Path(bundle), Path(dataset)
    registry = registry or Registry().load()
    predictor = load_bundle(bundle, registry)
    m = predictor.manifest
    if not dataset.is_file():
        raise SpmlError(f"{dataset}: dataset not found")
    digest = file_sha256(dataset)
    same = m.training_data is not None and m.training_data.sha256 == digest
    if mode == "auto":
        mode = "cv" if same else "holdout"
        if same and not quiet:
            print("spml evaluate: this dataset is the bundle's training data (same sha256): scoring the fitted "
                  "model on it would only measure memory, so the bundle's recipe is cross-validated instead",
                  file=sys.stderr)
    warnings = []
    if mode == "holdout" and same:
        warnings.append("holdout evaluation on the bundle's own training data: these scores are optimistic")
    spec = predictor.spec
    if spec is None:
        ex = _preformatted_examples(dataset, m)
    else:
        background = m.calibration.background if m.calibration is not None else None
        ex = load_examples(dataset, m.target, spec, registry=registry, quiet=quiet,
                           background=background)
    context = {"target": m.target, "model": m.model.component, "options": m.model.options,
               "bundle": str(bundle), "dataset": {"file": str(dataset), "sha256": digest},
               "same_as_training_data": same}
    title = f"{m.target}: {m.model.component} on {dataset.name}"
    stride = _stride(spec)
    if mode == "cv":
        # The folds training used, unless told otherwise: only then are the two reports comparable.
        recorded = m.metrics.get("cv_settings") or {}
        plan = plan_splits(split or recorded.get("split", "auto"), groups=ex.groups, group_column=ex.group_column,
                           sequences=ex.video, start=ex.start, end=ex.end, window=ex.window,
                           n_splits=n_splits or recorded.get("folds", 5), seed=recorded.get("seed", 0))
        perm = PermutationImportance(ex.columns, recorded.get("seed", 0))
        aug = m.augmentation
        extra = augmented_rows(dataset, ex, AugmentSettings(aug.mirror, list(aug.time_warp), aug.jitter,
                                                            recorded.get("seed", 0)), registry) if aug else None
        cv = cross_validate(ex, m.model.component, m.model.options, plan, registry, show_progress=not quiet,
                            on_model=perm, extra=extra)
        report = evaluation_report(ex, cv, **context)
        add_trust(report, ex, cv, importance=perm, keep=recorded.get("reject_keep") or 0.95)
        trained = {"kind": recorded.get("kind"), "n_folds": recorded.get("n_folds")} if recorded else None
        report["warnings"] += folds_warning(trained, plan.kind, len(plan.folds))
        pred = cv.pred
    elif mode == "holdout":
        proba = predictor.predict_rows(ex.X)
        report, pred = holdout_report(ex, proba, predictor.classes, **context)
        report["calibration"] = holdout_calibration(proba, ex.y, predictor.classes, predictor.temperature,
                                                    predictor.threshold)
        report["baseline"] = holdout_baseline(report["overall"], predictor.classes)
        report["warnings"] = report.get("warnings", []) + baseline_warning(report["overall"], report["baseline"])
    else:
        raise SpmlError(f"unknown evaluation mode {mode!r}: use auto, cv or holdout")
    report["warnings"] = [as_warning(w) for w in warnings + report.get("warnings", [])]
    out_dir = Path(out) if out else default_eval_dir(bundle, dataset)
    classes = predictor.classes if mode == "holdout" else cv.classes
    for name, data in report_files(ex, report, pred, classes, title, stride).items():
        write_bytes_atomic(out_dir / name, data)
    report["written_to"] = str(out_dir)
    if not quiet:
        for line in summary_lines(report):
            print(line)
        print(f"spml evaluate: metrics.json, {CONFUSION_PNG}, {TIMELINE_PNG} -> {out_dir}", file=sys.stderr)
    if fail_on_warning and report["warnings"]:
        raise SpmlError(f"{len(report['warnings'])} quality warning(s) and --fail-on-warning: "
                        + "; ".join(w["code"] for w in report["warnings"]))
    return report


def _stride(spec: Any) -> int:
    if spec is None:
        return 1
    opts = spec.segmentation.options
    return int(opts.get("stride") or opts.get("segmentation_window") or 1) if spec.layout != "frame" else 1


def _preformatted_examples(dataset: Path, manifest: Any) -> ExampleSet:
    """Examples of a bundle trained on preformatted columns (seed CSV): the same columns, read as is."""

    df = read_table(dataset)
    cols = manifest.features.columns
    missing = [c for c in [manifest.target, *cols] if c not in df.columns]
    if missing:
        raise SpmlError(f"{dataset}: lacks columns the bundle was trained on, e.g. {missing[:3]}")
    df = df[df[manifest.target].notna()].reset_index(drop=True)
    video = (df["video_id"] if "video_id" in df.columns else df["video"] if "video" in df.columns
             else np.full(len(df), dataset.stem)).astype(str).to_numpy(dtype=object)
    frame = (df["frame_number"] if "frame_number" in df.columns else np.arange(len(df)))
    frame = np.asarray(frame, dtype=np.int64)
    y = df[manifest.target].astype(str).to_numpy(dtype=object)
    return ExampleSet(
        X=df[cols].to_numpy(np.float32), y=y, video=video, groups=video, group_column="video",
        start=frame, end=frame, spec=None, columns=list(cols), window=manifest.features.window or 1,
        frame_features=manifest.features.frame_features, frame_size=None,
        frame_labels={str(v): (frame[video == v], y[video == v]) for v in np.unique(video)},
    )
