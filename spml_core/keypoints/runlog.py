"""The run log of an output folder: what each video's output was made from, and whether it is done.

``<out>/.spml-run.jsonl`` holds one JSON record per line, the last line for a video winning.
The driver appends a record (then fsyncs) whenever a video starts or ends, so a run killed at
any point loses no finished video: outputs themselves are written atomically by the workers
(temp file + rename), and a record is appended only after its output is in place. On the next
run the folder is locked (one run per folder), temp files of killed writers (``.*.part``) are
removed, the log is compacted, and a video is skipped only when its record says done for
the same video content, estimator and options, and the output file still matches (its hash,
and the provenance stored in the file's own metadata).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import file_sha256
from spml_core.util.atomic import write_text_atomic

RUNLOG_NAME = ".spml-run.jsonl"
LOCK_NAME = ".spml-run.lock"
FORMAT_VERSION = 1


class VideoRecord(BaseModel):
    """One video's entry: its inputs (content hash, estimator, options), its output, and its status."""

    model_config = ConfigDict(extra="ignore")

    output: str  # output file name inside the folder: the key of the record
    video: str
    sha256: str
    estimator: str
    options: dict[str, Any]
    status: Literal["running", "done", "failed"]
    attempts: int = 0
    error: str = ""
    out_sha256: str = ""
    out_size: int = -1
    out_mtime_ns: int = -1
    frames: int = 0
    detected: int = 0
    seconds: float = 0.0
    updated: float = 0.0
    v: int = FORMAT_VERSION

    def same_inputs(self, sha256: str, estimator: str, options: dict[str, Any]) -> bool:
        """True when this record was made from the same video content, estimator and options."""
        return self.sha256 == sha256 and self.estimator == estimator and self.options == options


class RunLog:
    """The run log of one output folder, held under an exclusive lock while a run writes there."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RUNLOG_NAME
        self.records: dict[str, VideoRecord] = {}
        self.removed_parts: list[Path] = []
        self._fh: Any = None
        self._lock_fh: Any = None

    @classmethod
    @contextlib.contextmanager
    def open(cls, folder: Path) -> Iterator[RunLog]:
        """Lock the folder, clean up after killed runs, load and compact the log."""
        runlog = cls(folder)
        runlog._lock()
        try:
            runlog.removed_parts = remove_partial_files(runlog.folder)
            runlog._load_and_compact()
            runlog._fh = open(runlog.path, "a", encoding="utf-8")
            yield runlog
        finally:
            if runlog._fh is not None:
                runlog._fh.close()
            runlog._unlock()

    def get(self, output: str) -> VideoRecord | None:
        """The latest record for an output file name, if any."""
        return self.records.get(output)

    def append(self, records: list[VideoRecord]) -> None:
        """Record new states durably (one write and one fsync for the batch)."""
        if not records:
            return
        now = time.time()
        lines = []
        for rec in records:
            rec.updated = now
            self.records[rec.output] = rec
            lines.append(json.dumps(rec.model_dump(mode="json"), sort_keys=True))
        self._fh.write("\n".join(lines) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def output_matches(self, rec: VideoRecord) -> bool:
        """True when the output file is the one the record describes (stat first, hash if it changed)."""
        out = self.folder / rec.output
        try:
            st = out.stat()
        except OSError:
            return False
        if st.st_size == rec.out_size and st.st_mtime_ns == rec.out_mtime_ns:
            return True
        try:
            return bool(rec.out_sha256) and file_sha256(out) == rec.out_sha256
        except OSError:
            return False

    # -- internals ---------------------------------------------------------------------
    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is then up to the user
            return
        lock_path = self.folder / LOCK_NAME
        fh = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise SpmlError(
                f"{self.folder}: another spml run is writing to this folder ({holder}); "
                "wait for it to finish or use another --out"
            ) from None
        # The kernel drops the lock when the process dies, even by SIGKILL: no stale locks.
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def _unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def _load_and_compact(self) -> None:
        if not self.path.exists():
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpmlError(f"{self.path}: cannot read run log ({exc.strerror})") from None
        lines = text.splitlines()
        for line in lines:
            # A run killed during a write leaves at most one torn last line: skip what does not parse.
            try:
                rec = VideoRecord.model_validate_json(line)
            except (ValidationError, ValueError):
                continue
            self.records[rec.output] = rec
        if len(lines) != len(self.records):
            body = "".join(json.dumps(r.model_dump(mode="json"), sort_keys=True) + "\n"
                           for r in self.records.values())
            write_text_atomic(self.path, body)


def remove_partial_files(folder: Path) -> list[Path]:
    """Delete temp files (``.*.part``) left by writers that were killed; returns what was removed."""
    removed = []
    for part in Path(folder).rglob(".*.part"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed.append(part)
    return removed
