"""Resuming extraction runs: which outputs are finished, and the runlog records of each attempt."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spml_core.keypoints.extract import (
    ExtractJob,
    ExtractResult,
    _extras_present,
    is_up_to_date,
)
from spml_core.keypoints.runlog import RunLog, VideoRecord
from spml_core.keypoints.sequence import file_sha256


def resume_plan(runlog: RunLog, jobs: list[ExtractJob]) -> tuple[list[ExtractResult], list[ExtractJob]]:
    """Split hashed jobs into finished ones (skipped results) and the ones to run (forced).

    A video is finished when its output's own metadata names the same video content, estimator
    and options and, if the runlog has a done record for those inputs, the file is still
    the one that record describes. An output that is valid but unrecorded (its run was killed
    between the rename and the runlog write, or it predates manifests) is adopted.
    """
    skipped: list[ExtractResult] = []
    todo: list[ExtractJob] = []
    adopted: list[VideoRecord] = []
    for job in jobs:
        rec = runlog.get(job.out.name)
        file_ok = is_up_to_date(job.out, job.sha256, job.estimator, job.options) and _extras_present(job)
        if file_ok and rec is not None and rec.status == "done" and rec.same_inputs(
            job.sha256, job.estimator, job.options
        ):
            finished = runlog.output_matches(rec)
        elif file_ok:
            adopted.append(_adopt(job, rec))
            finished = True
        else:
            finished = False
        if finished:
            skipped.append(ExtractResult(job.video, job.out, "skipped", message="up to date"))
        else:
            todo.append(dataclasses.replace(job, force=True))
    runlog.append(adopted)
    return skipped, todo


def running_records(runlog: RunLog, jobs: list[ExtractJob]) -> list[VideoRecord]:
    """Records marking jobs as started; attempts count on from earlier unfinished tries of the same inputs."""
    out = []
    for job in jobs:
        prev = runlog.get(job.out.name)
        before = (
            prev.attempts
            if prev is not None and prev.status != "done" and prev.same_inputs(job.sha256, job.estimator, job.options)
            else 0
        )
        out.append(_record(job, "running", attempts=before + 1))
    return out


def result_record(runlog: RunLog, job: ExtractJob, result: ExtractResult) -> VideoRecord:
    """The record of a finished attempt: done with the output's hash and stat, or failed with the error."""
    prev = runlog.get(job.out.name)
    attempts = prev.attempts if prev is not None else 1
    if result.status == "failed":
        return _record(job, "failed", attempts=attempts, error=result.message, seconds=result.seconds)
    st = Path(job.out).stat()
    return _record(
        job, "done", attempts=attempts, out_sha256=result.out_sha256 or file_sha256(job.out),
        out_size=st.st_size, out_mtime_ns=st.st_mtime_ns, frames=result.frames,
        detected=result.detected, seconds=result.seconds,
    )


def _adopt(job: ExtractJob, prev: VideoRecord | None) -> VideoRecord:
    st = job.out.stat()
    return _record(
        job, "done", attempts=prev.attempts if prev is not None else 0, out_sha256=file_sha256(job.out),
        out_size=st.st_size, out_mtime_ns=st.st_mtime_ns,
    )


def _record(job: ExtractJob, status: str, **fields: object) -> VideoRecord:
    return VideoRecord(
        output=job.out.name, video=str(job.video), sha256=job.sha256, estimator=job.estimator,
        options=job.options, status=status, **fields,  # type: ignore[arg-type]
    )
