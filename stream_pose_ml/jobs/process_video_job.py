"""StreamPoseML's ``ProcessVideoJob``: one video -> its sequence data, as a facade over ``spml extract``.

``process_video(input_filename, video_input_path, output_keypoint_data_path,
output_sequence_data_path, ...)`` takes StreamPoseML's arguments in its order and returns the
video's serialised sequence dict (``{"name", "type": "BlazePoseSequence", "frames": {...}}``),
writing the per-frame keypoint JSON and/or the sequence JSON when asked. The extraction and the
JSON are ``ProcessVideosJob``'s (see there for the deliberate differences).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError


class ProcessVideoJobError(SpmlError):
    """Raised for bad arguments or a video that cannot be processed."""


class ProcessVideoJob:
    """Process one video (StreamPoseML's per-video job)."""

    @staticmethod
    def process_video(
        input_filename: str,
        video_input_path: str | os.PathLike[str],
        output_keypoint_data_path: str | os.PathLike[str] | None,
        output_sequence_data_path: str | os.PathLike[str] | None,
        write_keypoints_to_file: bool = False,
        write_serialized_sequence_to_file: bool = False,
        configuration: dict[str, Any] | None = None,
        preprocess_video: bool = False,
    ) -> dict[str, Any]:
        """Extract one video's keypoints; returns its sequence dict (StreamPoseML's layout)."""
        from spml_core.keypoints.sequence import load_keypoints
        from spml_core.keypoints.streamposeml import write_streamposeml
        from spml_core.pipeline import run_extract
        from stream_pose_ml.jobs.process_videos_job import _estimator_options

        if write_keypoints_to_file and not output_keypoint_data_path:
            raise ProcessVideoJobError("No output location specified for keypoints files.")
        if write_serialized_sequence_to_file and not output_sequence_data_path:
            raise ProcessVideoJobError("No output location specified for sequence data files.")
        video = Path(video_input_path) / input_filename
        if not video.is_file():
            raise ProcessVideoJobError(f"{video}: no such video file")
        options = _estimator_options(configuration or {}, preprocess_video)
        with tempfile.TemporaryDirectory(prefix="spml-process-video-") as scratch:
            results = run_extract(video, Path(scratch), "mediapipe", options, quiet=True)
            failed = [r for r in results if r.status == "failed"]
            if failed or not results:
                raise ProcessVideoJobError(f"{video}: {failed[0].message if failed else 'not processed'}")
            written = write_streamposeml(
                load_keypoints(results[0].out), Path(scratch),
                keypoints_dir=Path(output_keypoint_data_path) if output_keypoint_data_path else None,
                sequences_dir=Path(output_sequence_data_path) if output_sequence_data_path else None,
                write_keypoints=write_keypoints_to_file, write_sequence=write_serialized_sequence_to_file,
                include_sequence=True,
            )
        return written["sequence"]
