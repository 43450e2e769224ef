"""`spml train`: dataset -> cross-validated metrics -> final model -> a safe model bundle.

The dataset's frames go through one feature-pipeline spec (stored in the bundle, so live
prediction computes exactly the same features); the model is cross-validated by group (video, or
subject) or by blocked time for a single video; then a final model is fitted on every labelled
example and written with its metrics and plots. ``--search`` picks options from the model's small
search space by nested grouped CV: each outer fold chooses its options from its own training rows.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core import __version__
from spml_core.errors import SpmlError
from spml_core.features.timegrid import FALLBACK_FPS, GateConfig, Timing
from spml_core.datasets.pose_info import bundle_pose, read_dataset_pose
from spml_core.keypoints.sequence import file_sha256
from spml_core.models.bundle import (
    Features,
    Manifest,
    ModelInfo,
    TrainingData,
    check_bundle_target,
    component_distribution,
    now_iso,
    write_bundle,
)
from spml_core.models.bundle import zip_bundle as make_zip
from spml_core.models.evaluation import (
    _stride,
    cross_validate,
    evaluation_report,
    report_files,
    summary_lines,
)
from spml_core.models.examples import DEFAULT_WINDOW, default_spec, load_examples
from spml_core.models.metrics import classification_metrics
from spml_core.models.augment import AugmentSettings, augmented_rows
from spml_core.models.bundle import Calibration
from spml_core.models.importance import PermutationImportance, native_importance
from spml_core.models.splits import SplitKind, plan_splits
from spml_core.models.quality import MIN_EVENTS, MIN_EXAMPLES, warning
from spml_core.models.trust import add_trust
from spml_core.registry import Registry, validate_options

if TYPE_CHECKING:
    from spml_core.features.spec import FeaturePipelineSpec
    from spml_core.models.examples import ExampleSet

INNER_FOLDS = 3


@dataclass
class TrainResult:
    """What `spml train` produced."""

    bundle: Path
    report: dict[str, Any]
    options: dict[str, Any]
    zip_path: Path | None = None


def candidate_options(cls: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the model's search space, on top of the user's options."""
    space = dict(getattr(cls, "search_space", {}) or {})
    if not space:
        raise SpmlError(f"model '{cls.name}' declares no search space; train without --search")
    keys = list(space)
    return [{**base, **dict(zip(keys, combo))} for combo in itertools.product(*(space[k] for k in keys))]


