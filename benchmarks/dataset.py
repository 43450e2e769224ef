"""Benchmark: building datasets (keypoints + annotations -> a table with a row per frame).

1. The example video (382 frames): spml (`build_dataset` + CSV) against StreamPoseML 0.3.1
   (`build_dataset_from_data_files` + `format_dataset(segmentation_strategy="none", no angles,
   distances or normalized)` + `write_dataset_to_csv`), the same table each way: a row per frame
   with the joints' x, y, z and the two label columns. Both are timed in a warm process (median
   of several runs) and as a whole fresh process (imports included). Target: >= 20x.
2. Scale: 1,000 synthetic videos x 3,000 frames (3M rows) made from the real example by
   repetition (its keypoints tiled, its annotations repeated every 382 frames). Target: < 60 s.

StreamPoseML runs in its own venv (build/spml-ref-venv, created here if absent), and reads the
sequence JSON its own ProcessVideosJob writes (made once, cached under build/bench-dataset/).
Run: .venv/bin/python benchmarks/dataset.py [--quick] [--videos N --frames N]
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
from _reference import EXAMPLE, ROOT, log, ref_python, ref_sequences, ref_workdir

CACHE = ROOT / "build" / "bench-dataset"
REF_TIMING = r"""
import json, sys, time
t0 = time.perf_counter()
import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder
t_import = time.perf_counter() - t0
ann, seq, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
db = data_builder.BuildAndFormatDatasetJob()
build, write, rows = [], [], 0
for _ in range(runs):
    t = time.perf_counter()
    dataset = db.build_dataset_from_data_files(annotations_data_directory=ann, sequence_data_directory=seq, limit=None)
    formatted = db.format_dataset(dataset=dataset, pool_frame_data_by_clip=False, decimal_precision=4,
                                  include_unlabeled_data=True, include_angles=False, include_distances=False,
                                  include_normalized=False, include_joints=True, include_z_axis=True,
                                  segmentation_strategy="none")
    t1 = time.perf_counter()
    db.write_dataset_to_csv(csv_location=out, formatted_dataset=formatted, filename="reference")
    build.append(t1 - t)
    write.append(time.perf_counter() - t1)
    rows = len(formatted)
print(json.dumps({"import_s": t_import, "build": build, "write": write, "rows": rows}))
"""

# -- StreamPoseML side ----------------------------------------------------------------------------

def time_reference(py: Path, seq_dir: Path, runs: int) -> dict:
    """StreamPoseML's build + format + CSV, warm (in one process) and cold (a whole process)."""
    out = CACHE / "ref-out"
    out.mkdir(parents=True, exist_ok=True)
    ann = CACHE / "annotations-example"
    t = time.perf_counter()
    res = subprocess.run([py, "-P", "-c", REF_TIMING, str(ann), str(seq_dir), str(out), str(runs)],
                         cwd=ref_workdir(), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    data = json.loads(res.stdout.strip().splitlines()[-1])
    t = time.perf_counter()
    subprocess.run([py, "-P", "-c", REF_TIMING, str(ann), str(seq_dir), str(out), "1"],
                   cwd=ref_workdir(), check=True, capture_output=True, text=True)
    data["cold_s"] = time.perf_counter() - t
    data["wall_s"] = wall
    return data


# -- spml side --------------------------------------------------------------------------------------

def example_inputs() -> tuple[Path, Path]:
    """spml keypoints of the example video (real MediaPipe, full model; skipped when up to date)."""
    from spml_core.pipeline import run_extract

    kp = CACHE / "keypoints-example"
    run_extract(EXAMPLE / "example_video.webm", kp, "mediapipe", {"model": "full"}, quiet=True)
    ann = CACHE / "annotations-example"
    ann.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE / "example_video.json", ann / "example_video.json")
    return kp, ann


