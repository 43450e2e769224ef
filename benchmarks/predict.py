"""Benchmark: prediction latency of model bundles, and training time next to StreamPoseML 0.3.1.

1. Latency, CPU, from raw keypoints (features included): ``Predictor.predict_window`` on a 30-frame
   window of the example video, and the live path ``new_stream().push(frame)`` (features of one new
   frame + the model), for the xgboost and lstm bundles. Median and p99 over ~2,000 calls.
   Targets: predict_window <= 1 ms (xgboost), <= 5 ms (lstm).
2. Training on the example, the seed's flow on the same CSV (``write_dataset_to_csv`` of the seed
   README's flatten_into_columns, window 10): load CSV, split, train gradient boosting, evaluate,
   save. spml's ``stream_pose_ml.learning.model_builder.ModelBuilder`` against StreamPoseML 0.3.1's,
   each in a warm process (median of runs) and as a fresh process (imports included), with the size
   of what each saves. Also ``spml train`` (5-fold CV + final fit + plots) for both models.

StreamPoseML runs in its own venv (build/spml-ref-venv, created if absent; never imported here).
3. Batch prediction: ``spml predict`` on copies of the example's keypoint file (a fresh process, outputs
   written, 1 and 2 workers) in frames/s, next to ``predict_window`` called once per frame in a loop (what
   a hand-written script did) and ``Predictor.predict_sequence`` in process, as ratios.

Run: .venv/bin/python benchmarks/predict.py [--quick] [--skip-reference] [--batch-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _reference import EXAMPLE, ROOT, log, ref_python, ref_workdir

CACHE = ROOT / "build" / "bench-predict"
VALUE_MAP = {"step_type": {"Left Step": 0, "Right Step": 1}}
# Columns of the spml CSV that are ids or other labels; StreamPoseML's loader keeps every column.
DROP = ["video", "example", "start_frame", "end_frame", "n_frames", "weight_transfer_type"]

SEED_FLOW = r"""
import json, os, sys, time
t0 = time.perf_counter()
import stream_pose_ml.learning.model_builder as mb
imported = time.perf_counter() - t0
csv, out, runs, value_map, drop = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
times = []
for _ in range(runs):
    t = time.perf_counter()
    b = mb.ModelBuilder()
    b.load_and_prep_dataset_from_csv(path=csv, target="step_type", value_map=value_map, drop_list=drop)
    b.set_train_test_split(test_size=0.2, random_state=42)
    b.train_gradient_boost()
    b.evaluate_model()
    b.save_model_and_datasets(notes="bench", model_type="gradient-boost", model_path=out)
    times.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"import_s": imported, "runs_s": times}))
