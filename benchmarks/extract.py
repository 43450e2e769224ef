"""Keypoint extraction throughput: `spml extract` against a bare MediaPipe loop and StreamPoseML 0.3.1.

    python benchmarks/extract.py [--video PATH] [--model full] [--repeat N] [--no-reference]

Each measurement runs in a fresh Python process on the same video (the shared example video
by default) and counts everything after imports: model loading, decoding, estimation and
writing outputs (spml: hashing, Parquet; StreamPoseML: its JSON files). Rows:

* bare loop: OpenCV decode + one BGR->RGB conversion + ``PoseLandmarker.detect_for_video``,
  the same .task bundle, nothing else: the ceiling for one process;
* spml extract with 1 worker on 1 video, 1 worker on 2 videos, 2 workers on 2 videos (the two
  videos are the same file under two names, so the work is identical);
* StreamPoseML 0.3.1 ``ProcessVideosJob.process_videos`` with CLAHE on (its notebook's
  setting) and off, in its own venv ``build/spml-ref-venv`` (created on first use as
  ../shared/REFERENCE.md says; skipped with a message if that is impossible).

Targets: one spml process >= 0.9x the bare loop; >= 1.5x StreamPoseML's frames/s; 2 videos on
2 workers >= 1.7x one worker. Other processes on the machine make every figure noisy: use
--repeat 3 (best of 3) on a quiet machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _reference import EXAMPLE, ref_python

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = EXAMPLE / "example_video.webm"


# -- measurements, each run in a child process (`--child KIND ...`) ------------------------
def cpu_seconds() -> float:
    """CPU time of this process and its finished children (spawned workers), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child_bare(video: Path, model: str) -> dict:
    """Decode + detect_for_video with nothing around it."""
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import pose_landmarker
    from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode

    from spml_pose_mediapipe.model_files import resolve_model

    bundle = str(resolve_model(model))
    start, cpu = time.perf_counter(), cpu_seconds()
    task = pose_landmarker.PoseLandmarker.create_from_options(pose_landmarker.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=bundle), running_mode=VisionTaskRunningMode.VIDEO))
    cap = cv2.VideoCapture(str(video))
    frames = detected = 0
    last = -1
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        last = max(int(cap.get(cv2.CAP_PROP_POS_MSEC)), last + 1)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        detected += bool(task.detect_for_video(image, last).pose_landmarks)
        frames += 1
    cap.release()
    task.close()
    return {"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu, "frames": frames,
            "detected": detected}


def child_spml(video: Path, model: str, videos: int, workers: int, clahe: bool) -> dict:
    """run_extract (what `spml extract` calls) on `videos` copies of the video."""
    import cv2  # noqa: F401  imported before the clock starts, as in the bare loop
    import mediapipe  # noqa: F401

    from spml_core.pipeline import run_extract

    with tempfile.TemporaryDirectory(prefix="spml-bench-") as tmp:
        src = Path(tmp) / "videos"
        src.mkdir()
        inputs = []
        for i in range(videos):
            link = src / f"video{i}{video.suffix}"
            link.symlink_to(video)
            inputs.append(link)
        out = Path(tmp) / "out"
        start, cpu = time.perf_counter(), cpu_seconds()
        results = run_extract(inputs, out, "mediapipe", {"model": model, "clahe": clahe},
                              executor_options={"workers": workers}, quiet=True)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        failed = [r.message for r in results if r.status != "written"]
        if failed:
            raise SystemExit(f"spml extract failed: {failed}")
        size = (out / "video0.parquet").stat().st_size
    return {"seconds": seconds, "cpu": cpu, "frames": sum(r.frames for r in results),
            "detected": sum(r.detected for r in results), "bytes_per_video": size}


REFERENCE_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
def cpu_seconds():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
video, clahe = Path(sys.argv[1]), sys.argv[2] == "1"
work = Path.cwd()
(work / "videos").mkdir()
(work / "videos" / video.name).symlink_to(video)
import stream_pose_ml.jobs.process_videos_job as pv
start, cpu = time.perf_counter(), cpu_seconds()
pv.ProcessVideosJob().process_videos(
    src_videos_path=str(work / "videos"), output_keypoints_data_path=str(work / "keypoints"),
    output_sequence_data_path=str(work / "sequences"), write_keypoints_to_file=True,
    write_serialized_sequence_to_file=True, limit=None, configuration={},
    preprocess_video=clahe, return_output=False)
seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
files = [p for p in work.rglob("*.json")]
seq = json.loads(next((work / "sequences").glob("*.json")).read_text())
frames = len(seq["frames"])
detected = sum(bool(f["joint_positions"]) for f in seq["frames"].values())
print(json.dumps({"seconds": seconds, "cpu": cpu, "frames": frames, "detected": detected,
                  "bytes_per_video": sum(p.stat().st_size for p in files), "files": len(files)}))
