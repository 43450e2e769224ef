"""The timeline picture `spml predict` writes per video: the predicted label over time, and each class's probability."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from spml_core.models.batch import prob_column

if TYPE_CHECKING:
    import pandas as pd


def prediction_timeline_png(table: pd.DataFrame, classes: list[str], title: str) -> bytes:
    """Label band (white where no label: warming up, no person, unknown) above the class probabilities."""
    # A bare Figure on the Agg canvas with fixed margins: no pyplot state, no tight-bbox second draw
    # (that made the picture the slowest part of predicting a file).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    import matplotlib

    base = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    colors = [base(i % base.N) for i in range(len(classes))]
    cmap = ListedColormap(colors).with_extremes(bad="white")
    stamps = table["timestamp_ms"].to_numpy(dtype=np.float64)
    timed = bool(len(stamps)) and bool(np.isfinite(stamps).all())
    t = stamps / 1000.0 if timed else table["frame"].to_numpy(dtype=np.float64)
    codes = table["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.float64)
    fig = Figure(figsize=(11, 3.2), dpi=90)
    FigureCanvasAgg(fig)
    top = fig.add_axes((0.07, 0.66, 0.91, 0.14))
    bottom = fig.add_axes((0.07, 0.15, 0.91, 0.47), sharex=top)
    lo, hi = (float(t[0]), float(t[-1])) if len(t) else (0.0, 1.0)
    top.imshow(np.ma.masked_invalid(codes[None, :]), aspect="auto", cmap=cmap, vmin=-0.5,
               vmax=len(classes) - 0.5, interpolation="nearest", extent=(lo, hi if hi > lo else lo + 1, 1, 0))
    top.set_yticks([])
    top.set_ylabel("label", rotation=0, ha="right", va="center")
    top.tick_params(labelbottom=False)
    for c, color in zip(classes, colors):
        bottom.plot(t, table[prob_column(c)].to_numpy(dtype=np.float64), color=color, lw=1)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("probability")
    bottom.set_xlabel("seconds" if timed else "frame")
    fig.legend(handles=[Patch(color=col, label=c) for c, col in zip(classes, colors)], loc="upper right",
               ncol=min(len(classes), 4), fontsize=8, frameon=False)
    fig.text(0.01, 0.95, title, fontsize=10, ha="left", va="top")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
