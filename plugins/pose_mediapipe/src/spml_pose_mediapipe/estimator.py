"""The ``mediapipe`` pose estimator: BlazePose's 33 landmarks through MediaPipe's Tasks API.

Nothing heavy is imported at module level (mediapipe and cv2 load on first use), so listing
plugins stays fast. See docs/keypoints.md for the output schema and the model lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, field_validator

from spml_core import OneEuroFilter, SmoothingOptions
from spml_core.components import Options as BaseOptions
from spml_core.components import PoseEstimator
from spml_core.errors import SpmlError
from spml_pose_mediapipe.model_files import (
    check_model_name,
    model_digest,
    resolve_model,
)

if TYPE_CHECKING:
    from spml_core import PoseSequence
    from spml_pose_mediapipe.landmarker import Landmarker

# How often (in frames read) estimate_video reports progress.
PROGRESS_EVERY = 16


class MediaPipePose(PoseEstimator):
    """BlazePose via MediaPipe Tasks ``PoseLandmarker`` in VIDEO mode (one person, tracked)."""

    name = "mediapipe"
    description = "BlazePose 33 landmarks (+ world metres) via MediaPipe Tasks PoseLandmarker, offline"

    class Options(BaseOptions):
        model: str = Field(
            "full",
            description="lite, full or heavy (bundles built by `make setup`), or a path to your own .task file",
        )
        min_detection_confidence: float = Field(
            0.5, ge=0.0, le=1.0, description="Minimum score for the person detector to report a person"
        )
        min_presence_confidence: float = Field(
            0.5, ge=0.0, le=1.0, description="Minimum pose presence score of the landmark model"
        )
        min_tracking_confidence: float = Field(
            0.5, ge=0.0, le=1.0, description="Minimum score to keep tracking instead of re-detecting"
        )
        clahe: bool = Field(
            False,
            description="Contrast-limited histogram equalisation on the L channel (LAB) before detection, "
            "as StreamPoseML's preprocess_video (clip limit 3.0, 8x8 tiles)",
        )
        stride: int = Field(1, ge=1, description="Estimate every Nth frame of a video (1 = every frame)")
        max_frames: int | None = Field(
            None, ge=1, description="Read only the first N frames of each video (None = all)"
        )
        world: bool = Field(True, description="Keep world landmarks (metres, origin at the hips)")
        smoothing: SmoothingOptions = Field(
            default_factory=SmoothingOptions,
            description="One Euro filter over time (MediaPipe legacy defaults), the same for videos and live "
            "frames; {enabled: false} gives raw per-frame landmarks",
        )

        @field_validator("model")
        @classmethod
        def _known_model(cls, value: str) -> str:
            # Fail at config validation, not in every worker: the bundle must exist now.
            check_model_name(value)
            try:
                resolve_model(value)
            except SpmlError as exc:
                raise ValueError(str(exc)) from None
            return value

    options: MediaPipePose.Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._live: Landmarker | None = None
        self._filter = OneEuroFilter(self.options.smoothing)
        self._model_path: Path | None = None
        self._version: str | None = None

    # -- model -----------------------------------------------------------------------------
    @classmethod
    def browser_models(cls) -> dict[str, Path]:
        """The lite/full/heavy .task bundles found on this machine: the page's MediaPipe Tasks loads the same files."""
        from spml_pose_mediapipe.model_files import bundle_name, search_dirs

        found: dict[str, Path] = {}
        for name in ("lite", "full", "heavy"):
            for folder in search_dirs():
                if (folder / bundle_name(name)).is_file():
                    found[name] = folder / bundle_name(name)
                    break
        return found

    @property
    def model_path(self) -> Path:
        """The .task bundle in use (resolved once)."""
        if self._model_path is None:
            self._model_path = resolve_model(self.options.model)
        return self._model_path

    def version(self) -> str:
        """'mediapipe <version>; <bundle file>@<sha256 prefix>': names the exact model in outputs."""
        if self._version is None:
            try:
                mp_version = version("mediapipe")
            except PackageNotFoundError:
                mp_version = "unknown"
            path = self.model_path
            self._version = f"mediapipe {mp_version}; {path.name}@{model_digest(path)}"
        return self._version

    def _landmarker(self) -> Landmarker:
        from spml_pose_mediapipe.landmarker import Landmarker

        o = self.options
        return Landmarker(
            self.model_path,
            min_detection_confidence=o.min_detection_confidence,
            min_presence_confidence=o.min_presence_confidence,
            min_tracking_confidence=o.min_tracking_confidence,
            clahe=o.clahe,
            world=o.world,
        )

    # -- live path -------------------------------------------------------------------------
    def process_frame(self, rgb: np.ndarray, timestamp_ms: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Estimate one RGB uint8 frame (H, W, 3): (33, 4) x/y/z/visibility, (33, 3) world or None.

        Frames of one stream must come with increasing timestamps (a repeated or earlier time
        is moved 1 ms past the previous one, as VIDEO mode requires). NaN rows: no person.
        """
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise SpmlError(
                f"process_frame expects an RGB uint8 image of shape (height, width, 3), "
                f"got dtype {rgb.dtype} shape {rgb.shape}"
            )
        if self._live is None:
            self._live = self._landmarker()
        xyzv, world = self._live.detect(rgb, timestamp_ms)
        return self._filter(xyzv, timestamp_ms).astype(xyzv.dtype), world

    # -- batch path ------------------------------------------------------------------------
    def estimate_video(self, path: Path, progress: Callable[[int], None] | None = None) -> PoseSequence:
        """Estimate every stride-th frame of a video; progress(n) gets frames read since the last call."""
        import contextlib

        import cv2

        from spml_core import EstimatorInfo, PoseSequence, VideoSource, file_sha256
        from spml_pose_mediapipe.prefetch import prefetch
        from spml_pose_mediapipe.video import VideoReader

        path = Path(path)
        o = self.options
        info = EstimatorInfo(name=self.name, version=self.version(), options=o.model_dump(mode="json"))
        index: list[int] = []
        times: list[float] = []
        points: list[np.ndarray] = []
        worlds: list[np.ndarray] = []
        with VideoReader(path) as video, self._landmarker() as lm:
            # Decoding, the single colour conversion (OpenCV gives BGR, MediaPipe wants RGB) and
            # CLAHE run a few frames ahead in a thread, overlapping the model's work.
            prepared = (
                (i, ts, lm.prepare(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                for i, ts, bgr in video.frames(o.stride, o.max_frames)
            )
            reported = 0
            with contextlib.closing(prefetch(prepared)) as frames:
                smooth = OneEuroFilter(o.smoothing)
                for i, ts, rgb in frames:
                    xyzv, world = lm.detect_prepared(rgb, ts)
                    xyzv = smooth(xyzv, ts).astype(xyzv.dtype)
                    index.append(i)
                    times.append(ts)
                    points.append(xyzv)
                    if world is not None:
                        worlds.append(world)
                    if progress is not None and i + 1 - reported >= PROGRESS_EVERY:
                        progress(i + 1 - reported)
                        reported = i + 1
            if progress is not None and index and index[-1] + 1 > reported:
                progress(index[-1] + 1 - reported)
            fps, width, height = video.fps, video.width, video.height
        if not index:
            raise SpmlError(f"{path}: video contains no frames")
        return PoseSequence(
            xyzv=np.stack(points),
            world=np.stack(worlds) if o.world else None,
            frame_index=np.asarray(index, dtype=np.int64),
            timestamps_ms=np.asarray(times, dtype=np.float64),
            fps=fps,
            width=width,
            height=height,
            source=VideoSource(path=str(path), sha256=file_sha256(path)),
            estimator=info,
        )

    def close(self) -> None:
        """Close the live-path landmarker, if one was started."""
        if self._live is not None:
            self._live.close()
            self._live = None
