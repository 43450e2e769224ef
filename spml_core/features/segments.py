"""The contract between segmentation strategies (plugins) and the feature pipeline (core).

A strategy decides which frames form each training example and what its labels are
(``ExampleSegmenter.segment``), and how an example becomes a row (``row_layout``): one row per
frame (``frame``), the frames' features side by side (``flatten``), or summary statistics over
the frames (``pool``). The core computes the features and builds the rows, so the offline
dataset and the live buffer share one implementation.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from spml_core.components import Segmenter

if TYPE_CHECKING:
    import pandas as pd

LayoutKind = Literal["frame", "flatten", "pool"]
PoolStat = Literal["mean", "max", "std"]
POOL_STATS: tuple[str, ...] = ("mean", "max", "std")


@dataclass(frozen=True)
class RowLayout:
    """How one example becomes one or more output rows.

    ``frame``: a row per frame of the example (``window`` is 1: the live path classifies each frame).
    ``flatten``: one row, columns ``frame-{k}-<feature>`` for k = 1..window (fixed-length examples).
    ``pool``: one row, columns ``<stat>-<feature>`` over the example's frames; ``window`` is the
    live window, or None when examples have no fixed length (then there is no live path).
    """

    kind: LayoutKind
    window: int | None = 1
    pool: tuple[str, ...] = ()


@dataclass
class Segments:
    """Examples chosen by a strategy, in CSR form over the rows of the (sorted) frame table.

    Example ``i`` is made of table rows ``rows[offsets[i]:offsets[i+1]]`` in time order;
    ``labels`` holds one row per example (the label columns); ``notes`` say what was left out.
    """

    rows: np.ndarray
    offsets: np.ndarray
    labels: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def n_examples(self) -> int:
        """Number of examples."""
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Frames per example."""
        return np.diff(self.offsets)


class ExampleSegmenter(Segmenter):
    """A segmentation strategy the feature pipeline can run offline and live."""

    @abstractmethod
    def segment(self, frames: pd.DataFrame, label_columns: list[str]) -> Segments:  # type: ignore[override]
        """Choose examples from a frame table sorted by (video, frame) with a 0..n-1 index."""

    @abstractmethod
    def row_layout(self) -> RowLayout:
        """How each example becomes rows (also what the live buffer produces)."""


# -- helpers for strategies (vectorised; no loop over frames) ------------------------------------
def run_starts(video_codes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Row offsets where a run of consecutive frames starts: a new video, or a gap in frame numbers.

    A video's regular step is its smallest positive frame difference (1, or the extraction stride);
    a larger difference means frames were removed upstream (e.g. ``--labeled-only``), and examples
    must not bridge that gap. Rows must be sorted by video, then frame.
    """
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    video_codes = np.asarray(video_codes)
    frame = np.asarray(frame, dtype=np.int64)
    new_video = np.empty(n, dtype=bool)
    new_video[0] = True
    new_video[1:] = video_codes[1:] != video_codes[:-1]
    step = np.diff(frame, prepend=frame[0])
    vstart = np.flatnonzero(new_video)
    pos_step = np.where((step > 0) & ~new_video, step, np.iinfo(np.int64).max)
    min_step = np.minimum.reduceat(pos_step, vstart)
    per_row = np.repeat(min_step, np.diff(np.append(vstart, n)))
    return np.flatnonzero(new_video | (step > per_row)).astype(np.int64)


def csr(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, offsets) of examples made of ``lengths[i]`` consecutive rows from ``starts[i]``."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return rows, offsets


def take_labels(frames: pd.DataFrame, label_columns: list[str], rows: np.ndarray) -> pd.DataFrame:
    """The label columns at the given table rows, dtypes kept, with a fresh 0..n-1 index."""
    import pandas as pd

    # Column by column: indexing a wide table with a list of names costs more than the take itself.
    return pd.DataFrame({c: frames[c].array.take(rows) for c in label_columns}, index=pd.RangeIndex(len(rows)),
                        columns=label_columns)


def label_codes(column: pd.Series) -> tuple[np.ndarray, Any]:
    """(int64 codes with -1 for no label, categories) of a label column."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(np.int64), column.cat.categories
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes.astype(np.int64), uniques


def example_labels(
    frames: pd.DataFrame, label_columns: list[str], rows: np.ndarray, offsets: np.ndarray,
    rule: Literal["last", "majority"],
) -> pd.DataFrame:
    """One label per example and class column: its last frame's, or the most frequent one.

    ``majority`` counts only frames that carry a label of that class; a tie goes to the label seen
    latest in the example; an example without any label of the class gets none (NA).
    """
    import pandas as pd

    n = len(offsets) - 1
    if rule == "last":
        return take_labels(frames, label_columns, rows[offsets[1:] - 1])
    lengths = np.diff(offsets)
    example = np.repeat(np.arange(n, dtype=np.int64), lengths)
    position = np.arange(len(rows), dtype=np.int64)
    out = {}
    for col in label_columns:
        codes, categories = label_codes(frames[col])
        member = codes[rows]
        k = max(len(categories), 1)
        valid = member >= 0
        key = example[valid] * k + member[valid]
        counts = np.bincount(key, minlength=n * k).reshape(n, k)
        latest = np.full(n * k, -1, dtype=np.int64)
        np.maximum.at(latest, key, position[valid])
        score = counts * (len(rows) + 1) + (latest.reshape(n, k) + 1)
        winner = score.argmax(axis=1)
        winner[counts.max(axis=1, initial=0) == 0] = -1
        cat = pd.Categorical.from_codes(winner, categories=categories)
        series = pd.Series(cat, name=col)
        out[col] = series if isinstance(frames[col].dtype, pd.CategoricalDtype) else series.astype(frames[col].dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(n))
