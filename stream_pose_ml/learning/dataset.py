"""StreamPoseML's ``Dataset``: per-video lists of frame dicts, backed by spml's per-frame table.

``all_frames``, ``labeled_frames`` and ``unlabeled_frames`` are what StreamPoseML 0.3.1 returns:
a list with one entry per video, each a list of frame dicts (so ``dataset.labeled_frames[0]``
is the first video's labelled frames). A frame dict holds the table's row: ``video_id`` and
``video``, ``frame`` (0-based), ``frame_number`` (1-based, StreamPoseML's), ``timestamp_ms``, the
joint columns and one key per class with its label or None (StreamPoseML nested the frame's
joints, angles and distances under ``data`` instead). ``frames`` is the same data as one DataFrame (what
``format_dataset`` and spml use); ``segmented_data`` is kept for code that sets or reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.datasets.frames import FrameDataset

if TYPE_CHECKING:
    import pandas as pd


class Dataset(FrameDataset):
    """A built dataset with StreamPoseML's accessors (per-video lists of frame dicts)."""

    segmented_data: list | None = None

    @classmethod
    def from_frame_dataset(cls, ds: FrameDataset) -> Dataset:
        """Wrap spml's FrameDataset (same table, report and classes)."""
        return cls(frames=ds.frames, report=ds.report, classes=list(ds.classes))

    def _per_video(self, table: pd.DataFrame) -> list[list[dict[str, Any]]]:
        """One list of frame dicts per video, in the table's video order (videos with no rows give [])."""
        import pandas as pd

        out = table.copy()
        out["video"] = out["video"].astype(str)
        out.insert(2, "frame_number", out["frame"].to_numpy(np.int64) + 1)
        out.insert(0, "video_id", out["video"])  # StreamPoseML's key for the video
        for c in self.classes:  # None, not NaN, for "no label", as StreamPoseML's dicts have
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        videos = [str(v) for v in pd.unique(self.frames["video"].astype(str))]
        groups = {str(k): g for k, g in out.groupby("video", sort=False, observed=True)}
        return [groups[v].to_dict("records") if v in groups else [] for v in videos]

    @property
    def all_frames(self) -> list[list[dict[str, Any]]]:  # type: ignore[override]
        """Every frame, per video."""
        return self._per_video(self.frames)

    @property
    def labeled_frames(self) -> list[list[dict[str, Any]]]:  # type: ignore[override]
        """Frames where every class holds a label, per video."""
        return self._per_video(self.frames[self.labeled_mask])

    @property
    def unlabeled_frames(self) -> list[list[dict[str, Any]]]:  # type: ignore[override]
        """Frames where some class has no label, per video."""
        return self._per_video(self.frames[~self.labeled_mask])


class FormattedDataset(list):
    """format_dataset's result: StreamPoseML's list of row dicts, with spml's DataFrame as ``.frame``."""

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__(frame.to_dict("records"))
        self.frame = frame
