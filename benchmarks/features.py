"""Benchmark: features and segmentation (spml_core.features (spec, compute, live, offline) + spml-segment-window).

1. The example video, the seed README's call: ``flatten_into_columns``, window 10, labelled by
   weight_transfer_type, angles + distances + normalized, 4 decimals. spml's ``format_frames`` on the
   per-frame table against StreamPoseML 0.3.1's ``format_dataset`` on its Dataset, each in a warm
   process (median of runs), and both including the dataset build from their files. Note that
   StreamPoseML's angles and distances were computed at extraction time and stored in its 19 MB
   sequence JSON; spml computes them from raw keypoints inside format_frames. Target: >= 20x.
2. Scale: 1,000 videos x 3,000 frames (3M rows) made from the example by repetition, formatted the
   same way: rows/s.
3. Live: LiveFeatureBuffer.push with a 30-frame window and every built-in feature (angles,
   distances, normalized, velocities), flattened and pooled: time per frame. Target: <= 0.2 ms.

StreamPoseML runs in its own venv (build/spml-ref-venv, created if absent) and reads the sequence
JSON its own ProcessVideosJob writes (made once, cached under build/).
Run: .venv/bin/python benchmarks/features.py [--quick] [--videos N] [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from _reference import EXAMPLE, ROOT, ref_python, ref_sequences, ref_workdir

CACHE = ROOT / "build" / "bench-features"
SEED_CALL = dict(pool_frame_data_by_clip=False, decimal_precision=4, include_unlabeled_data=True,
                 include_angles=True, include_distances=True, include_normalized=True,
                 segmentation_strategy="flatten_into_columns", segmentation_splitter_label="step_type",
                 segmentation_window=10, segmentation_window_label="weight_transfer_type")

REF_TIMING = r"""
import json, sys, time
import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder
from stream_pose_ml.blaze_pose.blaze_pose_sequence import BlazePoseSequence
from stream_pose_ml.serializers.blaze_pose_sequence_serializer import BlazePoseSequenceSerializer
ann, seq, runs, call = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
db = data_builder.BuildAndFormatDatasetJob()
# Its per-frame keypoints as MediaPipeClient hands them to BlazePoseSequence (no neck/mid_hip, no geometry).
raw = json.load(open(seq + "/example_video.webm_sequence.json"))["frames"].values()
keys = ("x", "y", "z", "x_normalized", "y_normalized", "z_normalized")
frames = [{k: f[k] for k in ("sequence_id", "sequence_source", "frame_number", "image_dimensions")}
          | {"joint_positions": {n: {k: j[k] for k in keys} for n, j in f["joint_positions"].items()
                                 if n not in ("neck", "mid_hip")}} for f in raw]
out = {k: [] for k in ("build", "format", "geometry", "build_cpu", "format_cpu", "geometry_cpu")}
clock = time.process_time
for _ in range(runs):
    t, c = time.perf_counter(), clock()
    dataset = db.build_dataset_from_data_files(annotations_data_directory=ann, sequence_data_directory=seq, limit=None)
    t1, c1 = time.perf_counter(), clock()
    rows = db.format_dataset(dataset=dataset, **call)
    t2, c2 = time.perf_counter(), clock()
    s = BlazePoseSequence(name="example_video.webm", sequence=frames, include_geometry=True)
    BlazePoseSequenceSerializer().serialize(s.generate_blaze_pose_frames_from_sequence(), key_off_frame_number=True)
    t3, c3 = time.perf_counter(), clock()
    for k, v in (("build", t1 - t), ("format", t2 - t1), ("geometry", t3 - t2), ("build_cpu", c1 - c),
                 ("format_cpu", c2 - c1), ("geometry_cpu", c3 - c2)):
        out[k].append(v)
