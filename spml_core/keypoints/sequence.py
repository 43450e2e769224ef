"""PoseSequence: the keypoints of one video, and its Parquet file format (one file per video)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spml_core.errors import SpmlError
from spml_core.keypoints.skeleton import (
    CHANNELS,
    LANDMARK_NAMES,
    N_LANDMARKS,
    WORLD_CHANNELS,
    landmark_columns,
)
from spml_core.util.atomic import atomic_path

FORMAT_VERSION = 1
_META_KEY = b"spml.pose_sequence"
SESSION_KEYPOINTS = "keypoints.parquet"  # the keypoints of a session folder written by spml serve


class VideoSource(BaseModel):
    """Where the keypoints came from: the video path and a hash of its content."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Path of the video as given to the estimator")
    sha256: str = Field(description="SHA-256 of the video file's bytes")


class EstimatorInfo(BaseModel):
    """Which pose estimator produced the keypoints, and how it was configured."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class PoseSequence(BaseModel):
    """Keypoints of one video: BlazePose's 33 landmarks per frame, with timing and provenance.

    ``xyzv`` has shape (frames, 33, 4): normalised x, y (0..1 of width/height), z and
    visibility; NaN where no person was found. ``world`` (frames, 33, 3) holds metres
    around the mid-hip when the estimator provides it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    xyzv: np.ndarray
    world: np.ndarray | None = None
    frame_index: np.ndarray = Field(description="0-based index of each row's frame in the video")
    timestamps_ms: np.ndarray = Field(description="Presentation time of each frame in milliseconds")
    fps: float = Field(ge=0, description="Nominal frame rate reported by the container")
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    source: VideoSource | None = None
    estimator: EstimatorInfo | None = None
    provenance: dict[str, Any] | None = Field(
        None, description="Where imported keypoints came from (`spml import`): format, file, its hash, options"
    )

    @field_validator("xyzv", mode="before")
    @classmethod
    def _as_xyzv(cls, v: Any) -> np.ndarray:
        arr = np.asarray(v, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1:] != (N_LANDMARKS, 4):
            raise ValueError(f"xyzv must have shape (frames, {N_LANDMARKS}, 4), got {arr.shape}")
        return arr

    @field_validator("world", mode="before")
    @classmethod
    def _as_world(cls, v: Any) -> np.ndarray | None:
        if v is None:
            return None
        arr = np.asarray(v, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1:] != (N_LANDMARKS, 3):
            raise ValueError(f"world must have shape (frames, {N_LANDMARKS}, 3), got {arr.shape}")
        return arr

    @field_validator("frame_index", mode="before")
    @classmethod
    def _as_index(cls, v: Any) -> np.ndarray:
        return np.asarray(v, dtype=np.int64).reshape(-1)

    @field_validator("timestamps_ms", mode="before")
    @classmethod
    def _as_times(cls, v: Any) -> np.ndarray:
        return np.asarray(v, dtype=np.float64).reshape(-1)

    @model_validator(mode="after")
    def _lengths_agree(self) -> PoseSequence:
        n = len(self.xyzv)
        for name in ("frame_index", "timestamps_ms"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} frames")
        if self.world is not None and len(self.world) != n:
            raise ValueError(f"world has {len(self.world)} frames for {n} frames of xyzv")
        return self

    @property
    def n_frames(self) -> int:
        """Number of frames (rows)."""
        return int(self.xyzv.shape[0])

    @property
    def detected(self) -> np.ndarray:
        """Boolean mask of frames where a person was found."""
        return ~np.isnan(self.xyzv[:, :, 0]).all(axis=1)

    @property
    def name(self) -> str:
        """The video's stem, used to match annotations and name outputs."""
        if self.source:
            return Path(self.source.path).stem
        return str((self.provenance or {}).get("name", ""))

    def meta(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-able data."""
        return {
            "format_version": FORMAT_VERSION,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "n_frames": self.n_frames,
            "source": self.source.model_dump() if self.source else None,
            "estimator": self.estimator.model_dump() if self.estimator else None,
            "landmarks": list(LANDMARK_NAMES),
            "has_world": self.world is not None,
            "provenance": self.provenance,
        }

    def to_frame_table(self) -> Any:
        """A pandas DataFrame with a row per frame: frame, timestamp_ms, <joint>_<channel>."""
        import pandas as pd

        cols: dict[str, Any] = {"frame": self.frame_index, "timestamp_ms": self.timestamps_ms}
        flat = self.xyzv.reshape(self.n_frames, N_LANDMARKS * len(CHANNELS))
        data = pd.DataFrame(flat, columns=landmark_columns())
        parts = [pd.DataFrame(cols), data]
        if self.world is not None:
            wflat = self.world.reshape(self.n_frames, N_LANDMARKS * len(WORLD_CHANNELS))
            parts.append(pd.DataFrame(wflat, columns=landmark_columns(world=True)))
        return pd.concat(parts, axis=1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the sequence to a Parquet file atomically (temp file + rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = [pa.array(self.frame_index), pa.array(self.timestamps_ms)]
        names = ["frame", "timestamp_ms"]
        flat = self.xyzv.reshape(self.n_frames, N_LANDMARKS * len(CHANNELS))
        arrays += [pa.array(flat[:, i]) for i in range(flat.shape[1])]
        names += landmark_columns()
        if self.world is not None:
            wflat = self.world.reshape(self.n_frames, N_LANDMARKS * len(WORLD_CHANNELS))
            arrays += [pa.array(wflat[:, i]) for i in range(wflat.shape[1])]
            names += landmark_columns(world=True)
        table = pa.Table.from_arrays(arrays, names=names)
        table = table.replace_schema_metadata({_META_KEY: json.dumps(self.meta()).encode()})
        path = Path(path)
        with atomic_path(path) as tmp:
            # LZ4 without dictionary pages: per-column zstd/dictionary decoding cost ~60 us per column,
            # which made reading these wide files 6-10x slower (benchmarks/dataset.py), and was larger.
            pq.write_table(table, tmp, compression="lz4", use_dictionary=False)
        return path


def checked_keypoint_meta(path: Path, schema_metadata: dict[bytes, bytes] | None, columns: list[str]) -> dict[str, Any]:
    """The spml metadata of a keypoint Parquet file, once its metadata, format version and columns check out."""
    raw = (schema_metadata or {}).get(_META_KEY)
    if raw is None:
        raise SpmlError(f"{path}: Parquet file has no spml keypoint metadata (not written by `spml extract`?)")
    meta = parse_keypoint_meta(raw, path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise SpmlError(f"{path}: unsupported keypoint format version {meta.get('format_version')!r}")
    missing = [c for c in ["frame", "timestamp_ms", *landmark_columns()] if c not in columns]
    if missing:
        raise SpmlError(f"{path}: keypoint file lacks columns {missing[:5]}")
    return meta


def load_keypoints(path: str | os.PathLike[str]) -> PoseSequence:
    """Read a PoseSequence from a Parquet file written by PoseSequence.save, or from a session folder."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        # A session folder recorded by spml serve (docs/web_app.md) keeps its keypoints in one file.
        inner = path / SESSION_KEYPOINTS
        if not inner.is_file():
            raise SpmlError(f"{path}: a folder, but not a recorded session (no {SESSION_KEYPOINTS} in it)")
        path = inner
    if not path.exists():
        raise SpmlError(f"{path}: keypoint file not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SpmlError(f"{path}: not a readable Parquet keypoint file ({exc})") from exc
    meta = checked_keypoint_meta(path, table.schema.metadata, table.column_names)
    n = table.num_rows
    cols = landmark_columns()
    xyzv = np.column_stack([table.column(c).to_numpy() for c in cols]) if n else np.zeros((0, len(cols)))
    world = None
    if meta.get("has_world"):
        wcols = landmark_columns(world=True)
        world = np.column_stack([table.column(c).to_numpy() for c in wcols]) if n else np.zeros((0, len(wcols)))
        world = world.reshape(n, N_LANDMARKS, len(WORLD_CHANNELS))
    try:
        return PoseSequence(
            xyzv=xyzv.reshape(n, N_LANDMARKS, len(CHANNELS)),
            world=world,
            frame_index=table.column("frame").to_numpy(),
            timestamps_ms=table.column("timestamp_ms").to_numpy(),
            fps=meta["fps"],
            width=meta["width"],
            height=meta["height"],
            source=meta["source"],
            estimator=meta["estimator"],
            provenance=meta.get("provenance"),
        )
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SpmlError(f"{path}: corrupted spml keypoint metadata ({type(exc).__name__}: {exc}); "
                        "extract the video again") from None


NONE = type(None)
META_REQUIRED = {"fps": (int, float), "width": (int, NONE), "height": (int, NONE), "source": (dict, NONE),
                 "estimator": (dict, NONE)}


def parse_keypoint_meta(raw: bytes, path: Any) -> dict[str, Any]:
    """The keypoint file's metadata, or SpmlError naming the file and what is wrong with it."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):
        raise SpmlError(f"{path}: corrupted spml keypoint metadata (not valid JSON); extract the video again") from None
    if not isinstance(meta, dict):
        raise SpmlError(f"{path}: corrupted spml keypoint metadata (not a JSON object); extract the video again")
    for key, kind in META_REQUIRED.items():
        if key not in meta:
            raise SpmlError(f"{path}: corrupted spml keypoint metadata (no {key!r}); extract the video again")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise SpmlError(f"{path}: corrupted spml keypoint metadata ({key!r} is {meta[key]!r}); "
                            "extract the video again")
    return meta


def read_keypoint_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the metadata of a keypoint file without reading its arrays, or None if unreadable."""
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(_META_KEY)
    except Exception:
        return None
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
