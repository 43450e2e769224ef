"""Batch keypoint extraction: videos -> one Parquet file per video, in parallel, resumable."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import file_sha256, read_keypoint_meta
from spml_core.keypoints.streamposeml import sequence_json_path, write_streamposeml
from spml_core.registry import Registry

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v", ".mpg", ".mpeg")


@dataclass
class ExtractJob:
    """One video to extract: where it is, where its keypoints go, and with what."""

    video: Path
    out: Path
    estimator: str
    options: dict[str, Any]
    sha256: str = ""
    formats: tuple[str, ...] = ("parquet",)
    # The driver already decided this output is missing or stale (run log): don't skip it.
    force: bool = False


@dataclass
class ExtractResult:
    """Outcome of one video: written, skipped (up to date) or failed, with a message."""

    video: Path
    out: Path
    status: str
    frames: int = 0
    detected: int = 0
    seconds: float = 0.0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    out_sha256: str = ""
    attempts: int = 0


def find_videos(path: Path) -> list[Path]:
    """A video file, or the videos in a folder (recursively), sorted; clear error if none."""
    if not path.exists():
        raise SpmlError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise SpmlError(f"{path}: no video files found (looked for {', '.join(VIDEO_EXTENSIONS)})")
    return videos


def is_up_to_date(out: Path, sha256: str, estimator: str, options: dict[str, Any]) -> bool:
    """True when out is a complete keypoint file for this video content, estimator and options."""
    meta = read_keypoint_meta(out) if out.exists() else None
    if not meta or not meta.get("source") or not meta.get("estimator"):
        return False
    est = meta["estimator"]
    return (
        meta["source"].get("sha256") == sha256
        and est.get("name") == estimator
        and est.get("options") == _canonical(options)
    )


def _canonical(options: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(options, sort_keys=True, default=str))


def plan_jobs(
    videos: Iterable[Path],
    out_dir: Path,
    estimator: str,
    options: dict[str, Any],
    formats: tuple[str, ...] = ("parquet",),
) -> list[ExtractJob]:
    """Build one job per video; stems must be unique because outputs are named by stem."""
    jobs: list[ExtractJob] = []
    seen: dict[str, Path] = {}
    for video in videos:
        stem = video.stem
        if stem in seen:
            raise SpmlError(f"{video}: same name as {seen[stem]}; outputs are named by stem, rename one")
        seen[stem] = video
        jobs.append(ExtractJob(video, out_dir / f"{stem}.parquet", estimator, _canonical(options), formats=formats))
    return jobs


def check_output_dir(out_dir: Path) -> None:
    """Create the output folder or fail clearly when it cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpmlError(f"{out_dir}: cannot create output folder ({exc.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise SpmlError(f"{out_dir}: output folder is not writable")


def run_job(job: ExtractJob, progress: Callable[[int], None] | None = None) -> ExtractResult:
    """Extract one video in this process (used by every executor's workers)."""

    start = time.perf_counter()
    try:
        sha = job.sha256 or file_sha256(job.video)
        if not job.force and is_up_to_date(job.out, sha, job.estimator, job.options) and _extras_present(job):
            return ExtractResult(job.video, job.out, "skipped", message="up to date")
        registry = Registry().load()
        with registry.create("pose_estimator", job.estimator, job.options) as est:
            seq = est.estimate_video(job.video, progress=progress)  # type: ignore[attr-defined]
        seq.source.sha256 = sha  # type: ignore[union-attr]
        seq.save(job.out)
        extra: dict[str, Any] = {}
        if "streamposeml" in job.formats:

            extra = write_streamposeml(seq, job.out.parent)
        detected = int(seq.detected.sum())
        msg = "" if detected else "no person detected in any frame (all landmarks are NaN)"
        short = truncation_warning(job.video, int(seq.frame_index[-1]) + 1 if seq.n_frames else 0)
        if short:
            msg = f"{msg}; {short}" if msg else short
        return ExtractResult(
            job.video, job.out, "written", seq.n_frames, detected, time.perf_counter() - start, msg, extra,
            out_sha256=file_sha256(job.out),  # hashed here, where the file is, for the run log
        )
    except Exception as exc:  # one failing video must not stop the others
        message = str(exc) if isinstance(exc, SpmlError) else f"{type(exc).__name__}: {exc}"
        return ExtractResult(job.video, job.out, "failed", seconds=time.perf_counter() - start, message=message)


def container_frame_count(video: Path) -> int:
    """The frame count the video's container declares (0 when it declares none)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0
    finally:
        cap.release()
    return int(n) if n and n > 0 and n == n else 0


def truncation_warning(video: Path, frames_read: int) -> str:
    """A warning when fewer frames were decoded than the container declares (a truncated or damaged file)."""
    declared = container_frame_count(video)
    # Containers estimate the count from the duration; a frame or two of difference is normal.
    if declared and frames_read < declared - max(2, declared // 100):
        return (f"warning: the video ends early: {frames_read} frames read of the {declared} its container "
                "declares (a truncated or damaged file?)")
    return ""


def _extras_present(job: ExtractJob) -> bool:
    if "streamposeml" not in job.formats:
        return True

    return sequence_json_path(job.out.parent, job.video.name).exists()
