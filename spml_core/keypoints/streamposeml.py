"""StreamPoseML's JSON layout (``spml extract --format streamposeml``), for code written against it.

Two outputs per video, as StreamPoseML 0.3.1 writes them (see docs/keypoints.md):

* ``<out>/keypoints/<video stem>/keypoints-0001.json`` ...: one file per frame, the 33 BlazePose
  joints with ``x, y, z`` (MediaPipe's normalised image coordinates) and ``x_normalized,
  y_normalized, z_normalized``;
* ``<out>/sequences/<video filename>_sequence.json``: ``{"name", "type": "BlazePoseSequence",
  "frames": {"1": frame, ...}}`` with 35 joints per frame (plus OpenPose-style ``neck`` and
  ``mid_hip``).

Deliberate differences from StreamPoseML, all documented in docs/keypoints.md:

* ``*_normalized`` is ``(x - mid_hip_x) / hip_width`` (StreamPoseML computes ``x / hip_width -
  mid_hip_x``), measured in pixels so x and y share one scale; z uses the same rule (z is on
  x's scale in MediaPipe). A frame whose hips coincide gets null, not a division error.
* ``angles`` and ``distances`` hold StreamPoseML's per-frame records (``angle_2d``, ``angle_2d_degrees``,
  ``angle_3d``, ``angle_3d_degrees``; ``distance_2d``, ``distance_3d`` and their ``_normalized``
  versions), so StreamPoseML's own dataset job reads every feature from these files. The values are
  spml's ``angles`` and ``distances`` feature extractors (docs/features.md: its 35 angles with
  StreamPoseML's bugs fixed, in pixel space; distances to the true plumb-line midpoint in pixels,
  ``_normalized`` divided by the hip width), found through the registry.
* Frame numbers here are 1-based (StreamPoseML's convention: ``frame_number = frame + 1``);
  spml's own Parquet uses the 0-based video frame index in its ``frame`` column.
* ``sequence_id`` is derived from the video's content hash, so re-running gives identical
  files; coordinates are rounded to 6 decimals; JSON is written compactly; NaN is null.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import (
    CHANNELS,
    EXTENDED_NAMES,
    INDEX,
    LANDMARK_NAMES,
    landmark_columns,
    with_derived_joints,
)
from spml_core.registry import Registry
from spml_core.util.atomic import write_text_atomic

if TYPE_CHECKING:
    import pyarrow as pa

    from spml_core.keypoints.sequence import PoseSequence

SEQUENCE_SOURCE = "mediapipe"
DECIMALS = 6
_COORDS = ("x", "y", "z", "x_normalized", "y_normalized", "z_normalized")


def sequence_json_path(out_dir: Path, video_filename: str) -> Path:
    """Where the per-video sequence JSON goes: <out_dir>/sequences/<video filename>_sequence.json."""
    return Path(out_dir) / "sequences" / f"{video_filename}_sequence.json"


def keypoints_dir_path(out_dir: Path, video_stem: str) -> Path:
    """Where the per-frame keypoint files go: <out_dir>/keypoints/<video stem>/."""
    return Path(out_dir) / "keypoints" / video_stem


def joint_coordinates(seq: PoseSequence) -> np.ndarray:
    """(frames, 35, 6) float64: x, y, z and their hip-normalised versions for 33 + neck + mid_hip."""
    xyz = with_derived_joints(seq.xyzv[:, :, :3].astype(np.float64))
    # Pixels, so that x and y (and z, on x's scale) share one unit before dividing by hip width.
    scale = np.array([seq.width or 1, seq.height or 1, seq.width or 1], dtype=np.float64)
    px = xyz * scale
    left, right = px[:, INDEX["left_hip"]], px[:, INDEX["right_hip"]]
    mid = (left + right) * 0.5
    hip_width = np.linalg.norm((left - right)[:, :2], axis=1)
    hip_width[hip_width == 0] = np.nan
    normalised = (px - mid[:, None, :]) / hip_width[:, None, None]
    return np.concatenate([xyz, normalised], axis=2)


def _as_json_values(values: np.ndarray) -> list[Any]:
    """Round and turn NaN into None (JSON null), vectorised; returns nested Python lists."""
    out = np.round(values, DECIMALS).astype(object)
    out[np.isnan(values)] = None
    return out.tolist()


def _measure(registry: Registry, name: str, options: dict[str, Any], seq: PoseSequence) -> tuple[list[str], np.ndarray]:
    extractor = registry.create("feature_extractor", name, options)
    values = extractor.transform(seq.xyzv, seq.width or 1, seq.height or 1)
    return extractor.columns(), np.asarray(values, dtype=np.float64)


def frame_measures(seq: PoseSequence, registry: Registry | None = None) -> tuple[list[dict], list[dict]]:
    """Per frame, StreamPoseML's ``angles`` and ``distances`` dicts, computed by spml's extractors."""
    reg = registry or Registry().load()
    a_cols, angles = _measure(reg, "angles", {"mode": "both"}, seq)
    n_angles = len(a_cols) // 2
    names = [c[: -len("_angle_2d_degrees")] for c in a_cols[:n_angles]]
    d_cols, raw = _measure(reg, "distances", {"mode": "both", "normalize": False}, seq)
    _, norm = _measure(reg, "distances", {"mode": "both", "normalize": True}, seq)
    n_dist = len(d_cols) // 2
    joints = [c[: -len("_to_plumb_line_distance_2d")] for c in d_cols[:n_dist]]
    vectors = _angle_vectors(names)
    deg2d, deg3d = _as_json_values(angles[:, :n_angles]), _as_json_values(angles[:, n_angles:])
    rad2d, rad3d = _as_json_values(np.radians(angles[:, :n_angles])), _as_json_values(np.radians(angles[:, n_angles:]))
    d2, d3 = _as_json_values(raw[:, :n_dist]), _as_json_values(raw[:, n_dist:])
    n2, n3 = _as_json_values(norm[:, :n_dist]), _as_json_values(norm[:, n_dist:])
    out_angles, out_distances = [], []
    for f in range(seq.n_frames):
        out_angles.append({
            name: {"type": "Angle", "vector_1": v1, "vector_2": v2, "name": name, "angle_2d": rad2d[f][i],
                   "angle_2d_degrees": deg2d[f][i], "angle_3d": rad3d[f][i], "angle_3d_degrees": deg3d[f][i]}
            for i, (name, (v1, v2)) in enumerate(zip(names, vectors))
        })
        out_distances.append({
            f"{j}_to_plumb_line": {"type": "Distance", "name": f"{j}_to_plumb_line", "joint_name": j,
                                   "vector_name": "plumb_line", "distance_2d": d2[f][i], "distance_3d": d3[f][i],
                                   "distance_2d_normalized": n2[f][i], "distance_3d_normalized": n3[f][i]}
            for i, j in enumerate(joints)
        })
    return out_angles, out_distances


def _angle_vectors(names: list[str]) -> list[tuple[str, str]]:
    """'<v1>_to_<v2>' -> (v1, v2); segment names never contain '_to_'."""
    return [tuple(n.split("_to_", 1)) for n in names]  # type: ignore[misc]


def sequence_id_for(seq: PoseSequence) -> int:
    """A stable integer id per video content (StreamPoseML used the wall clock in ns)."""
    sha = seq.source.sha256 if seq.source else ""
    return int(sha[:15], 16) if sha else 0


def build_sequence(seq: PoseSequence) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sequence dict and the per-frame keypoint dicts, in StreamPoseML's shapes."""
    coords = _as_json_values(joint_coordinates(seq))
    detected = seq.detected.tolist()
    numbers = (seq.frame_index + 1).tolist()
    dims = {"height": seq.height, "width": seq.width}
    seq_id = sequence_id_for(seq)
    n_base = len(LANDMARK_NAMES)
    angles, distances = frame_measures(seq)
    frames: dict[str, Any] = {}
    keypoint_files: list[dict[str, Any]] = []
    for number, has_pose, joints, frame_angles, frame_distances in zip(numbers, detected, coords, angles, distances):
        if has_pose:
            seq_joints = {
                name: {"type": "Joint", "name": name, "image_dimensions": dims, **dict(zip(_COORDS, v))}
                for name, v in zip(EXTENDED_NAMES, joints)
            }
            raw_joints = {name: dict(zip(_COORDS, v)) for name, v in zip(LANDMARK_NAMES, joints[:n_base])}
        else:
            seq_joints, raw_joints = {}, {}
        head = {"sequence_id": seq_id, "sequence_source": SEQUENCE_SOURCE, "frame_number": number,
                "image_dimensions": dims}
        frames[str(number)] = {
            "type": "BlasePoseFrame",  # sic: StreamPoseML's spelling, which its readers expect
            **head,
            "has_joint_positions": bool(has_pose),
            "joint_positions": seq_joints,
            "angles": frame_angles if has_pose else {},
            "distances": frame_distances if has_pose else {},
        }
        keypoint_files.append({**head, "joint_positions": raw_joints})
    name = Path(seq.source.path).name if seq.source else ""
    return {"name": name, "type": "BlazePoseSequence", "frames": frames}, keypoint_files


