"""Session recording: what a live session saw and did, written to a session folder.

A session folder (docs/web_app.md, "Recording sessions")::

    SESSIONS_DIR/<id>/
      session.json       what was recorded: model and bundle id, pose model, frame size, counts, times
      keypoints.parquet  the keypoints the server received (spml_core.load_keypoints reads it, or the folder)
      events.jsonl       one JSON object a line: prediction, action, model, note (in the order they happened)
      video.webm         the page's camera video, when the page sent it (optional)

``events.jsonl`` is appended (and flushed) as the session runs, so a crash keeps everything up to it;
the keypoints are buffered (528 bytes a frame) and written atomically when the recording stops, and
``session.json`` is rewritten atomically at start and stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from spml_core import PoseSequence, SpmlError, load_keypoints

SESSION_FILE = "session.json"
KEYPOINTS_FILE = "keypoints.parquet"
EVENTS_FILE = "events.jsonl"
VIDEO_FILE = "video.webm"
SESSION_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
SOURCE_NAME_RE = re.compile(r"[^A-Za-z0-9._ -]+")


class RecordingError(SpmlError):
    """A recording request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def new_session_id(now: float | None = None) -> str:
    """A sortable, unguessable folder name: UTC date-time plus 6 random hex digits."""
    stamp = datetime.fromtimestamp(now or time.time(), tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def bundle_id(path: Path | None) -> str | None:
    """The bundle's identity: SHA-256 of its manifest.json (or of the .zip), first 16 hex digits."""
    if path is None:
        return None
    target = path / "manifest.json" if path.is_dir() else path
    try:
        return hashlib.sha256(target.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write a file through a temporary file beside it and a rename: readers never see half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


class SessionRecorder:
    """Records one live session into ``folder``; thread-safe (the connection's thread and actuator threads)."""

    def __init__(self, folder: Path, info: dict[str, Any]) -> None:
        self.folder = folder
        self.id = folder.name
        self.started = time.time()
        self.ended: float | None = None
        self.info = dict(info)
        self.frames: list[int] = []
        self.times: list[float] = []
        self.rows: list[np.ndarray] = []
        self.size: tuple[int, int] = (0, 0)
        self.counts = {"frames": 0, "predictions": 0, "actions": 0}
        # Frames by where pose ran: the page's keypoints, or the server's estimator (recorded once).
        self.pose_frames = {"browser": 0, "server": 0}
        self.server_estimator: dict[str, Any] | None = None
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=False)
        self._events: IO[str] | None = open(folder / EVENTS_FILE, "a", encoding="utf-8")
        self._write_summary()

    # -- while recording -----------------------------------------------------------------
    def frame(self, frame: int, t_ms: float, xyzv: np.ndarray, width: int | None, height: int | None,
              estimator: Any = None) -> None:
        """One frame of keypoints as the server received it (NaN rows: no person); ``estimator`` is the
        server-side pose estimator that made them (None: the page's pose)."""
        with self._lock:
            if self._events is None:
                return
            if estimator is None:
                self.pose_frames["browser"] += 1
            else:
                self.pose_frames["server"] += 1
                if self.server_estimator is None:
                    self.server_estimator = estimator_record(estimator)
            self.frames.append(frame)
            self.times.append(t_ms)
            self.rows.append(np.asarray(xyzv, dtype=np.float32))
            if width and height:
                self.size = (int(width), int(height))
            self.counts["frames"] += 1

    def not_recorded(self, count: int) -> None:
        """Frames the client sent that the recording could not keep (session.json: frames_not_recorded)."""
        with self._lock:
            self.counts["frames_not_recorded"] = self.counts.get("frames_not_recorded", 0) + count

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one event (prediction, action, model, note) to events.jsonl, flushed at once."""
        with self._lock:
            if self._events is None:
                return
            if kind == "prediction":
                self.counts["predictions"] += 1
            elif kind == "action":
                self.counts["actions"] += 1
            record = {"type": kind, "wall_ms": round(time.time() * 1000.0, 1), **payload}
            self._events.write(json.dumps(record, default=_json_default) + "\n")
            self._events.flush()

    # -- stopping ------------------------------------------------------------------------
    def close(self) -> dict[str, Any]:
        """Write keypoints.parquet and the final session.json; returns the summary. Idempotent."""
        with self._lock:
            if self._events is None:
                return self.summary()
            self._events.close()
            self._events = None
            self.ended = time.time()
            n = len(self.rows)
            if n == 0 and not any(self.counts.values()):
                # Nothing was streamed (record: true opens a folder per connection): leave no empty folder.
                shutil.rmtree(self.folder, ignore_errors=True)
                return {**self.summary(), "discarded": True}
            xyzv = np.stack(self.rows) if n else np.zeros((0, 33, 4), np.float32)
            times = np.asarray(self.times, dtype=np.float64)
            fps = float((n - 1) / ((times[-1] - times[0]) / 1000.0)) if n > 1 and times[-1] > times[0] else 0.0
            estimator = self._estimator()
            seq = PoseSequence(
                xyzv=xyzv, frame_index=np.asarray(self.frames, dtype=np.int64), timestamps_ms=times,
                fps=fps, width=self.size[0], height=self.size[1],
                source={"path": self.info.get("source_name") or f"{self.id}.webm", "sha256": ""},
                estimator=estimator,
            )
            self.info["pose_estimator"] = estimator
            if all(self.pose_frames.values()):
                # The page switched between its own and server-side pose while recording: say so.
                self.info["pose_frames"] = dict(self.pose_frames)
            seq.save(self.folder / KEYPOINTS_FILE)
            self.rows = []  # the file holds them now
            self._write_summary()
            return self.summary()

    def _estimator(self) -> dict[str, Any]:
        """The estimator record of the keypoints file: where most frames' pose ran, as completely as known."""
        pose = self.info.get("pose") or {}
        if self.server_estimator is not None and self.pose_frames["server"] > self.pose_frames["browser"]:
            return self.server_estimator
        page = self.info.get("page_estimator")
        if isinstance(page, dict) and page.get("name"):
            return page
        # A recorder started without the page's record (older callers): what session.json says.
        return {"name": str(pose.get("estimator") or "mediapipe"),
                "options": {"model": pose.get("model"), "where": pose.get("where")}}

    @property
    def active(self) -> bool:
        """Whether frames and events are still being recorded."""
        return self._events is not None

    def summary(self) -> dict[str, Any]:
        """session.json's content."""
        return {
            "id": self.id,
            "format": "spml-session",
            "format_version": 1,
            "started_at": _iso(self.started),
            "ended_at": _iso(self.ended) if self.ended else None,
            "duration_s": round((self.ended or time.time()) - self.started, 3),
            "recording": self._events is not None,
            "width": self.size[0],
            "height": self.size[1],
            **self.counts,
            **{k: v for k, v in self.info.items() if k != "page_estimator"},  # that one goes in the keypoints
            "files": {"keypoints": KEYPOINTS_FILE, "events": EVENTS_FILE,
                      "video": VIDEO_FILE if (self.folder / VIDEO_FILE).exists() else None},
        }

    def _write_summary(self) -> None:
        data = json.dumps(self.summary(), indent=2, default=_json_default).encode()
        write_bytes_atomic(self.folder / SESSION_FILE, data)


def estimator_record(estimator: Any) -> dict[str, Any]:
    """A server-side pose estimator as keypoint files record it: name, version (model file), options."""
    options = getattr(estimator, "options", None)
    opts = options.model_dump(mode="json") if hasattr(options, "model_dump") else {}
    try:
        version = str(estimator.version())
    except Exception:  # a version that cannot be read must not lose the recording
        version = ""
    return {"name": str(getattr(estimator, "name", "") or "unknown"), "version": version,
            "options": {**opts, "where": "server"}}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class SessionArchive:
    """The session folders under ``root``: listing, reading, zipping, and the page's video upload."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root).resolve() if root else None

    def _require_root(self) -> Path:
        if self.root is None:
            raise RecordingError("recording is disabled: start spml serve with --sessions-dir DIR", status=403)
        return self.root

    def start(self, info: dict[str, Any]) -> SessionRecorder:
        """A new recorder in a fresh session folder."""
        root = self._require_root()
        root.mkdir(parents=True, exist_ok=True)
        return SessionRecorder(root / new_session_id(), info)

    def folder(self, session_id: str) -> Path:
        """The folder of a recorded session (404 for unknown or malformed ids)."""
        root = self._require_root()
        if not SESSION_ID_RE.match(session_id or "") or not (root / session_id / SESSION_FILE).is_file():
            raise RecordingError(f"no recorded session {session_id!r}", status=404)
        return root / session_id

    def describe(self, session_id: str) -> dict[str, Any]:
        """A session's session.json, with the video's presence checked now (it may arrive after the stop)."""
        folder = self.folder(session_id)
        try:
            data = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecordingError(f"session {session_id}: {SESSION_FILE} is unreadable ({exc})", status=500) from None
        files = data.setdefault("files", {})
        files["video"] = VIDEO_FILE if (folder / VIDEO_FILE).is_file() else None
        data["bytes"] = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        return data

    def list(self) -> list[dict[str, Any]]:
        """Every recorded session, newest first."""
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir(), reverse=True):
            if SESSION_ID_RE.match(p.name) and (p / SESSION_FILE).is_file():
                try:
                    out.append(self.describe(p.name))
                except RecordingError:
                    continue
        return out

    def zip_bytes(self, session_id: str) -> bytes:
        """The session folder as one zip (files at <id>/...)."""
        folder = self.folder(session_id)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    # WebM and Parquet are compressed already: storing them saves the CPU.
                    kind = zipfile.ZIP_STORED if p.suffix in (".webm", ".parquet") else zipfile.ZIP_DEFLATED
                    zf.write(p, f"{session_id}/{p.name}", compress_type=kind)
        return buf.getvalue()

    def replay_frames(self, session_id: str) -> dict[str, Any]:
        """The recorded keypoints as the page's keypoints messages (for replaying through a model)."""
        folder = self.folder(session_id)
        if not (folder / KEYPOINTS_FILE).is_file():
            raise RecordingError(f"session {session_id} is still recording (no {KEYPOINTS_FILE} yet)", status=409)
        seq = load_keypoints(folder / KEYPOINTS_FILE)
        person = seq.detected
        rounded = np.round(seq.xyzv.astype(np.float64), 5)
        frames = [
            {"frame": int(f), "t_ms": float(t), "landmarks": rounded[i].tolist() if person[i] else None}
            for i, (f, t) in enumerate(zip(seq.frame_index, seq.timestamps_ms))
        ]
        return {"id": session_id, "width": seq.width, "height": seq.height, "fps": seq.fps, "frames": frames}

    def save_video(self, session_id: str, stream: IO[bytes], max_bytes: int) -> int:
        """Store the page's WebM recording of a session (once), atomically; returns its size."""
        folder = self.folder(session_id)
        target = folder / VIDEO_FILE
        if target.exists():
            raise RecordingError(f"session {session_id} already has a video", status=409)
        data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise RecordingError(f"video is larger than the {max_bytes}-byte limit", status=413)
        # A WebM (Matroska) file starts with the EBML magic number.
        if not data.startswith(b"\x1a\x45\xdf\xa3"):
            raise RecordingError("video must be a WebM file (it does not start with the EBML header)")
        write_bytes_atomic(target, data)
        return len(data)


def source_name(name: Any) -> str | None:
    """A replayed file's name, safe to store (used to match annotations to the recorded keypoints)."""
    if not isinstance(name, str) or not name.strip():
        return None
    return SOURCE_NAME_RE.sub("_", Path(name).name)[:200] or None
