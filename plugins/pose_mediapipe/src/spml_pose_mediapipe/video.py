"""Decoding video files with OpenCV: checked opening, frame timestamps, stride and frame limit."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError

# Used only when the container reports no frame rate and no usable timestamps.
FALLBACK_FPS = 30.0


class VideoReader:
    """An opened video: size, nominal fps, and an iterator over (index, timestamp_ms, BGR frame)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import cv2

        self.path = Path(path)
        _check_readable(self.path)
        self._cap: Any = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SpmlError(
                f"{self.path}: cannot be decoded as a video (not a video file, truncated, "
                "or a codec OpenCV's FFmpeg cannot read)"
            )
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and fps > 0 else 0.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        # Containers estimate this from the duration; use it for progress bars only.
        self.frame_count_hint = max(int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)

    def frames(self, stride: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, float, Any]]:
        """Yield (0-based frame index, timestamp in ms, BGR image) for every stride-th frame.

        ``max_frames`` limits how many frames of the video are read (before the stride), so
        ``stride=2, max_frames=10`` yields frames 0, 2, 4, 6, 8. Skipped frames are only grabbed,
        never converted, which keeps a stride cheap.
        """
        import cv2

        cap = self._cap
        step_ms = 1000.0 / (self.fps or FALLBACK_FPS)
        last_ts = -math.inf
        index = -1
        while max_frames is None or index + 1 < max_frames:
            if not cap.grab():
                return
            index += 1
            ts = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            # MediaPipe's VIDEO mode needs strictly increasing times. Some containers report
            # 0, negative, NaN or repeated positions (raw H.264 streams, broken muxers); then
            # fall back to index/fps, still kept above the previous frame's time.
            if not (math.isfinite(ts) and ts >= 0 and ts > last_ts):
                ts = max(index * step_ms, last_ts + step_ms)
            last_ts = ts
            if index % stride:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                return
            yield index, ts, bgr

    def close(self) -> None:
        """Release the decoder."""
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise SpmlError(f"{path}: video file not found")
    if not path.is_file():
        raise SpmlError(f"{path}: not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except OSError as exc:
        raise SpmlError(f"{path}: cannot read video file ({exc.strerror})") from None
    if not head:
        raise SpmlError(f"{path}: video file is empty (0 bytes)")