"""


# -- driver ------------------------------------------------------------------------------
def run_child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark step {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(repeat: int, measure) -> dict:
    runs = [measure() for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "fps": best["frames"] / best["seconds"], "cpu_fps": best["frames"] / best["cpu"]}


def measure_reference(python: Path, video: Path, clahe: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="spml-bench-ref-") as tmp:
        done = subprocess.run([str(python), "-P", "-c", REFERENCE_CHILD, str(video), "1" if clahe else "0"],
                              cwd=tmp, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"StreamPoseML run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio_line(name: str, value: float, target: float) -> str:
    verdict = "meets" if value >= target else "MISSES"
    return f"  {name:<58} {value:5.2f}x  (target >= {target}x: {verdict})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--model", default="full", help="lite|full|heavy (StreamPoseML uses full)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per row")
    parser.add_argument("--no-reference", action="store_true", help="skip StreamPoseML 0.3.1")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "bare":
            result = child_bare(Path(rest[0]), rest[1])
        else:
            video, model, videos, workers, clahe = rest
            result = child_spml(Path(video), model, int(videos), int(workers), clahe == "1")
        print(json.dumps(result))
        return 0

    video = args.video.resolve()
    if not video.exists():
        print(f"benchmark skipped: {video} not found (clone the project with ../shared beside it)")
        return 0
    print(f"== extraction benchmark: {video.name}, model {args.model}, best of {args.repeat}, "
          f"{os.cpu_count()} cores (shared machines: figures are noisy)")
    rows: dict[str, dict] = {}

    def spml_row(videos: int, workers: int, clahe: bool = False) -> dict:
        return best_of(args.repeat, lambda: run_child(
            ["spml", str(video), args.model, str(videos), str(workers), "1" if clahe else "0"]))

    rows["bare MediaPipe Tasks loop (decode + detect)"] = best_of(
        args.repeat, lambda: run_child(["bare", str(video), args.model]))
    rows["spml extract, 1 worker, 1 video"] = spml_row(1, 1)
    rows["spml extract, 1 worker, 1 video, clahe"] = spml_row(1, 1, clahe=True)
    rows["spml extract, 1 worker, 2 videos"] = spml_row(2, 1)
    rows["spml extract, 2 workers, 2 videos"] = spml_row(2, 2)
    rows["spml extract, 2 workers, 2 videos, clahe"] = spml_row(2, 2, clahe=True)
    python = None if args.no_reference else ref_python("stream_pose_ml.jobs.process_videos_job", required=False)
    if python is not None:
        for clahe in (True, False):
            label = f"StreamPoseML 0.3.1 ProcessVideosJob, CLAHE {'on' if clahe else 'off'}"
            rows[label] = best_of(args.repeat, lambda c=clahe: measure_reference(python, video, c))

    print(f"  {'':<58} {'frames/s':>8} {'per CPU-s':>9}")
    for label, r in rows.items():
        size = f"{r['bytes_per_video'] / 1e6:6.2f} MB/video" if "bytes_per_video" in r else ""
        print(f"  {label:<58} {r['fps']:8.1f} {r['cpu_fps']:9.1f}  ({r['frames']} frames, person in "
              f"{r['detected']}, {r['seconds']:.1f} s) {size}")
    print(f"load average after the runs: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(more than {os.cpu_count()} means other work competed for the cores)")

    one = rows["spml extract, 1 worker, 1 video"]["fps"]
    bare = rows["bare MediaPipe Tasks loop (decode + detect)"]
    print("ratios (wall-clock frames/s):")
    print(ratio_line("spml 1 process / bare loop", one / bare["fps"], 0.9))
    print(ratio_line("spml 1 process / bare loop, per CPU-second (load-independent)",
                     rows["spml extract, 1 worker, 1 video"]["cpu_fps"] / bare["cpu_fps"], 0.9))
    two = rows["spml extract, 2 workers, 2 videos"]["fps"] / rows["spml extract, 1 worker, 2 videos"]["fps"]
    print(ratio_line("2 workers on 2 videos / 1 worker on 2 videos", two, 1.7))
    if python is not None:
        ref_on = rows["StreamPoseML 0.3.1 ProcessVideosJob, CLAHE on"]
        ref_off = rows["StreamPoseML 0.3.1 ProcessVideosJob, CLAHE off"]
        par = rows["spml extract, 2 workers, 2 videos"]["fps"]
        par_clahe = rows["spml extract, 2 workers, 2 videos, clahe"]["fps"]
        one_clahe = rows["spml extract, 1 worker, 1 video, clahe"]["fps"]
        print(ratio_line("spml default workers, CLAHE on / StreamPoseML CLAHE on", par_clahe / ref_on["fps"], 1.5))
        print(ratio_line("spml default workers, CLAHE off / StreamPoseML CLAHE on", par / ref_on["fps"], 1.5))
        print(ratio_line("spml default workers, CLAHE off / StreamPoseML CLAHE off", par / ref_off["fps"], 1.5))
        print(ratio_line("spml 1 process, CLAHE on / StreamPoseML CLAHE on", one_clahe / ref_on["fps"], 1.5))
        print(ratio_line("spml 1 process, CLAHE off / StreamPoseML CLAHE off", one / ref_off["fps"], 1.5))
        ours = rows["spml extract, 1 worker, 1 video"]["bytes_per_video"]
        print(f"output per video: spml Parquet {ours / 1e6:.2f} MB vs StreamPoseML JSON "
              f"{ref_on['bytes_per_video'] / 1e6:.1f} MB in {ref_on['files']} files "
              f"({ref_on['bytes_per_video'] / ours:.0f}x larger)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
