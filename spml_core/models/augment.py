"""Augmentation for small datasets: mirrored, time-warped and jittered copies of the training videos.

Copies are made from the per-frame keypoints (not from computed features), then go through the
bundle's own feature spec, so they are exactly what the live path would compute for such a video.
Every augmented example remembers the original example it was made from (same video, the nearest
window end); a fold trains on the copies of its *training* examples only and never tests on a copy,
so augmentation cannot leak into the scores.

- mirror: left and right landmarks swap and x becomes 1 - x; a label map renames classes that
  mirror into each other (``Left Step <-> Right Step``); other labels stay.
- time warp: each factor f resamples the video as if played f times faster (linear interpolation
  between frames; labels from the nearest original frame).
- jitter: Gaussian noise on x and y, ``sigma`` as a share of the frame (0.005 = 0.5 %).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.features.offline import format_dataset_frames
from spml_core.keypoints.skeleton import LANDMARK_NAMES, landmark_columns
from spml_core.models.bundle import Augmentation
from spml_core.models.examples import read_table

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.models.examples import ExampleSet


@dataclass
class AugmentSettings:
    """What `spml train --mirror/--time-warp/--jitter` asked for."""

    mirror: dict[str, str] | None = None
    time_warp: list[float] = field(default_factory=list)
    jitter: float = 0.0
    seed: int = 0

    @property
    def active(self) -> bool:
        """Whether any augmentation is asked for."""
        return self.mirror is not None or bool(self.time_warp) or self.jitter > 0


def parse_label_map(items: list[str]) -> dict[str, str]:
    """``["Left Step<->Right Step"]`` -> both directions; ``A->B`` one way. Empty list: mirror, labels unchanged."""
    out: dict[str, str] = {}
    for item in items:
        if "<->" in item:
            a, b = (x.strip() for x in item.split("<->", 1))
            pairs = [(a, b), (b, a)]
        elif "->" in item:
            a, b = (x.strip() for x in item.split("->", 1))
            pairs = [(a, b)]
        else:
            raise SpmlError(f"--mirror {item!r}: expected 'LABEL<->LABEL' (e.g. 'Left Step<->Right Step') or 'A->B'")
        for a, b in pairs:
            if not a or not b:
                raise SpmlError(f"--mirror {item!r}: both labels must be named")
            if out.get(a, b) != b:
                raise SpmlError(f"--mirror maps {a!r} to both {out[a]!r} and {b!r}")
            out[a] = b
    return out


def _mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def mirror_frames(df: pd.DataFrame, target: str, label_map: dict[str, str]) -> pd.DataFrame:
    """The same frames seen in a mirror: left/right landmarks swapped, x -> 1 - x, labels mapped."""
    out = df.copy()
    for name in LANDMARK_NAMES:
        twin = _mirror_name(name)
        for ch in ("x", "y", "z", "visibility"):
            src = df[f"{twin}_{ch}"].to_numpy()
            out[f"{name}_{ch}"] = 1.0 - src if ch == "x" else src
    labels = df[target]
    out[target] = labels.astype(object).map(lambda v: label_map.get(str(v), v) if v == v and v is not None else v)
    return out


def jitter_frames(df: pd.DataFrame, sigma: float, rng: np.random.Generator) -> pd.DataFrame:
    """Gaussian noise of ``sigma`` (share of the frame) on every landmark's x and y."""
    out = df.copy()
    cols = [c for c in landmark_columns() if c.endswith(("_x", "_y"))]
    values = df[cols].to_numpy(np.float64)
    out[cols] = values + rng.normal(0.0, sigma, values.shape)
    return out


def warp_frames(df: pd.DataFrame, target: str, factor: float) -> pd.DataFrame:
    """Each video resampled as if played ``factor`` times faster (frames renumbered from 0)."""
    import pandas as pd

    parts = []
    cols = landmark_columns()
    for _, part in df.groupby("video", observed=True, sort=False):
        part = part.sort_values("frame")
        n = len(part)
        pos = np.arange(0.0, n - 1 + 1e-9, factor)  # fractional row positions in the original video
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        w = (pos - lo)[:, None]
        values = part[cols].to_numpy(np.float64)
        warped = part.iloc[np.rint(pos).astype(np.int64).clip(0, n - 1)].copy()
        warped[cols] = values[lo] * (1 - w) + values[hi] * w
        first = int(part["frame"].iloc[0])
        warped["frame"] = first + np.arange(pos.size)
        if "timestamp_ms" in warped.columns:
            t = part["timestamp_ms"].to_numpy(np.float64)
            dt = float(np.nanmedian(np.diff(t))) if n > 1 else 0.0
            warped["timestamp_ms"] = t[0] + dt * np.arange(pos.size)
        parts.append(warped)
    return pd.concat(parts, ignore_index=True)