def write_streamposeml(
    seq: PoseSequence,
    out_dir: Path,
    *,
    keypoints_dir: Path | None = None,
    sequences_dir: Path | None = None,
    write_keypoints: bool = True,
    write_sequence: bool = True,
    include_sequence: bool = False,
) -> dict[str, Any]:
    """Write the per-frame keypoint JSON files and the sequence JSON of one video; return their paths.

    Default places are under ``out_dir`` (``keypoints/<stem>/``, ``sequences/``); the seed API
    facade passes its own folders. Both outputs are replaced atomically, the sequence JSON last,
    so its presence means the video's legacy outputs are complete. ``include_sequence`` adds the
    sequence dict itself to the result (under "sequence").
    """
    if seq.source is None:
        raise ValueError("write_streamposeml needs a PoseSequence with a source video")
    video = Path(seq.source.path)
    sequence, keypoint_files = build_sequence(seq)
    result: dict[str, Any] = {"frames": seq.n_frames}
    if include_sequence:
        result["sequence"] = sequence
    if write_keypoints:
        kp_dir = (Path(keypoints_dir) / video.stem) if keypoints_dir else keypoints_dir_path(out_dir, video.stem)
        _replace_dir(kp_dir, {f"keypoints-{kp['frame_number']:04d}.json": kp for kp in keypoint_files})
        result["keypoints_dir"] = str(kp_dir)
    if write_sequence:
        seq_path = (
            Path(sequences_dir) / f"{video.name}_sequence.json"
            if sequences_dir
            else sequence_json_path(out_dir, video.name)
        )
        write_text_atomic(seq_path, json.dumps(sequence, separators=(",", ":")))
        result["sequence_json"] = str(seq_path)
    return result


