"""Session folders recorded by `spml serve` (docs/web_app.md) as datasets: the recorded keypoints
aligned to a video's annotations, so `spml evaluate` can score a bundle on a live session.

The page numbers the frames it processed (it skips camera frames while pose is busy), so a session's
frame numbers are not the video's: its rows are aligned to the annotations by time (each row's
``timestamp_ms`` is the replayed video's media time), never by frame number.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from spml_core.datasets.annotations import AnnotationFields, AnnotationSchema, uses_times
from spml_core.datasets.build import build_dataset
from spml_core.datasets.io import write_dataset
from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import SESSION_KEYPOINTS

SESSION_FILE = "session.json"


def is_session_folder(path: str | os.PathLike[str]) -> bool:
    """Whether a path is a session folder written by spml serve (session.json and keypoints.parquet)."""
    p = Path(path)
    return p.is_dir() and (p / SESSION_FILE).is_file() and (p / SESSION_KEYPOINTS).is_file()


def read_session(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A session folder's session.json (errors name the folder and what is missing)."""
    p = Path(path)
    if not p.is_dir():
        raise SpmlError(f"{p}: session folder not found")
    for name in (SESSION_FILE, SESSION_KEYPOINTS):
        if not (p / name).is_file():
            raise SpmlError(f"{p}: not a finished session folder (no {name}; is it still recording?)")
    try:
        data = json.loads((p / SESSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpmlError(f"{p / SESSION_FILE}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise SpmlError(f"{p / SESSION_FILE}: expected a JSON object")
    return data


def time_schema(schema: AnnotationSchema | None = None) -> AnnotationSchema:
    """The schema with its ranges read as times (the seed's startTime/endTime unless it maps times already)."""
    schema = schema or AnnotationSchema()
    if uses_times(schema):
        return schema
    fields = schema.annotation_fields.model_dump(exclude={"start_frame", "end_frame", "start_time", "end_time"})
    timed = AnnotationFields(**fields, start_time="metadata.system.startTime", end_time="metadata.system.endTime")
    return schema.model_copy(update={"annotation_fields": timed})


def session_dataset(
    session: str | os.PathLike[str], annotations: str | os.PathLike[str], out: str | os.PathLike[str],
    schema: AnnotationSchema | None = None, registry: Any = None,
) -> Path:
    """Write the labelled frame table of a recorded session (its keypoints + the replayed video's annotations)."""
    session = Path(session)
    meta = read_session(session)
    stem = Path(str(meta.get("source_name") or "")).stem
    if not stem:
        raise SpmlError(f"{session}: the session did not replay a named video file (source_name is empty), so "
                        "no annotation file can be matched to it; record it while replaying the annotated video")
    with tempfile.TemporaryDirectory(prefix=".session-", dir=Path(out).parent) as tmp:
        # The dataset builder names a video after its keypoint file: <video stem>.parquet.
        link = Path(tmp) / f"{stem}.parquet"
        try:
            os.link(session / SESSION_KEYPOINTS, link)
        except OSError:
            shutil.copyfile(session / SESSION_KEYPOINTS, link)
        frames, report = build_dataset(tmp, annotations, time_schema(schema), registry=registry)
        if not report.videos or report.videos[0].annotations is None:
            raise SpmlError(f"{session}: no annotation file in {annotations} names the video {stem!r}")
        return write_dataset(frames, out)
