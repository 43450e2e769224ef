"""The pose estimator behind each video of a dataset: read from the keypoint files, kept with the dataset, summarised for bundles.

A dataset records, per video, the estimator its keypoints came from (name, version, options incl.
model and smoothing) in its Parquet schema metadata and in its report. Training copies the one
estimator of all its videos into the bundle's ``features.pose`` (docs/models.md), so `spml predict`
and the live page run the pose model the bundle was trained with.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from spml_core.datasets.report import report_path
from spml_core.keypoints.sequence import _META_KEY

DATASET_META_KEY = b"spml.dataset"
# Options that choose which frames are read or where pose ran (a recorded session's `where`), not how
# keypoints are estimated: a bundle must not make `spml predict` read only the first N frames of a video
# because its training run did, nor pass the estimator an option it does not take.
_PER_RUN_OPTIONS = ("max_frames", "stride", "where")


def keypoint_estimator(footer_metadata: dict[bytes, bytes] | None) -> dict[str, Any] | None:
    """The estimator recorded in a keypoint file's Parquet key-value metadata, or None when it has none."""
    raw = (footer_metadata or {}).get(_META_KEY)
    if not raw:
        return None
    try:
        est = json.loads(raw).get("estimator")
    except (ValueError, RecursionError, AttributeError):
        return None
    if not isinstance(est, dict) or not isinstance(est.get("name"), str):
        return None
    return {"name": est["name"], "version": str(est.get("version") or ""),
            "options": dict(est.get("options") or {})}


def dataset_metadata(pose: dict[str, dict[str, Any] | None]) -> dict[bytes, bytes]:
    """The key-value metadata a dataset's Parquet file carries: each video's pose estimator (or null)."""
    return {DATASET_META_KEY: json.dumps({"pose": pose}, sort_keys=True).encode()}


def read_dataset_pose(path: str | os.PathLike[str]) -> dict[str, dict[str, Any] | None] | None:
    """Each video's pose estimator of a dataset (Parquet metadata, else its report), or None for older datasets."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(DATASET_META_KEY)
            pose = json.loads(raw).get("pose") if raw else None
        except Exception:  # an unreadable footer is reported by the dataset reader itself
            pose = None
        if isinstance(pose, dict):
            return pose
    try:
        report = json.loads(report_path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    videos = report.get("videos") if isinstance(report, dict) else None
    if not isinstance(videos, list) or not any(isinstance(v, dict) and "estimator" in v for v in videos):
        return None  # a report from before estimators were recorded
    return {str(v.get("video")): v.get("estimator") for v in videos if isinstance(v, dict)}


def bundle_pose(per_video: dict[str, dict[str, Any] | None] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The bundle's `features.pose` from each video's estimator, and warnings when videos disagree or lack one.

    All videos should share one estimator; when they do not, the most common one (by videos) is
    recorded and a warning names the others.
    """
    if not per_video:
        return None, []
    known = {v: e for v, e in per_video.items() if isinstance(e, dict) and e.get("name")}
    if not known:
        return None, []
    keys = {v: json.dumps(_pose(e), sort_keys=True) for v, e in known.items()}
    counts = Counter(keys.values())
    top, n = counts.most_common(1)[0]
    chosen = json.loads(top)
    warnings = []
    if len(counts) > 1:
        others = sorted(v for v, k in keys.items() if k != top)
        warnings.append(
            f"the training videos' keypoints come from {len(counts)} different pose estimator settings; the bundle "
            f"records the most common ({describe_pose(chosen)}, {n} of {len(known)} videos); different: "
            + ", ".join(f"{v} ({describe_pose(json.loads(keys[v]))})" for v in others[:5])
            + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            + "; extract all videos with the same estimator options")
    missing = sorted(set(per_video) - set(known))
    if missing:
        warnings.append(f"{len(missing)} training video(s) record no pose estimator (imported or older keypoints): "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return chosen, warnings


def describe_pose(pose: dict[str, Any]) -> str:
    """A short human description of a recorded pose estimator, e.g. 'mediapipe 0.10.14 model=full smoothing=on'."""
    parts = [str(pose.get("name", "?"))]
    if pose.get("version"):
        parts.append(str(pose["version"]))
    if pose.get("model"):
        parts.append(f"model={pose['model']}")
    smoothing = pose.get("smoothing")
    if isinstance(smoothing, dict):
        parts.append("smoothing=" + ("on" if smoothing.get("enabled", True) else "off"))
    return " ".join(parts)


def _pose(est: dict[str, Any]) -> dict[str, Any]:
    """The bundle form of one video's estimator: name, version, model and smoothing beside the options."""
    options = {k: v for k, v in (est.get("options") or {}).items() if k not in _PER_RUN_OPTIONS and v is not None}
    pose: dict[str, Any] = {"name": est["name"], "version": str(est.get("version") or ""), "options": options}
    if isinstance(options.get("model"), str):
        pose["model"] = options["model"]
    if "smoothing" in options:
        pose["smoothing"] = options["smoothing"]
    return pose