def _replace_dir(target: Path, files: dict[str, Any]) -> None:
    """Write files into a fresh folder beside target, then swap it in (stale frames disappear)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the outputs are ordinary shared files
    old: Path | None = None
    try:
        for name, data in files.items():
            (tmp / name).write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous outputs back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(old)


# -- reading StreamPoseML's sequence JSON ------------------------------------------------------------
@dataclass
class KeypointTable:
    """One video's keypoint rows as Arrow columns: frame, timestamp_ms and the landmark columns."""

    table: pa.Table
    width: int
    height: int
    has_timestamps: bool = True



def read_sequence_json(path: Path) -> KeypointTable:
    """Read StreamPoseML's '<video>_sequence.json' (1-based frame numbers) as 0-based keypoint rows.

    These files hold x, y, z but neither visibility (NaN here) nor timestamps (NaN: only frame
    ranges can be aligned to them).
    """
    import pyarrow as pa

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpmlError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if isinstance(frames, dict):
        frames = list(frames.values())
    if not isinstance(frames, list):
        raise SpmlError(f"{path}: not a StreamPoseML sequence file (no 'frames')")
    n = len(frames)
    numbers = np.empty(n, dtype=np.int64)
    xyzv = np.full((n, len(LANDMARK_NAMES), len(CHANNELS)), np.nan, dtype=np.float32)
    width = height = 0
    nan = float("nan")
    for i, fr in enumerate(frames):  # parsing JSON objects: one dict per frame is the file's own layout
        try:
            numbers[i] = int(fr["frame_number"])
        except (KeyError, TypeError, ValueError):
            raise SpmlError(f"{path}: frame {i} has no frame_number") from None
        joints = fr.get("joint_positions") or {}
        if joints:
            try:
                xyzv[i, :, :3] = [
                    [nan if (v := j.get(c)) is None else v for c in ("x", "y", "z")]
                    for j in (joints[name] for name in LANDMARK_NAMES)
                ]
            except KeyError as exc:
                raise SpmlError(f"{path}: frame {numbers[i]} lacks joint {exc.args[0]!r}") from None
        dims = fr.get("image_dimensions") or {}
        width, height = width or int(dims.get("width") or 0), height or int(dims.get("height") or 0)
    order = np.argsort(numbers, kind="stable")
    numbers, xyzv = numbers[order], xyzv[order]
    flat = xyzv.reshape(n, -1)
    arrays = [pa.array(numbers - 1), pa.array(np.full(n, np.nan))] + [pa.array(flat[:, j]) for j in range(flat.shape[1])]
    table = pa.Table.from_arrays(arrays, names=["frame", "timestamp_ms", *landmark_columns()])
    return KeypointTable(table, width, height, has_timestamps=False)
