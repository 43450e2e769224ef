"""The pictures beside metrics.json: confusion matrix and timeline of predictions against annotations."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from spml_core.models.examples import ExampleSet

MAX_TIMELINE_VIDEOS = 12


# -- plots ----------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def confusion_png(overall: dict[str, Any], title: str) -> bytes:
    """Row-normalised confusion matrix with counts, as PNG bytes."""
    plt = _pyplot()
    labels = overall["confusion_matrix"]["labels"]
    cm = np.asarray(overall["confusion_matrix"]["matrix"], dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * k, 1.8 + 0.8 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("annotated")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of annotated row")
    return _png(fig)


def timeline_png(
    ex: ExampleSet, pred: np.ndarray, classes: list[str], title: str, stride: int = 1
) -> bytes:
    """Per video: the annotated label of every frame above the label predicted at each example's end."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    videos = [v for v in dict.fromkeys(ex.video.tolist()) if (pred[ex.video == v] != None).any()]  # noqa: E711
    shown = videos[:MAX_TIMELINE_VIDEOS]
    base = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    cmap = ListedColormap([base(i % base.N) for i in range(len(classes))]).with_extremes(bad="white")
    index = {c: i for i, c in enumerate(classes)}
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 0.9 + 1.0 * len(shown)), squeeze=False)
    for ax, v in zip(axes[:, 0], shown):
        frames, labels = ex.frame_labels.get(v, (np.zeros(0, np.int64), np.zeros(0, object)))
        sel = (ex.video == v) & (pred != None)  # noqa: E711
        ends = ex.end[sel]
        lo = int(min(frames.min() if frames.size else ends.min(), ends.min()))
        hi = int(max(frames.max() if frames.size else ends.max(), ends.max()))
        grid = np.full((2, hi - lo + 1), np.nan)
        if frames.size:
            codes = np.array([index.get(str(lab), np.nan) if lab is not None else np.nan for lab in labels])
            grid[0, frames - lo] = codes
        codes = np.array([index[str(p)] for p in pred[sel]], dtype=np.float64)
        for k in range(max(stride, 1)):  # hold each prediction until the next example ends
            pos = ends - lo + k
            ok = pos <= hi - lo
            grid[1, pos[ok]] = np.where(np.isnan(grid[1, pos[ok]]) | (k == 0), codes[ok], grid[1, pos[ok]])
        ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5,
                  interpolation="nearest", extent=(lo - 0.5, hi + 0.5, 1.5, -0.5))
        ax.set_yticks([0, 1], ["annotated", "predicted"])
        ax.set_title(v, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("frame")
    handles = [Patch(color=cmap(i), label=c) for i, c in enumerate(classes)]
    fig.legend(handles=handles, loc="upper right", ncol=min(len(classes), 4), fontsize=8, frameon=False)
    extra = f" (first {len(shown)} of {len(videos)} videos)" if len(videos) > len(shown) else ""
    fig.suptitle(title + extra, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)



def reliability_png(calibration: dict[str, Any], title: str) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, before and after calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for key, colour, name in (("reliability_before", "tab:red", "before"), ("reliability_after", "tab:blue", "after")):
        rel = calibration[key]
        n = np.asarray(rel["count"])
        ok = n > 0
        ece = calibration["ece_before"] if name == "before" else calibration.get("ece_crossfit", calibration["ece_after"])
        what = "model's own" if name == "before" else "temperature-scaled, cross-fitted"
        ax.plot(np.asarray(rel["confidence"])[ok], np.asarray(rel["accuracy"])[ok], "o-", color=colour,
                label=f"{what} (ECE {ece:.3f})")
    threshold = calibration.get("rejection", {}).get("threshold")
    if threshold:
        ax.axvline(threshold, color="black", lw=1, ls=":", label=f"'unknown' below {threshold:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top probability (confidence)")
    ax.set_ylabel("share correct")
    kept = "kept" if calibration.get("applied", True) else "not kept: no held-out gain"
    ax.set_title(title + f"\nT = {calibration.get('fitted_temperature', calibration['temperature']):.2f} ({kept})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def importance_png(importance: dict[str, Any], title: str, top: int = 20) -> bytes:
    """Horizontal bars of the top features: permutation importance and, when the model has it, native gain."""
    plt = _pyplot()
    panels = [(k, importance[k]) for k in ("permutation", "native") if importance.get(k) and importance[k]["features"]]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 0.9 + 0.28 * top),
                             squeeze=False)
    for ax, (kind, part) in zip(axes[0], panels):
        feats = part["features"][:top][::-1]
        values = [f["importance"] for f in feats]
        errors = [f.get("std", 0.0) for f in feats] if kind == "permutation" else None
        ax.barh(range(len(feats)), values, xerr=errors, color="tab:blue" if kind == "permutation" else "tab:green")
        ax.set_yticks(range(len(feats)), [f["feature"] for f in feats], fontsize=8)
        ax.set_xlabel("drop in balanced accuracy when shuffled" if kind == "permutation" else "share of total gain")
        ax.set_title("held-out permutation importance" if kind == "permutation" else "native importance (final model)",
                     fontsize=9)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no importances", ha="center")
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    return _png(fig)
