"""What the benchmarks share: paths, logging, and StreamPoseML 0.3.1 in its own venv for side-by-side figures.

StreamPoseML runs in build/spml-ref-venv (created on first use, a few minutes), always as
`python -P` from a neutral folder, so that this repository's own `stream_pose_ml/` facade can
never shadow the real package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from spml_core.errors import SpmlError
from spml_core.util.example_data import SHARED_EXAMPLE, example_dir

ROOT = Path(__file__).resolve().parents[1]
REF_VENV = ROOT / "build" / "spml-ref-venv"
REF_PINS = ["stream_pose_ml==0.3.1", "mediapipe==0.10.21", "numpy==1.24.2", "scipy==1.11.2"]
# StreamPoseML's sequence JSON of the example, written once by its own ProcessVideosJob.
REF_SEQUENCES = ROOT / "build" / "bench-dataset" / "ref-sequences"
SEED_SCHEMA = """annotation_schema:
  annotations_key: "annotations"
  annotation_fields:
    label: label
    start_frame: metadata.system.frame
    end_frame: metadata.system.endFrame
  label_class_mapping:
    Left Step: step_type
    Right Step: step_type
    Successful Weight Transfer: weight_transfer_type
    Failure Weight Transfer: weight_transfer_type
"""

REF_PROCESS = r"""
import sys
import stream_pose_ml.jobs.process_videos_job as pv
pv.ProcessVideosJob().process_videos(
    src_videos_path=sys.argv[1], output_keypoints_data_path=sys.argv[2], output_sequence_data_path=sys.argv[3],
    write_keypoints_to_file=False, write_serialized_sequence_to_file=True, limit=None, configuration={},
    preprocess_video=True, return_output=False)
"""


def log(msg: str) -> None:
    """Progress notes go to stderr, so stdout keeps only the figures."""
    print(msg, file=sys.stderr, flush=True)


# StreamPoseML's example: ../shared/data when beside the clone, else the copy `make setup` fetched from PyPI.
try:
    EXAMPLE = example_dir()
except SpmlError as _exc:
    log(str(_exc))
    EXAMPLE = SHARED_EXAMPLE


def ref_workdir() -> Path:
    """A folder with only the seed schema as config.yml: StreamPoseML looks for it from the cwd up."""
    work = ROOT / "build" / "bench-ref-work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yml").write_text(SEED_SCHEMA, encoding="utf-8")
    return work


def ref_python(probe: str = "stream_pose_ml", required: bool = True) -> Path | None:
    """The reference venv's python, creating it if `import <probe>` fails there.

    With ``required=False`` an install that fails is logged and None returned, so a benchmark
    can still print its own figures without the comparison.
    """
    py = REF_VENV / "bin" / "python"
    check = [str(py), "-P", "-c", f"import {probe}"]
    if py.exists() and subprocess.run(check, capture_output=True, cwd=ref_workdir()).returncode == 0:
        return py
    log(f"creating {REF_VENV} with {' '.join(REF_PINS)} (a few minutes, once)")
    try:
        if not py.exists():  # never delete a venv: another benchmark may be using it
            subprocess.run([shutil.which("python3.11") or sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REF_PINS],
                       check=True)
        if subprocess.run(check, capture_output=True, cwd=ref_workdir()).returncode != 0:
            raise RuntimeError(f"{REF_VENV} cannot import {probe}")
    except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
        if required:
            raise
        log(f"StreamPoseML comparison skipped: cannot install {' '.join(REF_PINS)} ({exc})")
        return None
    return py


def ref_sequences(py: Path) -> Path:
    """StreamPoseML's sequence JSON of the example video, from its own ProcessVideosJob (cached)."""
    if (REF_SEQUENCES / "example_video.webm_sequence.json").is_file():
        return REF_SEQUENCES
    cache = REF_SEQUENCES.parent
    videos = cache / "ref-videos"
    videos.mkdir(parents=True, exist_ok=True)
    link = videos / "example_video.webm"
    if not link.exists():
        link.symlink_to(EXAMPLE / "example_video.webm")
    log("running StreamPoseML's ProcessVideosJob on the example video (once; cached)")
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".ref-sequences-"))
    subprocess.run([str(py), "-P", "-c", REF_PROCESS, str(videos), str(cache / "ref-keypoints"), str(tmp)],
                   cwd=ref_workdir(), check=True, stdout=subprocess.DEVNULL)
    if REF_SEQUENCES.exists():
        shutil.rmtree(REF_SEQUENCES)
    os.replace(tmp, REF_SEQUENCES)
    return REF_SEQUENCES