"""


def example_dataset() -> tuple[Path, Path, Path]:
    """(keypoints dir, per-frame dataset, seed CSV) of the example, made once under build/."""
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.pipeline import run_extract

    kp = CACHE / "keypoints"
    if not (kp / "example_video.parquet").exists():
        log("extracting the example's keypoints (once)")
        run_extract(EXAMPLE / "example_video.webm", kp, "mediapipe", {"model": "full"}, quiet=True)
    frames_path = CACHE / "example.parquet"
    if not frames_path.exists():
        frames, _ = build_dataset(kp, EXAMPLE / "example_video.json")
        write_dataset(frames, frames_path)
    csv = CACHE / "csv" / "seed_flatten_w10.csv"
    if not csv.exists():
        import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder

        db = data_builder.BuildAndFormatDatasetJob()
        # The seed schema, whatever config.yml the working folder holds (this repository's maps demo labels too).
        ds = db.build_dataset_from_data_files(annotations_data_directory=str(EXAMPLE / "example_video.json"),
                                              sequence_data_directory=str(kp), config=ref_workdir() / "config.yml")
        fmt = db.format_dataset(dataset=ds, pool_frame_data_by_clip=False, decimal_precision=4,
                                include_unlabeled_data=True, segmentation_strategy="flatten_into_columns",
                                segmentation_window=10, segmentation_window_label="step_type")
        db.write_dataset_to_csv(csv_location=str(csv.parent), formatted_dataset=fmt, filename=csv.name)
    return kp, frames_path, csv


def percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1000.0
    return {"median_ms": float(np.median(arr)), "p99_ms": float(np.percentile(arr, 99)),
            "mean_ms": float(arr.mean()), "n": int(arr.size)}


def latency(bundle: Path, xyzv: np.ndarray, width: int, height: int, calls: int) -> dict[str, dict]:
    """predict_window on sliding 30-frame windows, and push() of every frame into a live stream."""
    import spml_core

    predictor = spml_core.load_bundle(bundle)
    w = predictor.window
    starts = np.arange(len(xyzv) - w + 1)
    for s in starts[:50]:  # warm-up (first torch/xgboost calls allocate)
        predictor.predict_window(xyzv[s:s + w], width, height)
    window_times = []
    clock = time.perf_counter
    while len(window_times) < calls:
        for s in starts:
            t = clock()
            predictor.predict_window(xyzv[s:s + w], width, height)
            window_times.append(clock() - t)
    push_times = []
    while len(push_times) < calls:
        stream = predictor.new_stream(width, height)
        for frame in xyzv:
            t = clock()
            out = stream.push(frame)
            dt = clock() - t
            if out is not None:
                push_times.append(dt)
    rows = np.stack([predictor.spec.transform_window(xyzv[s:s + w], width, height) for s in starts[:200]])
    model_times = []
    for r in rows:
        t = clock()
        predictor.predict_rows(r)
        model_times.append(clock() - t)
    return {"predict_window": percentiles(window_times), "stream_push": percentiles(push_times),
            "model_only": percentiles(model_times)}


def time_spml_train(frames_path: Path, model: str, window: int, out: Path) -> float:
    from spml_core.models.training import train

    t = time.perf_counter()
    train(frames_path, "step_type", out, model, window=window, quiet=True)
    return time.perf_counter() - t


def time_seed_flow_spml(csv: Path, runs: int) -> dict:
    """Our ModelBuilder facade, warm (in this process) and as a fresh process."""
    import contextlib
    import io

    import stream_pose_ml.learning.model_builder as mb

    out = Path(tempfile.mkdtemp(prefix="bench-mb-"))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            b = mb.ModelBuilder()
            b.load_and_prep_dataset_from_csv(path=str(csv), target="step_type", value_map=VALUE_MAP, drop_list=DROP)
            b.set_train_test_split(test_size=0.2, random_state=42)
            b.train_gradient_boost()
            b.evaluate_model()
            saved = b.save_model_and_datasets(notes="bench", model_type="gradient-boost", model_path=out)
        times.append(time.perf_counter() - t)
    size = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
    t = time.perf_counter()
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", SEED_FLOW, str(csv), str(out), "1",
                          json.dumps(VALUE_MAP), json.dumps(DROP)], capture_output=True, text=True, check=True)
    fresh = time.perf_counter() - t
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))
    shutil.rmtree(out, ignore_errors=True)
    return {"warm_median_s": statistics.median(times), "fresh_process_s": fresh,
            "import_s": json.loads(line[7:])["import_s"], "saved_bytes": size, "saved": "bundle (UBJ + JSON)"}


def time_seed_flow_reference(csv: Path, runs: int) -> dict:
    py = ref_python("stream_pose_ml.learning.model_builder")
    out = Path(tempfile.mkdtemp(prefix="bench-ref-mb-"))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    args = [str(py), "-P", "-c", SEED_FLOW, str(csv), str(out), str(runs), json.dumps(VALUE_MAP), json.dumps(DROP)]
    res = subprocess.run(args, capture_output=True, text=True, cwd=out, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"StreamPoseML's ModelBuilder failed:\n{res.stderr[-2000:]}")
    warm = json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    t = time.perf_counter()
    subprocess.run(args[:5] + [str(out), "1", *args[7:]], capture_output=True, text=True, cwd=out, env=env,
                   check=True)
    fresh = time.perf_counter() - t
    pickles = sorted(out.glob("*.pickle"))
    size = pickles[-1].stat().st_size if pickles else 0
    shutil.rmtree(out, ignore_errors=True)
    return {"warm_median_s": statistics.median(warm["runs_s"]), "fresh_process_s": fresh, "import_s": warm["import_s"],
            "saved_bytes": size, "saved": "pickle (model + X/y train/test)"}


# The hand-written way, as a whole process: load the bundle, predict_window once per frame of every file.
LOOP_SCRIPT = r"""
import sys
from pathlib import Path
import spml_core
p = spml_core.load_bundle(sys.argv[1])
for f in sorted(Path(sys.argv[2]).glob("*.parquet")):
    seq = spml_core.load_keypoints(f)
    labels = [p.predict_window(seq.xyzv[s:s + p.window], seq.width, seq.height)["label"]
              for s in range(seq.n_frames - p.window + 1)]