out.update(rows=len(rows), frames=len(frames))
print(json.dumps(out))
"""

# -- StreamPoseML ------------------------------------------------------------------------------------
def time_reference(runs: int, ann: Path) -> dict:
    py = ref_python()
    seq = ref_sequences(py)
    res = subprocess.run([py, "-P", "-c", REF_TIMING, str(ann), str(seq), str(runs), json.dumps(SEED_CALL)],
                         cwd=ref_workdir(), check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- spml ----------------------------------------------------------------------------------------------
def example_inputs() -> tuple[Path, Path]:
    """spml keypoints of the example (real MediaPipe, full model; skipped when up to date) and annotations."""
    from spml_core.pipeline import run_extract

    kp = CACHE / "keypoints"
    run_extract(EXAMPLE / "example_video.webm", kp, "mediapipe", {"model": "full"}, quiet=True)
    ann = CACHE / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE / "example_video.json", ann / "example_video.json")
    return kp, ann


def seed_spec():
    from spml_core.features.spec import FeaturePipelineSpec

    return FeaturePipelineSpec.from_options(
        ["angles", "distances", "normalized"], None, "flatten_into_columns",
        {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type"}, 4)


def time_spml(kp: Path, ann: Path, runs: int) -> dict:
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.features.offline import format_frames
    from spml_core.registry import Registry

    registry = Registry().load()
    spec = seed_spec().resolve(registry)  # once, as `spml dataset` does before reading any file
    res: dict = {k: [] for k in ("build", "format", "build_cpu", "format_cpu")}
    out = None
    clock = time.process_time
    for _ in range(runs):
        t, c = time.perf_counter(), clock()
        frames, _ = build_dataset(kp, ann, AnnotationSchema(), registry=registry)
        t1, c1 = time.perf_counter(), clock()
        out = format_frames(frames, spec, registry)
        t2, c2 = time.perf_counter(), clock()
        for k, v in (("build", t1 - t), ("format", t2 - t1), ("build_cpu", c1 - c), ("format_cpu", c2 - c1)):
            res[k].append(v)
    assert out is not None
    return {**res, "rows": len(out), "columns": out.shape[1], "frames": frames}


def time_scale(frames, n_videos: int, n_frames: int) -> dict:
    """Tile the example's per-frame table into n_videos x n_frames rows and format it once."""
    import pandas as pd

    from spml_core.features.offline import format_dataset_frames
    from spml_core.registry import Registry

    period = len(frames)
    reps = -(-n_frames // period)
    one = pd.concat([frames] * reps, ignore_index=True).iloc[:n_frames].copy()
    one["frame"] = np.arange(n_frames)
    one["timestamp_ms"] = np.round(np.arange(n_frames) * 1000 / 29.97)
    # Build the big table column by column (a concat of 1,000 frames would copy everything twice).
    cols = {}
    for c in one.columns:
        v = one[c]
        if c == "video":
            continue
        if isinstance(v.dtype, pd.CategoricalDtype):
            cols[c] = pd.Categorical.from_codes(np.tile(v.cat.codes.to_numpy(), n_videos), categories=v.cat.categories)
        else:
            cols[c] = np.tile(v.to_numpy(), n_videos)
    names = [f"video_{i:04d}" for i in range(n_videos)]
    video = pd.Categorical.from_codes(np.repeat(np.arange(n_videos, dtype=np.int32), n_frames), categories=names)
    big = pd.DataFrame({"video": video, **cols})
    del cols, one
    registry = Registry().load()
    t, c = time.perf_counter(), time.process_time()
    result = format_dataset_frames(big, seed_spec(), registry)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return {"rows_in": len(big), "rows_out": len(result.frame), "columns": result.frame.shape[1], "seconds": seconds,
            "cpu_seconds": cpu, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def time_live(frames, window: int = 30, pushes: int = 3000, repeats: int = 5) -> dict:
    """Per-frame LiveFeatureBuffer.push time, flattened and pooled, every built-in feature."""
    from spml_core.features.spec import FeaturePipelineSpec
    from spml_core.features.live import LiveFeatureBuffer
    from spml_core.keypoints.skeleton import landmark_columns

    xyzv = frames[landmark_columns()].to_numpy().reshape(-1, 33, 4)
    feats = ["angles", "distances", "normalized", "velocities"]
    out = {}
    for name, strategy, opts in [("flatten", "flatten_into_columns", {}), ("pool", "window", {"pool": True})]:
        spec = FeaturePipelineSpec.from_options(feats, None, strategy, {"segmentation_window": window, **opts}, 4)
        buf = LiveFeatureBuffer(spec.resolve(), 1280, 720)
        per_call, cpu = [], []
        for _ in range(repeats):
            for i in range(window):
                buf.push(xyzv[i % len(xyzv)])
            samples = np.empty(pushes)
            c = time.process_time()
            for i in range(pushes):
                frame = xyzv[i % len(xyzv)]
                t = time.perf_counter()
                buf.push(frame)
                samples[i] = time.perf_counter() - t
            cpu.append((time.process_time() - c) / pushes)
            per_call.append(samples)
        s = np.concatenate(per_call) * 1000
        out[name] = {"median_ms": float(np.median(s)), "p99_ms": float(np.percentile(s, 99)),
                     "cpu_ms": float(np.median(cpu)) * 1000,
                     "columns": len(buf.spec.columns), "frame_features": buf.n_features}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="warm runs per tool on the example (median)")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="100 videos instead of 1,000")
    ap.add_argument("--skip-reference", action="store_true", help="time spml only")
    args = ap.parse_args()
    if not (EXAMPLE / "example_video.webm").exists():
        print(f"benchmarks/features.py: shared example data not found at {EXAMPLE}; skipped")
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    kp, ann = example_inputs()

    ours = time_spml(kp, ann, args.runs)
    med = statistics.median
    print(f"example ({len(ours['frames'])} frames), flatten_into_columns window 10, angles + distances + normalized "
          f"-> {ours['rows']} rows x {ours['columns']} columns; medians of {args.runs} warm runs, CPU time "
          "(wall clock in brackets; the machine is shared, so wall times wander):")
    o = {k: med(v) for k, v in ours.items() if k in ("build", "format", "build_cpu", "format_cpu")}
    o["all"], o["all_cpu"] = med(np.add(ours["build"], ours["format"])), med(np.add(ours["build_cpu"], ours["format_cpu"]))
    if args.skip_reference:
        print(f"  spml format_frames {o['format_cpu'] * 1000:.1f} ms [{o['format'] * 1000:.1f}]; "
              f"build from files + format {o['all_cpu'] * 1000:.1f} ms [{o['all'] * 1000:.1f}]")
    else:
        ref = time_reference(args.runs, ann)
        r = {k: med(v) for k, v in ref.items() if isinstance(v, list)}
        r["geo_fmt"] = med(np.add(ref["geometry"], ref["format"]))
        r["geo_fmt_cpu"] = med(np.add(ref["geometry_cpu"], ref["format_cpu"]))
        r["all"], r["all_cpu"] = med(np.add(ref["build"], ref["format"])), med(np.add(ref["build_cpu"], ref["format_cpu"]))
        rows = [
            ("keypoints -> features -> windowed rows", "geo_fmt", "format",
             "StreamPoseML: BlazePoseSequence geometry + serialize + format_dataset; spml: format_frames"),
            ("windowing only (its features precomputed)", "format", "format",
             "StreamPoseML: format_dataset over its stored angles/distances; spml still computes them"),
            ("files -> windowed rows", "all", "all",
             "StreamPoseML: 19 MB sequence JSON (features inside); spml: Parquet keypoints"),
        ]
        print(f"  {'':44s} {'StreamPoseML':>22s} {'spml':>18s} {'ratio':>14s}")
        for name, rk, ok, how in rows:
            rc, rw, oc, ow = r[rk + "_cpu"], r[rk], o[ok + "_cpu"], o[ok]
            print(f"  {name:44s} {rc * 1000:8.1f} ms [{rw * 1000:7.1f}] {oc * 1000:6.1f} ms [{ow * 1000:5.1f}] "
                  f"{rc / oc:6.1f}x [{rw / ow:5.1f}x]   ({how})")
        print("  target >= 20x")

    n_videos = 100 if args.quick else args.videos
    scale = time_scale(ours["frames"], n_videos, args.frames)
    print(f"scale: {n_videos} videos x {args.frames} frames = {scale['rows_in']:,} frames -> "
          f"{scale['rows_out']:,} rows x {scale['columns']} columns in {scale['cpu_seconds']:.1f} s CPU "
          f"[{scale['seconds']:.1f} s wall]: {scale['rows_in'] / scale['cpu_seconds']:,.0f} frames/s, "
          f"{scale['rows_out'] / scale['cpu_seconds']:,.0f} rows/s [wall: {scale['rows_in'] / scale['seconds']:,.0f}, "
          f"{scale['rows_out'] / scale['seconds']:,.0f}]; peak RSS {scale['peak_rss_gb']:.1f} GB")

    live = time_live(ours["frames"])
    for name, lr in live.items():
        print(f"live push, 30-frame window, {lr['frame_features']} features per frame, {name} "
              f"({lr['columns']} columns): {lr['cpu_ms']:.3f} ms CPU per frame; wall median {lr['median_ms']:.3f} ms, "
              f"p99 {lr['p99_ms']:.3f} ms (target <= 0.2 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
