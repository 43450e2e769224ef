"""The alignment report written beside a dataset: per video, how annotations met frames."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from spml_core.datasets.annotations import (
    VideoAlignment,
)
from spml_core.util.atomic import write_text_atomic

if TYPE_CHECKING:
    pass


class VideoReport(VideoAlignment):
    """Alignment of one video: its files, its frames, and what its annotations did."""

    video: str
    keypoints: str
    annotations: str | None = None
    frames: int = 0
    rows: int = Field(0, description="Rows this video contributes to the dataset")
    estimator: dict[str, Any] | None = Field(
        None, description="Pose estimator of the keypoint file (name, version, options), None when it records none"
    )


class AlignmentReport(BaseModel):
    """What building a dataset did, per video and overall; written as <dataset>.report.json."""

    classes: dict[str, list[str]]
    rows: int = 0
    include_unlabeled: bool = True
    strict: bool = False
    on_conflict: str = "keep_later"
    videos: list[VideoReport] = Field(default_factory=list)
    videos_without_annotations: list[str] = Field(default_factory=list)
    annotations_without_videos: list[str] = Field(default_factory=list)

    @property
    def annotations_total(self) -> int:
        """Annotations read from files matched to a video."""
        return sum(v.annotations_total for v in self.videos)

    @property
    def annotations_used(self) -> int:
        """Annotations that labelled at least one frame."""
        return sum(v.annotations_used for v in self.videos)

    def table(self, max_videos: int = 20) -> str:
        """A short plain-text table: one line per video, then totals and unmatched files."""
        classes = list(self.classes)
        head = ["video", "frames", *[f"{c} labeled" for c in classes], "annotations", "clipped", "conflicts",
                "unknown"]
        rows = []
        for v in self.videos[:max_videos]:
            rows.append([
                v.video, str(v.frames), *[str(v.labeled_frames.get(c, 0)) for c in classes],
                f"{v.annotations_used}/{v.annotations_total}" if v.annotations else "-",
                str(len(v.outside)), str(len(v.conflicts)), str(sum(v.unknown_labels.values())),
            ])
        if len(self.videos) > max_videos:
            rows.append([f"... {len(self.videos) - max_videos} more", *[""] * (len(head) - 1)])
        rows.append([
            "total", str(sum(v.frames for v in self.videos)),
            *[str(sum(v.labeled_frames.get(c, 0) for v in self.videos)) for c in classes],
            f"{self.annotations_used}/{self.annotations_total}",
            str(sum(len(v.outside) for v in self.videos)), str(sum(len(v.conflicts) for v in self.videos)),
            str(sum(sum(v.unknown_labels.values()) for v in self.videos)),
        ])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        lines = [fmt(head), *map(fmt, rows)]
        lines.append(f"{self.rows} rows ({'all frames' if self.include_unlabeled else 'labeled frames only'})")
        for title, items in (("videos without annotations", self.videos_without_annotations),
                             ("annotation files matching no video", self.annotations_without_videos)):
            if items:
                shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
                lines.append(f"{title} ({len(items)}): {shown}")
        for v in self.videos:
            for c in v.conflicts[:3]:
                lines.append(f"conflict in {v.video}: {c.cls} frames {c.first_frame}-{c.last_frame}: "
                             f"{', '.join(c.labels)} -> kept {c.kept}")
            for o in v.outside[:3]:
                lines.append(f"{o.kind} in {v.video}: annotation {o.annotation} ({o.label}, {o.range})")
            if v.unknown_labels:
                lines.append(f"unknown labels in {v.video} (ignored): "
                             + ", ".join(f"{k} ({n}x)" for k, n in v.unknown_labels.items()))
        return "\n".join(lines)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON atomically."""
        data = self.model_dump(mode="json")
        data["annotations_total"] = self.annotations_total
        data["annotations_used"] = self.annotations_used
        return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def report_path(out: str | os.PathLike[str]) -> Path:
    """Where the report of a dataset goes: '<out>.report.json' beside it."""
    out = Path(out)
    return out.with_name(out.name + ".report.json")

