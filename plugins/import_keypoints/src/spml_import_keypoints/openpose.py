"""OpenPoseImporter: OpenPose BODY_25 output, one ``<video>_<frame:012d>_keypoints.json`` file per frame.

BODY_25's joints are mapped onto BlazePose's 33 (nose, eyes, ears, shoulders, elbows, wrists, hips,
knees, ankles, heels, big toes as foot index); BlazePose joints OpenPose lacks (inner/outer eyes, mouth,
hands) are NaN, z is 0 and visibility is OpenPose's confidence (0: not found -> NaN). Coordinates are
pixels: give the frame size (``width``/``height``) or it is inferred from the largest x and y.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core import LANDMARK_NAMES, N_LANDMARKS, PoseSequence, file_sha256
from spml_core.components import ImportedKeypoints, KeypointImporter
from spml_core.components import Options as BaseOptions
from spml_core.errors import SpmlError

BODY25_TO_BLAZEPOSE = {
    0: "nose", 2: "right_shoulder", 3: "right_elbow", 4: "right_wrist", 5: "left_shoulder", 6: "left_elbow",
    7: "left_wrist", 9: "right_hip", 10: "right_knee", 11: "right_ankle", 12: "left_hip", 13: "left_knee",
    14: "left_ankle", 15: "right_eye", 16: "left_eye", 17: "right_ear", 18: "left_ear", 19: "left_foot_index",
    21: "left_heel", 22: "right_foot_index", 24: "right_heel",
}
FRAME_FILE = re.compile(r"^(?P<video>.*?)_?(?P<frame>\d+)_keypoints\.json$")


class OpenPoseImporter(KeypointImporter):
    """OpenPose BODY_25 JSON, a file per frame, grouped into one sequence per video name."""

    name: ClassVar[str] = "openpose"
    description: ClassVar[str] = "OpenPose BODY_25 JSON per frame (<video>_<frame>_keypoints.json)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*_keypoints.json",)

    class Options(BaseOptions):
        """Options of the OpenPose importer."""

        width: int | None = Field(None, gt=0, description="Frame width in pixels (default: inferred)")
        height: int | None = Field(None, gt=0, description="Frame height in pixels (default: inferred)")
        fps: float = Field(30.0, gt=0, description="Frame rate of the video (timestamps = frame / fps)")
        person: Literal["most_confident", "first"] = Field(
            "most_confident", description="Which detected person to keep per frame")

    def read(self, path: Path) -> list[ImportedKeypoints]:
        """A folder of per-frame files (or one file) -> one sequence per video name."""
        path = Path(path)
        files = [path] if path.is_file() else sorted(path.rglob("*_keypoints.json"))
        if not files:
            raise SpmlError(f"{path}: no OpenPose files (*_keypoints.json) found")
        videos: dict[str, list[tuple[int, Path]]] = {}
        for f in files:
            m = FRAME_FILE.match(f.name)
            if not m:
                raise SpmlError(f"{f}: not named <video>_<frame>_keypoints.json")
            videos.setdefault(m["video"] or path.name, []).append((int(m["frame"]), f))
        idx = np.array([LANDMARK_NAMES.index(n) for n in BODY25_TO_BLAZEPOSE.values()])
        src = np.array(list(BODY25_TO_BLAZEPOSE))
        out = []
        for video, frames in videos.items():
            frames.sort()
            xyzv = np.full((len(frames), N_LANDMARKS, 4), np.nan)
            for i, (_, f) in enumerate(frames):
                pts = self._person(f)
                if pts is None:
                    continue
                found = pts[src, 2] > 0
                xyzv[i, idx[found], 0] = pts[src[found], 0]
                xyzv[i, idx[found], 1] = pts[src[found], 1]
                xyzv[i, idx[found], 2] = 0.0
                xyzv[i, idx[found], 3] = pts[src[found], 2]
            w, h, size_from = self._size(path, xyzv)
            xyzv[:, :, 0] /= w
            xyzv[:, :, 1] /= h
            numbers = np.array([n for n, _ in frames])
            if len(set(numbers.tolist())) != len(numbers):
                raise SpmlError(f"{path}: video '{video}' has two files for one frame number")
            name = re.sub(r"[^\w.-]+", "_", video).strip("._") or "video"
            o = self.options
            prov = {"name": name, "format": self.name, "file": str(path), "files": len(frames),
                    "sha256": file_sha256(frames[0][1]), "options": o.model_dump(mode="json"), "frame_size": size_from,
                    "note": "BODY_25 mapped to BlazePose; z is 0; visibility is OpenPose's confidence"}
            out.append(ImportedKeypoints(name, PoseSequence(
                xyzv=xyzv.astype(np.float32), frame_index=numbers, timestamps_ms=numbers * (1000.0 / o.fps),  # type: ignore[attr-defined]
                fps=o.fps, width=w, height=h, provenance=prov)))  # type: ignore[attr-defined]
        return out

    def _person(self, f: Path) -> np.ndarray | None:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SpmlError(f"{f}: cannot read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise SpmlError(f"{f}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        people = data.get("people") if isinstance(data, dict) else None
        if not isinstance(people, list):
            raise SpmlError(f"{f}: not an OpenPose file (no 'people' list)")
        best, score = None, -1.0
        for j, p in enumerate(people):
            flat = p.get("pose_keypoints_2d") if isinstance(p, dict) else None
            if not isinstance(flat, list) or len(flat) != 75:
                raise SpmlError(f"{f}: people[{j}].pose_keypoints_2d must hold 75 numbers (BODY_25: 25 x x,y,c), "
                                f"got {len(flat) if isinstance(flat, list) else type(flat).__name__}")
            try:
                pts = np.asarray(flat, dtype=np.float64).reshape(25, 3)
            except (TypeError, ValueError):
                raise SpmlError(f"{f}: people[{j}].pose_keypoints_2d holds a value that is not a number") from None
            s = float(pts[:, 2].sum())
            if self.options.person == "first":  # type: ignore[attr-defined]
                return pts
            if s > score:
                best, score = pts, s
        return best

    def _size(self, path: Path, xyzv: np.ndarray) -> tuple[int, int, str]:
        o = self.options
        if o.width and o.height:  # type: ignore[attr-defined]
            return o.width, o.height, "given"  # type: ignore[attr-defined]
        if o.width or o.height:  # type: ignore[attr-defined]
            raise SpmlError(f"{path}: give both width and height")
        if np.isnan(xyzv[:, :, 0]).all():
            raise SpmlError(f"{path}: no person in any frame to infer the frame size from; set width and height")
        return (max(1, int(math.ceil(np.nanmax(xyzv[:, :, 0])))), max(1, int(math.ceil(np.nanmax(xyzv[:, :, 1])))),
                "inferred from the largest x and y")
