"""Extracting keypoints from many videos: resumable, on an executor, with retries and progress."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spml_core.execution import DEFAULT_RETRIES, create_executor, map_with_retries
from spml_core.keypoints.extract import (
    ExtractResult,
    check_output_dir,
    find_videos,
    plan_jobs,
    run_job,
)
from spml_core.keypoints.resume import result_record, resume_plan, running_records
from spml_core.keypoints.runlog import RunLog
from spml_core.keypoints.sequence import file_sha256
from spml_core.registry import Registry, print_load_errors, validate_options
from spml_core.util.progress import progress_bar


def run_extract(
    videos: Path | list[Path],
    out_dir: Path,
    estimator: str = "mediapipe",
    options: dict[str, Any] | None = None,
    *,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    formats: tuple[str, ...] = ("parquet",),
    json_summary: bool = False,
    registry: Any = None,
    quiet: bool = False,
    retries: int | None = None,
) -> list[ExtractResult]:
    """Extract keypoints of every video (a file, a folder or a list) into `out_dir`, skipping up-to-date ones.

    Resumable: `<out_dir>/.spml-run.jsonl` records every video's inputs and output, so a re-run
    (after a crash, Ctrl-C or SIGKILL) redoes only missing, failed or stale outputs. A failing
    video is retried `retries` times (default 1) while the others go on.
    """

    registry = registry or Registry().load()
    print_load_errors(registry)
    est_cls = registry.get("pose_estimator", estimator)
    # Canonical options (defaults filled in) so that skip checks compare like with like.
    opts = validate_options(est_cls, options or {}, f"{estimator} options").model_dump(mode="json")
    ex = create_executor(registry, executor, executor_options or {})
    video_list = [Path(v) for v in videos] if isinstance(videos, list) else find_videos(Path(videos))
    check_output_dir(Path(out_dir))
    jobs = plan_jobs(video_list, Path(out_dir), estimator, opts, formats)

    results: list[ExtractResult] = []
    hashed = []
    for job in jobs:
        try:
            job.sha256 = file_sha256(job.video)
        except OSError as exc:
            results.append(ExtractResult(job.video, job.out, "failed", message=f"cannot read: {exc.strerror}"))
            continue
        hashed.append(job)
    with RunLog.open(Path(out_dir)) as runlog:
        if runlog.removed_parts and not quiet:
            print(f"spml extract: removed {len(runlog.removed_parts)} partial file(s) of an interrupted run",
                  file=sys.stderr)
        skipped, todo = resume_plan(runlog, hashed)
        results += skipped
        results += _extract_with_retries(
            ex, todo, runlog, DEFAULT_RETRIES if retries is None else retries, quiet
        )
    for r in results:
        if r.status == "skipped" and not quiet:
            print(_describe(r))
    failed = [r for r in results if r.status == "failed"]
    if failed and not quiet:  # repeated here, next to the summary, so they are not lost in the scroll
        print("failed videos:", *(_describe(r) for r in failed), sep="\n", file=sys.stderr)
    if json_summary:
        print(json.dumps([_as_json(r) for r in results], indent=2))
    if not quiet:
        done = sum(r.status == "written" for r in results)
        skipped = sum(r.status == "skipped" for r in results)
        print(f"spml extract: {done} written, {skipped} up to date, {len(failed)} failed -> {out_dir}",
              file=sys.stderr)
    return results


def _extract_with_retries(
    ex: Any, todo: list[Any], runlog: Any, retries: int, quiet: bool
) -> list[ExtractResult]:
    """Run jobs on the executor, recording each start and end in the runlog; one bar for all workers."""

    frames = {j.out: _frame_count(j.video) for j in todo}
    results: list[ExtractResult] = []
    with progress_bar(total=sum(frames.values()), unit="frame", desc="extract", disable=quiet or not todo) as bar:

        def before_round(jobs: list[Any], attempt: int) -> None:
            runlog.append(running_records(runlog, jobs))
            if attempt > 1:  # retried videos are decoded again from the start
                bar.total = (bar.total or 0) + sum(frames[j.out] for j in jobs)
                bar.refresh()

        for job, result, attempt, final in map_with_retries(
            ex, run_job, todo, retries=retries, is_failure=_is_failure,
            on_progress=bar.update, before_round=before_round,
        ):
            if isinstance(result, BaseException):
                result = ExtractResult(job.video, job.out, "failed", message=f"{type(result).__name__}: {result}")
            result.attempts = attempt
            runlog.append([result_record(runlog, job, result)])
            if final:
                results.append(result)
            if not quiet:
                bar.write(_describe(result) if final else
                          f"  {job.video}: failed on attempt {attempt} of {retries + 1}, retrying: {result.message}")
    return results


def _is_failure(result: Any) -> bool:
    return isinstance(result, BaseException) or result.status == "failed"


def _frame_count(video: Path) -> int:
    try:
        import cv2

        cap = cv2.VideoCapture(str(video))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        return max(n, 0)
    except Exception:
        return 0


def _describe(r: ExtractResult) -> str:
    if r.status == "written":
        fps = r.frames / r.seconds if r.seconds else 0.0
        note = f"; {r.message}" if r.message else ""
        return (f"  {r.video.name}: {r.frames} frames, person in {r.detected}, "
                f"{fps:.1f} frames/s -> {r.out}{note}")
    if r.status == "skipped":
        return f"  {r.video.name}: up to date ({r.out})"
    tries = f" (after {r.attempts} attempts)" if r.attempts > 1 else ""
    return f"  {r.video}: FAILED: {r.message}{tries}"


def _as_json(r: ExtractResult) -> dict[str, Any]:
    return {
        "video": str(r.video), "out": str(r.out), "status": r.status, "frames": r.frames,
        "detected": r.detected, "seconds": round(r.seconds, 3), "message": r.message, "attempts": r.attempts,
    }
