"""Benchmark: does a window bundle see the same thing live at any input frame rate?

Trains a window-10 XGBoost bundle on the example video (30 fps keypoints, MediaPipe lite), then
streams its keypoints through ``StreamPredictor`` at 30, 20, 15, 10, 7.5 and 5 fps (frames
subsampled with their real timestamps), and again with +-20% timestamp jitter and 10% of the
frames dropped. For each rate it prints the agreement with the 30 fps predictions at the same
instants: the share of the subsampled stream's frames (where the 30 fps stream has a full window)
that get the same answer: the same class, or "unknown" from the bundle's rejection threshold in both.
A frame with no answer (warming up, too slow) counts as a disagreement.

The same table is printed for the frame-counted behaviour before spml 0.3 (a window of the last
10 frames received, whatever their timing), so the gain is visible.
Targets (issue #12): >= 95% at 10-30 fps, >= 85% at 5 fps.

Run: .venv/bin/python benchmarks/live_rate.py [--window 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _reference import EXAMPLE, ROOT, log

CACHE = ROOT / "build" / "bench-live-rate"
RATES = (30.0, 20.0, 15.0, 10.0, 7.5, 5.0)


def example_keypoints() -> tuple[Path, Path]:
    """(keypoint file, per-frame dataset) of the example video, extracted once under build/."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.pipeline import run_extract

    kp_dir = CACHE / "keypoints"
    kp = kp_dir / "example_video.parquet"
    if not kp.exists():
        log("extracting the example video's keypoints (MediaPipe lite)")
        run_extract(EXAMPLE / "example_video.webm", kp_dir, "mediapipe", {"model": "lite"}, quiet=True)
    dataset = CACHE / "example.parquet"
    if not dataset.exists():
        frames, _ = build_dataset(kp_dir, EXAMPLE, AnnotationSchema())
        write_dataset(frames, dataset)
    return kp, dataset


def subsample(n: int, rate: float, base_fps: float) -> np.ndarray:
    """Indices of the frames a camera at ``rate`` fps would deliver out of a ``base_fps`` video."""
    return np.unique(np.round(np.arange(0, n, base_fps / rate)).astype(np.int64).clip(0, n - 1))


def degrade(idx: np.ndarray, t: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Drop 10% of the frames and move each timestamp by up to +-20% of the frame interval."""
    keep = np.sort(np.concatenate(([idx[0]], idx[1:][rng.random(len(idx) - 1) >= 0.10])))
    jitter = rng.uniform(-0.2, 0.2, len(keep)) * 1000.0 / rate
    return keep, t[keep] + jitter


def _answer(r: dict, reject: bool):
    """The class a result gives: the most probable one, or "unknown" when ``reject`` and the bundle's
    rejection threshold refused the window; None without probabilities (warming up, too slow, ...)."""
    if reject and r.get("status") == "unknown":
        return "unknown"
    p = r.get("probabilities")
    return max(p, key=p.get) if p else None


def labels_new(predictor, xyzv, t, w, h, reject: bool = False) -> np.ndarray:
    """What live prediction holds after each frame, time-resampled."""
    out = predictor.predict_stream(xyzv, t, w, h)
    labels, last = [], None
    for r in out:
        if r is not None:
            last = _answer(r, reject)
        labels.append(last)
    return np.asarray(labels, dtype=object)


def labels_old(predictor, xyzv, w, h, reject: bool = False) -> np.ndarray:
    """The frame-counted behaviour: a window of the last ``window`` frames received, timing ignored."""
    from spml_core.features.live import LiveFeatureBuffer

    buf = LiveFeatureBuffer(predictor.spec, w, h)
    labels = []
    for f in xyzv:
        row = buf.push(f)
        if row is None:
            labels.append(None)
            continue
        row = predictor.select(row)
        labels.append(_answer(predictor._result(predictor.predict_rows(row)[0], row), reject))
    return np.asarray(labels, dtype=object)


def agreement(ref: np.ndarray, got: np.ndarray) -> tuple[float, int]:
    """Share of instants where the reference has a class and ``got`` is the same class."""
    has = np.array([r is not None for r in ref])
    if not has.any():
        return float("nan"), 0
    return float(np.mean(got[has] == ref[has])), int(has.sum())


def main() -> None:
    """Train, stream at each rate, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from spml_core.keypoints.sequence import load_keypoints
    from spml_core.models.predictor import load_bundle
    from spml_core.models.training import train

    kp, dataset = example_keypoints()
    seq = load_keypoints(kp)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(dataset, "step_type", Path(tmp) / "bundle", "xgboost", {"n_estimators": 100}, window=args.window,
              n_splits=2, quiet=True)
        log(f"trained a window-{args.window} xgboost bundle in {time.perf_counter() - t0:.1f} s")
        predictor = load_bundle(Path(tmp) / "bundle")
    timing = predictor.timing
    xyzv, t, w, h = seq.xyzv, seq.timestamps_ms.astype(np.float64), seq.width, seq.height
    n = len(xyzv)
    print(f"\nbundle: window {args.window} frames = {timing.window_ms:.0f} ms at {timing.fps:.2f} fps; "
          f"lowest supported input {timing.min_input_fps:.2f} fps; {n} frames of the example video")
    met = True
    for reject in (False, True):
        ref_new = labels_new(predictor, xyzv, t, w, h, reject)
        ref_old = labels_old(predictor, xyzv, w, h, reject)
        rng = np.random.default_rng(args.seed)
        rows = []
        for rate in RATES:
            idx = subsample(n, rate, timing.fps)
            jidx, jt = degrade(idx, t, rate, rng)
            row = [rate]
            for ref, ii, tt in ((ref_new, idx, t[idx]), (ref_new, jidx, jt), (ref_old, idx, None), (ref_old, jidx, None)):
                got = labels_new(predictor, xyzv[ii], tt, w, h, reject) if tt is not None else \
                    labels_old(predictor, xyzv[ii], w, h, reject)
                row.append(agreement(ref[ii], got)[0])
            rows.append(row)
        what = ("the model's class" if not reject else
                "the answer with the bundle's rejection threshold (a class or unknown)")
        print(f"\nagreement with the 30 fps predictions at the same instants, {what}:")
        print(f"{'input fps':>9} | {'time grid':>9} | {'+jitter/drop':>12} | {'frame-counted (old)':>19} | "
              f"{'old +jitter/drop':>16}")
        print("-" * 78)
        for rate, a, b, c, d in rows:
            print(f"{rate:>9g} | {a:>8.1%} | {b:>11.1%} | {c:>18.1%} | {d:>15.1%}")
        if not reject:
            met = all(r[1] >= 0.95 and r[2] >= 0.95 for r in rows if r[0] >= 10) and all(
                r[1] >= 0.85 and r[2] >= 0.85 for r in rows if r[0] == 5)
    print(f"\ntargets on the model's class (>= 95% at 10-30 fps, >= 85% at 5 fps): {'met' if met else 'NOT met'}")
    sys.exit(0)


if __name__ == "__main__":
    main()