def time_spml(kp: Path, ann: Path, runs: int) -> dict:
    """spml's build_dataset + CSV, warm (median of runs) and cold (`spml dataset` as a process)."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.registry import Registry

    out = CACHE / "spml-out" / "example.csv"
    # A warm process holds its plugin registry, as an app or notebook does (loading it costs ~5-10 ms).
    registry = Registry().load()
    build, write, rows = [], [], 0
    for _ in range(runs):
        t = time.perf_counter()
        df, _ = build_dataset(kp, ann, AnnotationSchema(), registry=registry)
        t1 = time.perf_counter()
        write_dataset(df, out)
        build.append(t1 - t)
        write.append(time.perf_counter() - t1)
        rows = len(df)
    t = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "spml"), "dataset", "--keypoints", str(kp), "--annotations",
                    str(ann), "--out", str(out), "-q"], check=True, cwd=CACHE)
    return {"build": build, "write": write, "rows": rows, "cold_s": time.perf_counter() - t}


def synthetic_inputs(kp: Path, ann: Path, n_videos: int, n_frames: int) -> tuple[Path, Path]:
    """n_videos keypoint files of n_frames each (the example tiled) + annotations repeated per 382 frames."""
    from spml_core.keypoints.sequence import PoseSequence, VideoSource, load_keypoints, read_keypoint_meta

    base = load_keypoints(kp / "example_video.parquet")
    period = base.n_frames
    root = CACHE / f"synthetic-{n_videos}x{n_frames}"
    kdir, adir = root / "keypoints", root / "annotations"
    stamp = root / ".complete"
    if stamp.exists():
        return kdir, adir
    kdir.mkdir(parents=True, exist_ok=True)
    adir.mkdir(parents=True, exist_ok=True)
    reps = -(-n_frames // period)
    xyzv = np.tile(base.xyzv, (reps, 1, 1))[:n_frames]
    world = np.tile(base.world, (reps, 1, 1))[:n_frames] if base.world is not None else None
    # Real timestamps of a 30.003 fps decode (whole ms), as the example's.
    ts = np.round(np.arange(n_frames) * 1000 / 30.003)
    seed_anns = json.loads((ann / "example_video.json").read_text())["annotations"]
    anns = []
    for k in range(reps):
        for a in seed_anns:
            s = a["metadata"]["system"]
            if s["endFrame"] + k * period < n_frames:
                anns.append({"label": a["label"], "metadata": {"system": {
                    "frame": s["frame"] + k * period, "endFrame": s["endFrame"] + k * period}}})
    log(f"writing {n_videos} synthetic keypoint files of {n_frames} frames (once; cached in {root})")
    for i in range(n_videos):
        stem = f"video_{i:04d}"
        out = kdir / f"{stem}.parquet"
        if not (out.exists() and read_keypoint_meta(out)):
            # A small per-video shift keeps every file's content distinct.
            PoseSequence(xyzv=xyzv + np.float32(i * 1e-5), world=world, frame_index=np.arange(n_frames),
                         timestamps_ms=ts, fps=base.fps, width=base.width, height=base.height,
                         source=VideoSource(path=f"{stem}.webm", sha256=f"{i:064d}")).save(out)
        (adir / f"{stem}.json").write_text(json.dumps({"name": f"{stem}.webm", "annotations": anns}))
    stamp.touch()
    return kdir, adir


def time_scale(kdir: Path, adir: Path) -> dict:
    """One build over all synthetic videos (fresh registry, as the CLI does), then a Parquet write."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset

    t = time.perf_counter()
    df, report = build_dataset(kdir, adir, AnnotationSchema(), quiet=False)
    build_s = time.perf_counter() - t
    out = CACHE / "spml-out" / "scale.parquet"
    t = time.perf_counter()
    write_dataset(df, out)
    write_s = time.perf_counter() - t
    res = {"rows": len(df), "columns": df.shape[1], "videos": len(report.videos), "build_s": build_s,
           "write_parquet_s": write_s, "annotations": report.annotations_total,
           "labeled": {c: int(df[c].notna().sum()) for c in report.classes},
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}
    out.unlink()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="warm runs per tool on the example (median)")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="100 videos instead of 1,000")
    ap.add_argument("--skip-reference", action="store_true", help="time spml only")
    args = ap.parse_args()
    if not (EXAMPLE / "example_video.webm").exists():
        print(f"benchmarks/dataset.py: shared example data not found at {EXAMPLE}; skipped")
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    kp, ann = example_inputs()

    ours = time_spml(kp, ann, args.runs)
    med = statistics.median
    o_build, o_total = med(ours["build"]), med(b + w for b, w in zip(ours["build"], ours["write"]))
    print(f"example video ({ours['rows']} rows; warm process, median of {args.runs} runs):")
    print(f"  spml          build {o_build * 1000:7.1f} ms, build + CSV {o_total * 1000:7.1f} ms "
          f"({ours['rows'] / o_total:,.0f} frames/s); whole `spml dataset` process {ours['cold_s']:.2f} s")
    if not args.skip_reference:
        py = ref_python()
        ref = time_reference(py, ref_sequences(py), args.runs)
        r_build, r_total = med(ref["build"]), med(b + w for b, w in zip(ref["build"], ref["write"]))
        print(f"  StreamPoseML  build {r_build * 1000:7.1f} ms, build + CSV {r_total * 1000:7.1f} ms "
              f"({ref['rows'] / r_total:,.0f} frames/s); whole process {ref['cold_s']:.2f} s "
              f"(import {ref['import_s']:.2f} s)")
        print(f"  ratio         build {r_build / o_build:.1f}x, build + CSV {r_total / o_total:.1f}x, "
              f"whole process {ref['cold_s'] / ours['cold_s']:.1f}x (target >= 20x)")

    n_videos = 100 if args.quick else args.videos
    kdir, adir = synthetic_inputs(kp, ann, n_videos, args.frames)
    scale = time_scale(kdir, adir)
    print(f"scale: {scale['videos']} videos x {args.frames} frames = {scale['rows']:,} rows x {scale['columns']} "
          f"columns, {scale['annotations']:,} annotations")
    print(f"  build {scale['build_s']:.1f} s ({scale['rows'] / scale['build_s']:,.0f} rows/s; target < 60 s for "
          f"3M rows), Parquet write {scale['write_parquet_s']:.1f} s, peak RSS {scale['peak_rss_gb']:.1f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
