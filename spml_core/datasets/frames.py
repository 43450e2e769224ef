"""The seed API's FrameDataset: a per-frame table with StreamPoseML's accessors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
from spml_core.datasets.report import AlignmentReport


@dataclass
class FrameDataset:
    """A built dataset: the per-frame table, its alignment report and class columns.

    ``all_frames``, ``labeled_frames`` (every class labeled, StreamPoseML's rule) and
    ``unlabeled_frames`` mirror StreamPoseML's Dataset, as DataFrames.
    """

    frames: pd.DataFrame
    report: AlignmentReport
    classes: list[str] = field(default_factory=list)

    @property
    def all_frames(self) -> pd.DataFrame:
        """Every frame."""
        return self.frames

    @property
    def labeled_mask(self) -> np.ndarray:
        """True for frames where every class column that holds any label holds one."""
        present = [self.frames[c].notna().to_numpy() for c in self.classes]
        used = [m for m in present if m.any()]
        if not used:
            return np.zeros(len(self.frames), dtype=bool)
        return np.logical_and.reduce(used)

    @property
    def labeled_frames(self) -> pd.DataFrame:
        """Frames where every class column holds a label."""
        return self.frames[self.labeled_mask]

    @property
    def unlabeled_frames(self) -> pd.DataFrame:
        """Frames where some class column is empty."""
        return self.frames[~self.labeled_mask]