"""


def batch_predict(bundle: Path, kp_file: Path, copies: int, workers: list[int]) -> dict:
    """`spml predict` on `copies` keypoint files (whole process) vs predict_window per frame in a loop."""
    import spml_core
    from spml_core.keypoints.sequence import load_keypoints

    seq = load_keypoints(kp_file)
    predictor = spml_core.load_bundle(bundle)
    w = predictor.window
    t = time.perf_counter()
    for s in range(len(seq.xyzv) - w + 1):  # what a hand-written script did: one window per frame
        predictor.predict_window(seq.xyzv[s:s + w], seq.width, seq.height)
    loop_s = time.perf_counter() - t
    loop_fps = (len(seq.xyzv) - w + 1) / loop_s
    t = time.perf_counter()
    predictor.predict_sequence(seq)
    seq_fps = seq.n_frames / (time.perf_counter() - t)
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    for i in range(copies):
        shutil.copy(kp_file, folder / f"copy{i:02d}.parquet")
    frames = copies * seq.n_frames
    t = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", LOOP_SCRIPT, str(bundle), str(folder)], check=True)
    script_s = time.perf_counter() - t
    out: dict = {"files": copies, "frames": frames, "predict_window_loop_fps": loop_fps,
                 "predict_sequence_fps": seq_fps, "loop_script_fps": frames / script_s, "loop_script_s": script_s,
                 "spml_predict": {}}
    for n, flags in [(n, []) for n in workers] + [(1, ["--no-timeline"])]:
        key = f"{n}{' ' + ' '.join(flags) if flags else ''}"
        t = time.perf_counter()
        subprocess.run([str(ROOT / ".venv" / "bin" / "spml"), "predict", str(folder), "--model", str(bundle),
                        "--out", str(folder / f"out-{key.replace(' ', '')}"), "--workers", str(n), "--quiet", *flags],
                       check=True)
        wall = time.perf_counter() - t
        out["spml_predict"][key] = {"wall_s": wall, "fps": frames / wall, "ratio_vs_loop": frames / wall / loop_fps,
                                    "ratio_vs_script": script_s / wall}
    shutil.rmtree(folder, ignore_errors=True)
    return out


def print_batch(b: dict) -> None:
    """The batch-prediction table."""
    print(f"\n== batch prediction: {b['files']} keypoint files, {b['frames']} frames (window-30 xgboost bundle)")
    print(f"predict_window in a loop (one window per frame, in process): {b['predict_window_loop_fps']:>8.0f} frames/s")
    print(f"Predictor.predict_sequence (in process):                     {b['predict_sequence_fps']:>8.0f} frames/s")
    print(f"the same loop as a script (whole process, nothing written):   {b['loop_script_fps']:>8.0f} frames/s "
          f"({b['loop_script_s']:.1f} s)")
    for n, r in b["spml_predict"].items():
        print(f"spml predict --workers {n:<15} (whole process):   {r['fps']:>8.0f} frames/s "
              f"({r['wall_s']:.1f} s; {r['ratio_vs_script']:.2f}x the script, {r['ratio_vs_loop']:.2f}x the in-process loop)")


def main() -> int:
    """Run the benchmark, print a table, write build/bench-predict/results.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer calls and runs")
    ap.add_argument("--skip-reference", action="store_true", help="do not run StreamPoseML 0.3.1")
    ap.add_argument("--batch-only", action="store_true", help="only the `spml predict` batch section")
    args = ap.parse_args()
    if not (EXAMPLE / "example_video.webm").exists():
        print(f"example data not found at {EXAMPLE}", file=sys.stderr)
        return 1
    CACHE.mkdir(parents=True, exist_ok=True)
    from spml_core.keypoints.sequence import load_keypoints

    kp, frames_path, csv = example_dataset()
    seq = load_keypoints(kp / "example_video.parquet")
    calls = 500 if args.quick else 2000
    runs = 2 if args.quick else 5
    results: dict = {"machine": f"{os.cpu_count()} cores", "load_average": os.getloadavg()}
    if args.batch_only:
        bundle = CACHE / "bundle-xgboost-w30"
        if not (bundle / "manifest.json").exists():
            time_spml_train(frames_path, "xgboost", 30, bundle)
        results["batch_predict"] = batch_predict(bundle, kp / "example_video.parquet", 4 if args.quick else 8, [1, 2])
        print_batch(results["batch_predict"])
        (CACHE / "results-batch.json").write_text(json.dumps(results, indent=2))
        return 0

    log("training: spml train on the example (window 10, 5-fold blocked CV + final fit + plots)")
    train_s = {m: time_spml_train(frames_path, m, 10, CACHE / f"train-{m}-w10") for m in ("xgboost", "lstm")}
    results["spml_train_window10_s"] = train_s

    log("latency: bundles with 30-frame windows")
    lat = {}
    for model in ("xgboost", "lstm"):
        bundle = CACHE / f"bundle-{model}-w30"
        time_spml_train(frames_path, model, 30, bundle)
        lat[model] = latency(bundle, seq.xyzv, seq.width, seq.height, calls)
    results["latency_window30"] = lat

    log("seed flow on the same CSV: ModelBuilder load + split + gradient boost + evaluate + save")
    flow = {"spml": time_seed_flow_spml(csv, runs)}
    if not args.skip_reference:
        flow["streamposeml_0.3.1"] = time_seed_flow_reference(csv, runs)
    results["seed_model_builder"] = flow

    print(f"\n== prediction latency, 30-frame window from raw keypoints (CPU, {results['machine']}, "
          f"load {results['load_average'][0]:.1f})")
    print(f"{'model':<9} {'path':<16} {'median ms':>10} {'p99 ms':>8}  target")
    targets = {"xgboost": 1.0, "lstm": 5.0}
    for model, r in lat.items():
        for path in ("predict_window", "stream_push", "model_only"):
            target = f"<= {targets[model]:g} ms" if path == "predict_window" else ""
            print(f"{model:<9} {path:<16} {r[path]['median_ms']:>10.3f} {r[path]['p99_ms']:>8.3f}  {target}")
    print("\n== training on the example")
    for model, s in train_s.items():
        print(f"spml train --model {model} (window 10, CV + final + plots): {s:.1f} s")
    print(f"\n== seed ModelBuilder flow on {csv.name} (same CSV, same calls)")
    print(f"{'':<22} {'warm s':>8} {'fresh s':>8} {'import s':>9} {'saved':>10}")
    for name, r in flow.items():
        print(f"{name:<22} {r['warm_median_s']:>8.3f} {r['fresh_process_s']:>8.2f} {r['import_s']:>9.2f} "
              f"{r['saved_bytes'] / 1024:>8.1f} KB  {r['saved']}")
    if "streamposeml_0.3.1" in flow:
        ref, ours = flow["streamposeml_0.3.1"], flow["spml"]
        print(f"ratio (StreamPoseML / spml): warm {ref['warm_median_s'] / ours['warm_median_s']:.1f}x, "
              f"fresh process {ref['fresh_process_s'] / ours['fresh_process_s']:.1f}x, "
              f"saved size {ref['saved_bytes'] / max(ours['saved_bytes'], 1):.0f}x")
    log("batch prediction: spml predict on keypoint files vs predict_window in a loop")
    results["batch_predict"] = batch_predict(CACHE / "bundle-xgboost-w30", kp / "example_video.parquet",
                                             4 if args.quick else 8, [1, 2])
    print_batch(results["batch_predict"])
    (CACHE / "results.json").write_text(json.dumps(results, indent=2))
    log(f"results -> {CACHE / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
