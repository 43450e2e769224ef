"""Driving `spml predict` over many inputs: one bundle check, jobs on an executor, progress, summary.json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError
from spml_core.execution import DEFAULT_RETRIES, create_executor, map_with_retries
from spml_core.keypoints.extract import check_output_dir
from spml_core.models.exports import check_export_formats
from spml_core.models.predict_files import (
    PredictJob,
    PredictResult,
    bundle_fingerprint,
    find_inputs,
    remember_bundle,
    run_predict_job,
)
from spml_core.models.predictor import load_bundle
from spml_core.registry import Registry, validate_options
from spml_core.util.atomic import write_text_atomic
from spml_core.util.progress import progress_bar


def estimator_of(predictor: Any, estimator: str | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The pose estimator for videos: the one given, else the bundle's recorded one, else mediapipe."""
    pose = getattr(predictor.manifest.features, "pose", None) or {}
    name = estimator or pose.get("name") or "mediapipe"
    if estimator or options:
        return name, dict(options or {})
    opts = dict(pose.get("options") or {})
    if pose.get("model") and "model" not in opts:  # recorded beside the options by some bundles
        opts["model"] = pose["model"]
    return name, opts


def run_predict(
    inputs: list[Path], bundle: Path, out_dir: Path, *, csv: bool = False, exports: list[str] | None = None,
    estimator: str | None = None, estimator_options: dict[str, Any] | None = None,
    decide: Callable[[Any], Any] | None = None, decide_key: str = "", executor: str = "local",
    executor_options: dict[str, Any] | None = None, retries: int | None = None, force: bool = False,
    timeline: bool = True, quiet: bool = False, registry: Any = None,
) -> list[PredictResult]:
    """Classify every frame of each input; resumable (current outputs are skipped) and parallel."""
    exports = check_export_formats(exports or [])
    registry = registry or Registry().load()
    predictor = load_bundle(bundle, registry)
    predictor._require_spec()  # a preformatted bundle cannot compute features: say so before any work
    found = find_inputs([Path(p) for p in inputs])
    check_output_dir(Path(out_dir))
    est, est_opts = estimator_of(predictor, estimator, estimator_options)
    if any(kind == "video" for _, _, kind in found):
        cls = registry.get("pose_estimator", est)
        est_opts = validate_options(cls, est_opts, f"{est} options").model_dump(mode="json")
    fp = bundle_fingerprint(predictor)
    remember_bundle(Path(bundle), fp, predictor)  # in-process runs (one worker) load it once
    jobs = [PredictJob(src, stem, kind, Path(out_dir), Path(bundle), fp, csv, tuple(exports), est, est_opts,
                       decide, decide_key, force, timeline) for src, stem, kind in found]
    ex = create_executor(registry, executor, executor_options or {})
    results: list[PredictResult] = []
    retries = DEFAULT_RETRIES if retries is None else retries
    with progress_bar(total=len(jobs), unit="file", desc="predict", disable=quiet) as bar:
        for job, result, attempt, final in map_with_retries(
            ex, run_predict_job, jobs, retries=retries,
            is_failure=lambda r: isinstance(r, BaseException) or r.status == "failed",
        ):
            if isinstance(result, BaseException):
                result = PredictResult(job.source, job.stem, "failed", message=f"{type(result).__name__}: {result}")
            if final:
                results.append(result)
                bar.update(1)
                if not quiet:
                    bar.write(describe(result))
    order = {j.stem: i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r.stem])
    _write_summary(Path(out_dir), predictor, results)
    if not quiet:
        failed = sum(r.status == "failed" for r in results)
        done = sum(r.status == "written" for r in results)
        print(f"spml predict: {done} written, {len(results) - done - failed} up to date, {failed} failed "
              f"-> {out_dir}", file=sys.stderr)
    return results


def describe(r: PredictResult) -> str:
    """One line per input for the console."""
    if r.status == "failed":
        return f"{r.source}: FAILED: {r.message}"
    counts = ", ".join(f"{c} {s['bouts']} bouts" for c, s in r.summary.items())
    if r.status == "skipped":
        return f"{r.source}: up to date ({counts})"
    fps = r.frames / r.seconds if r.seconds else 0.0
    return f"{r.source}: {r.frames} frames, {fps:.0f} frames/s; {counts}"


def _write_summary(out_dir: Path, predictor: Any, results: list[PredictResult]) -> None:
    data = {"bundle": str(predictor.source), "target": predictor.target, "classes": predictor.classes,
            "inputs": [{"source": str(r.source), "stem": r.stem, "status": r.status, "frames": r.frames,
                        "message": r.message, "bouts": r.summary} for r in results]}
    totals: dict[str, dict[str, float]] = {c: {"bouts": 0, "frames": 0, "seconds": 0.0} for c in predictor.classes}
    for r in results:
        for c, s in r.summary.items():
            for k in totals[c]:
                totals[c][k] += s[k]
    data["totals"] = totals
    write_text_atomic(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")


def require_inputs(inputs: list[Path]) -> None:
    """At least one input path."""
    if not inputs:
        raise SpmlError("spml predict: give at least one video, keypoint file or folder")
