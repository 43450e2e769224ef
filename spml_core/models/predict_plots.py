"""The timeline picture `spml predict` writes per video: the predicted label over time, and each class's probability."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from spml_core.models.batch import prob_column
from spml_core.models.plots import _png, _pyplot

if TYPE_CHECKING:
    import pandas as pd


def prediction_timeline_png(table: pd.DataFrame, classes: list[str], title: str) -> bytes:
    """Label band (white where no label: warming up, no person) above the class probabilities, by time."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    base = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colors = [base(i % base.N) for i in range(len(classes))]
    cmap = ListedColormap(colors).with_extremes(bad="white")
    t = table["timestamp_ms"].to_numpy(dtype=np.float64) / 1000.0
    if not np.isfinite(t).all():  # no timestamps (e.g. StreamPoseML JSON): plot by frame
        t = table["frame"].to_numpy(dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    codes = table["label"].map(index).to_numpy(dtype=np.float64)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 3.2), sharex=True, height_ratios=(1, 2.2))
    lo, hi = (float(t[0]), float(t[-1])) if len(t) else (0.0, 1.0)
    top.imshow(np.ma.masked_invalid(codes[None, :]), aspect="auto", cmap=cmap, vmin=-0.5,
               vmax=len(classes) - 0.5, interpolation="nearest", extent=(lo, hi if hi > lo else lo + 1, 1, 0))
    top.set_yticks([])
    top.set_ylabel("label", rotation=0, ha="right", va="center")
    for c, color in zip(classes, colors):
        bottom.plot(t, table[prob_column(c)].to_numpy(dtype=np.float64), color=color, lw=1)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("probability")
    bottom.set_xlabel("seconds" if np.isfinite(table["timestamp_ms"].to_numpy(dtype=np.float64)).all() else "frame")
    fig.legend(handles=[Patch(color=col, label=c) for c, col in zip(classes, colors)], loc="upper right",
               ncol=min(len(classes), 4), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return _png(fig)