def select_options(
    ex: ExampleSet, rows: np.ndarray, model_name: str, candidates: list[dict[str, Any]], split: str,
    registry: Any, n_splits: int = INNER_FOLDS, seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The candidate with the best macro-F1 (then balanced accuracy) by grouped CV over ``rows`` only."""

    sub = _subset(ex, rows)
    kind = split if split != "auto" else ("group" if np.unique(sub.groups).size >= 2 else "blocked")
    if kind == "group" and np.unique(sub.groups).size < 2:
        kind = "blocked"
    plan = plan_splits(kind, groups=sub.groups, group_column=sub.group_column, sequences=sub.video,  # type: ignore[arg-type]
                       start=sub.start, end=sub.end, window=sub.window, n_splits=n_splits, seed=seed)
    table = []
    for opts in candidates:
        cv = cross_validate(sub, model_name, opts, plan, registry, show_progress=False)
        m = classification_metrics(sub.y[cv.tested], cv.pred[cv.tested], cv.classes)
        table.append({"options": opts, "macro_f1": m["macro_f1"], "balanced_accuracy": m["balanced_accuracy"]})
    best = max(range(len(table)), key=lambda i: (table[i]["macro_f1"], table[i]["balanced_accuracy"], -i))
    return table[best]["options"], table


def _subset(ex: ExampleSet, rows: np.ndarray) -> ExampleSet:
    from dataclasses import replace

    return replace(ex, X=ex.X[rows], y=ex.y[rows], video=ex.video[rows], groups=ex.groups[rows],
                   start=ex.start[rows], end=ex.end[rows])


def train(
    dataset: str | os.PathLike[str],
    target: str,
    out: str | os.PathLike[str],
    model: str = "xgboost",
    options: dict[str, Any] | None = None,
    *,
    spec: FeaturePipelineSpec | None = None,
    features: list[str] | None = None,
    window: int | None = None,
    stride: int = 1,
    pool: list[str] | None = None,
    split: SplitKind = "auto",
    n_splits: int = 5,
    search: bool = False,
    seed: int = 0,
    zip_bundle: bool = False,
    notes: str = "",
    quiet: bool = False,
    registry: Any = None,
    background: str | None = None,
    reject_keep: float | None = 0.95,
    augment: AugmentSettings | None = None,
    fail_on_warning: bool = False,
    min_examples: int = MIN_EXAMPLES,
    min_events: int = MIN_EVENTS,
    gate: GateConfig | None = None,
) -> TrainResult:
    """Cross-validate, fit the final model on all labelled examples, and write the bundle to ``out``."""

    dataset = Path(dataset)
    out = Path(out)
    registry = registry or Registry().load()
    cls = registry.get("model", model)
    opts = validate_options(cls, dict(options or {}), f"--model {model} options").model_dump(mode="json")
    if "seed" in cls.Options.model_fields and "seed" not in (options or {}):
        opts["seed"] = seed
    if not dataset.is_file():
        raise SpmlError(f"{dataset}: dataset not found")
    check_bundle_target(out)
    if zip_bundle and Path(out).suffix.lower() == ".zip":
        # The zip goes beside the folder as <out>.zip: a folder named X.zip would collide with its own zip.
        raise SpmlError(f"{out}: with --zip, --out is the bundle folder and the zip is written beside it; "
                        f"use --out {Path(out).with_suffix('')} to get {out}")
    if spec is None:
        spec = default_spec(target, features, window or DEFAULT_WINDOW, stride, pool)
    elif features or window or pool:
        raise SpmlError("give either a feature spec or --features/--window/--pool, not both")
    rank = int(getattr(cls, "input_rank", 2))
    if rank == 3 and (pool or spec.segmentation.options.get("pool")):
        raise SpmlError(f"model '{model}' reads sequences of frames; --pool makes summary rows (drop --pool)")

    if reject_keep is not None and not 0 < reject_keep <= 1:
        raise SpmlError(f"--reject-keep must be in (0, 1], got {reject_keep}")
    gate = gate or GateConfig()
    ex = load_examples(dataset, target, spec, registry=registry, quiet=quiet, background=background, gate=gate)
    if len(ex.classes) < 2:
        raise SpmlError(f"{dataset}: '{target}' has a single label ({ex.classes[0]}) in the examples; "
                        "a classifier needs two or more")
    if rank == 3:
        ex.model_input(3, np.arange(min(1, len(ex))))  # fails early with a clear message for pooled rows
    for note in ex.notes:
        _say(quiet, f"note: {note}")
    plan = plan_splits(split, groups=ex.groups, group_column=ex.group_column, sequences=ex.video,
                       start=ex.start, end=ex.end, window=ex.window, n_splits=n_splits, seed=seed)
    _say(quiet, f"{len(ex)} examples of '{target}' ({', '.join(f'{k}: {v}' for k, v in ex.class_counts().items())}) "
                f"from {np.unique(ex.video).size} video(s); {plan.note}")
    for w in plan.warnings:
        print(f"spml train: warning: {w}", file=sys.stderr)
    pose, pose_warnings = bundle_pose(read_dataset_pose(dataset))
    for w in pose_warnings:
        print(f"spml train: warning: {w}", file=sys.stderr)

    extra = augmented_rows(dataset, ex, augment, registry, quiet) if augment and augment.active else None
    if extra is not None:
        _say(quiet, f"augmentation: {extra.describe()} (training folds only)")
    perm = PermutationImportance(ex.columns, seed)
    search_info: dict[str, Any] | None = None
    if search:
        candidates = candidate_options(cls, opts)
        _say(quiet, f"--search: {len(candidates)} candidates, nested grouped CV ({INNER_FOLDS} inner folds)")

        def choose(rows: np.ndarray) -> dict[str, Any]:
            return select_options(ex, rows, model, candidates, split, registry, seed=seed)[0]

        cv = cross_validate(ex, model, opts, plan, registry, show_progress=not quiet,
                            desc="nested search", choose_options=choose, on_model=perm, extra=extra)
        final_opts, table = select_options(ex, np.arange(len(ex)), model, candidates, split, registry,
                                           n_splits=n_splits, seed=seed)
        search_info = {"candidates": table, "chosen": final_opts,
                       "note": "outer scores come from options chosen on each outer fold's training rows only"}
    else:
        cv = cross_validate(ex, model, opts, plan, registry, show_progress=not quiet, on_model=perm, extra=extra)
        final_opts = opts

    distribution, version = component_distribution(registry, model)
    digest = file_sha256(dataset)
    context = {"target": target, "model": model, "options": final_opts,
               "dataset": {"file": str(dataset), "sha256": digest}}
    report = evaluation_report(ex, cv, **context)
    report["warnings"].extend(warning("pose_estimator", w) for w in pose_warnings)
    if search_info:
        report["search"] = search_info
    novelty = add_trust(report, ex, cv, importance=perm, keep=reject_keep or 0.95, reject=reject_keep is not None,
                        min_examples=min_examples, min_events=min_events)
    report["cv_settings"] = {"split": split, "folds": n_splits, "seed": seed, "kind": plan.kind,
                             "n_folds": len(plan.folds), "reject_keep": reject_keep}

    _say(quiet, "fitting the final model on all labelled examples")
    final = registry.create("model", model, final_opts)
    final.show_progress = not quiet
    X_all, y_all, g_all = ex.X, ex.y, ex.groups
    if extra is not None:
        X_all, y_all, g_all = extra.training_rows(np.arange(len(ex)), X_all, y_all, g_all)
    final.fit(ex.shape_input(rank, X_all), y_all, groups=g_all)
    report["importance"]["native"] = native_importance(final, ex.columns, ex.window)
    cal = report.get("calibration") or {}

    spec_dump = ex.spec.model_dump(mode="json") if ex.spec is not None else None
    manifest = Manifest(
        schema_version=1, created_at=now_iso(), spml_version=__version__, target=target,
        classes=list(final.classes_),
        model=ModelInfo(component=model, distribution=distribution, version=version, options=final_opts,
                        files=[], input_rank=rank, training=final.training_summary()),
        features=Features(kind="pipeline", spec=spec_dump, columns=ex.columns, window=ex.window,
                          frame_features=ex.frame_features, frame_size=ex.frame_size,
                          timing=training_timing(ex.fps, ex.window, ex.grid_fps), gate=gate, pose=pose),
        training_data=TrainingData(file=dataset.name, sha256=digest, rows=ex.rows_in_file, examples=len(ex),
                                   groups=int(np.unique(ex.groups).size), group_column=ex.group_column,
                                   class_counts=ex.class_counts()),
        metrics=_headline(report),
        notes=notes,
        calibration=Calibration(temperature=cal.get("temperature", 1.0),
                                reject_below=(cal.get("rejection") or {}).get("threshold") or 0.0,
                                keep_correct=reject_keep, background=background,
                                novelty_threshold=novelty.get("threshold"), centers=novelty.get("centers"),
                                scale=novelty.get("scale")) if cal else None,
        augmentation=extra.manifest() if extra is not None else None,
    )
    title = f"{target}: {model}, {report['split']['kind']} CV"
    files = report_files(ex, report, cv.pred, cv.classes, title, _stride(ex.spec))
    write_bundle(out, manifest, final, extra_files=files)
    zip_path = make_zip(out) if zip_bundle else None
    if not quiet:
        for line in summary_lines(report):
            print(line)
        print(f"spml train: bundle -> {out}" + (f" (and {zip_path})" if zip_path else ""), file=sys.stderr)
    if fail_on_warning and report["warnings"]:
        raise SpmlError(f"{len(report['warnings'])} quality warning(s) and --fail-on-warning (the bundle was "
                        f"written to {out}): " + "; ".join(w["code"] for w in report["warnings"]))
    return TrainResult(out, report, final_opts, zip_path)


def training_timing(per_video: dict[str, float], window: int | None, grid: float | None = None) -> Timing:
    """The bundle's time grid: the rate the training videos were resampled to (the rate of most frames)."""
    rates = [r for r in per_video.values() if np.isfinite(r) and r > 0]
    if not rates:
        return Timing.at(FALLBACK_FPS, window, source="fallback")
    fps = grid if grid else float(np.median(rates))
    return Timing.at(round(fps, 3), window, per_video={k: round(v, 3) for k, v in per_video.items()})


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    """The metrics kept in the manifest (metrics.json beside it holds everything)."""
    o = report["overall"]
    return {
        "evaluation": report["evaluation"], "split": report["split"]["note"],
        "balanced_accuracy": o["balanced_accuracy"], "macro_f1": o["macro_f1"], "accuracy": o["accuracy"],
        "per_class_f1": {c: m["f1"] for c, m in o["per_class"].items()},
        "fold_balanced_accuracy": report["fold_summary"]["balanced_accuracy"],
        "n_examples": report["examples"]["n"],
        "baseline": report["baseline"],
        "warnings": report["warnings"],
        "cv_settings": report["cv_settings"],
        "ece": {k: (report.get("calibration") or {}).get(k) for k in ("ece_before", "ece_after")},
    }


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"spml train: {msg}", file=sys.stderr)