@dataclass
class AugmentedRows:
    """Augmented examples, each tied to the original example (``source``) it copies."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    source: np.ndarray
    settings: AugmentSettings
    counts: dict[str, int]

    def training_rows(self, train: np.ndarray, X: np.ndarray, y: np.ndarray,
                      groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fold's training rows plus the copies of exactly those rows."""
        take = np.isin(self.source, train)
        return (np.concatenate([X, self.X[take]]), np.concatenate([y, self.y[take]]),
                np.concatenate([groups, self.groups[take]]))

    def describe(self) -> str:
        """One line for the terminal."""
        return ", ".join(f"{k} +{v}" for k, v in self.counts.items()) + " examples"

    def manifest(self) -> Augmentation:
        """What the bundle records."""
        s = self.settings
        return Augmentation(mirror=s.mirror, time_warp=list(s.time_warp), jitter=s.jitter,
                            rows_added=int(self.y.size))


def _source_rows(ex: ExampleSet, video: np.ndarray, end: np.ndarray, factor: float) -> np.ndarray:
    """For each augmented example (original video name, end frame in the copy): the original example it copies."""
    out = np.full(video.size, -1, dtype=np.int64)
    for v in np.unique(video):
        rows = np.flatnonzero(ex.video == v)
        if rows.size == 0:
            continue
        rows = rows[np.argsort(ex.end[rows], kind="stable")]
        ends = ex.end[rows]
        sel = np.flatnonzero(video == v)
        first = int(ex.frame_labels[v][0].min()) if v in ex.frame_labels and ex.frame_labels[v][0].size else 0
        target = first + (end[sel] - first) * factor
        k = np.clip(np.searchsorted(ends, target), 1, ends.size - 1) if ends.size > 1 else np.zeros(sel.size, int)
        left = np.abs(ends[k - 1] - target) <= np.abs(ends[k] - target) if ends.size > 1 else np.ones(sel.size, bool)
        nearest = np.where(left, k - 1, k)
        ok = np.abs(ends[nearest] - target) <= max(1.0, factor)
        out[sel[ok]] = rows[nearest[ok]]
    return out


def augmented_rows(dataset: str | os.PathLike[str], ex: ExampleSet, settings: AugmentSettings, registry: Any,
                   quiet: bool = True) -> AugmentedRows:
    """Make the augmented copies of a per-frame dataset's examples through the examples' own spec."""
    df = read_table(dataset)
    if not all(c in df.columns for c in landmark_columns()) or ex.spec is None:
        raise SpmlError(f"{dataset}: augmentation needs the per-frame dataset with landmark columns from `spml dataset`")
    target = ex.spec.label_columns[0] if ex.spec.label_columns else None
    if target is None:
        raise SpmlError("augmentation: the feature spec names no target column")
    if ex.background is not None:
        df[target] = df[target].astype(object).where(df[target].notna(), ex.background)
    rng = np.random.default_rng(settings.seed)
    copies: list[tuple[str, pd.DataFrame, float]] = []
    if settings.mirror is not None:
        copies.append(("mirror", mirror_frames(df, target, settings.mirror), 1.0))
    for f in settings.time_warp:
        if not 0.5 <= f <= 2.0 or f == 1.0:
            raise SpmlError(f"--time-warp {f}: use speed factors between 0.5 and 2.0 other than 1 (e.g. 0.9,1.1)")
        copies.append((f"time_warp x{f:g}", warp_frames(df, target, f), f))
    if settings.jitter > 0:
        if settings.jitter > 0.05:
            raise SpmlError(f"--jitter {settings.jitter}: noise above 0.05 of the frame destroys the pose; use e.g. 0.005")
        copies.append((f"jitter {settings.jitter:g}", jitter_frames(df, settings.jitter, rng), 1.0))
    X, y, groups, source, counts = [], [], [], [], {}
    for name, frames, factor in copies:
        table = format_dataset_frames(frames, ex.spec, registry, quiet=True).frame
        table = table[table[target].notna()].reset_index(drop=True)
        labels = table[target].astype(str).to_numpy(dtype=object)
        video = table["video"].astype(str).to_numpy(dtype=object)
        end = table["end_frame" if "end_frame" in table.columns else "frame"].to_numpy(np.int64)
        src = _source_rows(ex, video, end, factor)
        keep = (src >= 0) & np.isin(labels, ex.classes)
        X.append(table.loc[keep, list(ex.spec.columns)].to_numpy(np.float32))
        y.append(labels[keep])
        groups.append(ex.groups[src[keep]])
        source.append(src[keep])
        counts[name] = int(keep.sum())
    return AugmentedRows(np.concatenate(X), np.concatenate(y), np.concatenate(groups), np.concatenate(source),
                         settings, counts)
