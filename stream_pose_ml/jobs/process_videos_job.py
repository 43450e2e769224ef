"""StreamPoseML's ``ProcessVideosJob``: videos -> keypoints, as a facade over ``spml extract``.

The seed call works unchanged::

    import stream_pose_ml.jobs.process_videos_job as pv
    pv.ProcessVideosJob().process_videos(
        src_videos_path="videos", output_keypoints_data_path="keypoints",
        output_sequence_data_path="sequences", write_keypoints_to_file=True,
        write_serialized_sequence_to_file=True, limit=None, configuration={},
        preprocess_video=True, return_output=False)

What it does: ``spml_core.pipeline.run_extract`` extracts every video (in parallel, skipping
videos already extracted with the same options) into ``<stem>.parquet`` files, then the
StreamPoseML JSON files are written from them (``spml_core.keypoints.streamposeml``):

* ``output_keypoints_data_path/<video stem>/keypoints-0001.json`` ... (StreamPoseML added a
  ``-<time_ns>`` suffix to the folder; spml replaces the folder on each run instead);
* ``output_sequence_data_path/<video filename>_sequence.json``.

The Parquet files go to ``output_sequence_data_path`` (else ``output_keypoints_data_path``,
else a temporary folder that is removed). Differences from StreamPoseML, on purpose:
``configuration`` is no longer ignored: it holds the ``mediapipe`` estimator's options
(``model``, ``min_detection_confidence``, ... ; StreamPoseML's ``model_complexity`` 0/1/2
maps to ``lite``/``full``/``heavy``); ``preprocess_video`` sets ``clahe``; MediaPipe gets RGB
frames (StreamPoseML fed BGR); hip-normalised coordinates are ``(x - mid_hip_x) / hip_width``;
all videos are processed and finished outputs kept even when one fails, then an error names
the failed ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError

# StreamPoseML's legacy MediaPipe setting -> the equivalent BlazePose model.
MODEL_COMPLEXITY = {0: "lite", 1: "full", 2: "heavy"}


class ProcessVideosJobError(SpmlError):
    """Raised for bad arguments or when some videos could not be processed."""


class ProcessVideosJob:
    """Extract keypoints from a folder of videos (StreamPoseML's batch job)."""

    @staticmethod
    def process_videos(
        src_videos_path: str | None = None,
        output_keypoints_data_path: str | None = None,
        output_sequence_data_path: str | None = None,
        write_keypoints_to_file: bool = False,
        write_serialized_sequence_to_file: bool = False,
        configuration: dict[str, Any] | None = None,
        limit: int | None = None,
        preprocess_video: bool = False,
        return_output: bool = True,
        *,
        workers: int | None = None,
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Process every video under src_videos_path; returns the sequence dicts, or the output paths."""
        from spml_core.keypoints.extract import find_videos
        from spml_core.pipeline import run_extract
        from spml_core.keypoints.sequence import load_keypoints
        from spml_core.keypoints.streamposeml import write_streamposeml

        if not src_videos_path:
            raise ProcessVideosJobError("process_videos: src_videos_path is required")
        if write_keypoints_to_file and not output_keypoints_data_path:
            raise ProcessVideosJobError("process_videos: write_keypoints_to_file needs output_keypoints_data_path")
        if write_serialized_sequence_to_file and not output_sequence_data_path:
            raise ProcessVideosJobError(
                "process_videos: write_serialized_sequence_to_file needs output_sequence_data_path"
            )
        if limit is not None and limit < 1:
            raise ProcessVideosJobError(f"process_videos: limit must be a positive number of videos, got {limit}")
        options = _estimator_options(configuration or {}, preprocess_video)
        videos = find_videos(Path(src_videos_path))[:limit]
        parquet_dir = output_sequence_data_path or output_keypoints_data_path
        with tempfile.TemporaryDirectory(prefix="spml-process-videos-") as scratch:
            out_dir = Path(parquet_dir) if parquet_dir else Path(scratch)
            results = run_extract(
                videos, out_dir, "mediapipe", options,
                executor_options={"workers": workers} if workers else {},
            )
            sequences: list[dict[str, Any]] = []
            for r in results:
                if r.status == "failed":
                    continue
                written = write_streamposeml(
                    load_keypoints(r.out),
                    out_dir,
                    keypoints_dir=Path(output_keypoints_data_path) if output_keypoints_data_path else None,
                    sequences_dir=Path(output_sequence_data_path) if output_sequence_data_path else None,
                    write_keypoints=write_keypoints_to_file,
                    write_sequence=write_serialized_sequence_to_file,
                    include_sequence=return_output,
                )
                if return_output:
                    sequences.append(written["sequence"])
        failed = [r for r in results if r.status == "failed"]
        if failed:
            lines = "; ".join(f"{r.video}: {r.message}" for r in failed)
            raise ProcessVideosJobError(
                f"{len(failed)} of {len(results)} videos failed (the others were written): {lines}"
            )
        if return_output:
            return sequences
        return {"keypoints_path": output_keypoints_data_path, "sequence_path": output_sequence_data_path}


def _estimator_options(configuration: dict[str, Any], preprocess_video: bool) -> dict[str, Any]:
    """StreamPoseML's configuration + preprocess_video -> mediapipe estimator options."""
    options = dict(configuration)
    if "model_complexity" in options:
        complexity = options.pop("model_complexity")
        if complexity not in MODEL_COMPLEXITY:
            raise ProcessVideosJobError(
                f"configuration.model_complexity: expected 0, 1 or 2, got {complexity!r}"
            )
        options.setdefault("model", MODEL_COMPLEXITY[complexity])
    options.setdefault("clahe", bool(preprocess_video))
    return options
