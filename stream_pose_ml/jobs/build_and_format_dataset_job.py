"""StreamPoseML's ``BuildAndFormatDatasetJob``: annotations + keypoint sequences -> a dataset.

The seed call works unchanged::

    import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder
    db = data_builder.BuildAndFormatDatasetJob()
    dataset = db.build_dataset_from_data_files(
        annotations_data_directory="annotations",
        sequence_data_directory="sequences",
        limit=None,
    )

``sequence_data_directory`` may hold what ``ProcessVideosJob.process_videos`` writes:
StreamPoseML's ``<video filename>_sequence.json`` files and/or spml's ``<video stem>.parquet``
keypoint files (the Parquet file wins when both exist for a video: it also has visibility and
real timestamps). The merge is ``spml_core.dataset.build_dataset`` (docs/datasets.md).

Differences from StreamPoseML, on purpose: annotation files match videos by exact stem (the
file's ``name`` field or its own stem), never by substring; frame numbers are 0-based video
frame indices (the annotation tools' convention; StreamPoseML compared them with 1-based
frame numbers, shifting every label by one frame); a label missing from
``label_class_mapping`` is reported instead of crashing; the schema comes from the
``config.yml`` in the working directory (or ``config=``), not from a walk up the folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from spml_core.dataset import FrameDataset
from spml_core.errors import SpmlError


class BuildAndFormatDatasetJobError(SpmlError):
    """Raised for bad arguments."""


class BuildAndFormatDatasetJob:
    """Build datasets from annotation files and keypoint sequences (StreamPoseML's dataset job)."""

    @staticmethod
    def build_dataset_from_data_files(
        annotations_data_directory: str | os.PathLike[str] | None = None,
        sequence_data_directory: str | os.PathLike[str] | None = None,
        limit: int | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        include_unlabeled: bool = True,
        strict: bool = False,
        parser: str = "json",
    ) -> FrameDataset:
        """Merge the annotations with the sequences; returns a dataset with all/labeled/unlabeled frames."""
        from spml_core.config import load_config
        from spml_core.dataset import build_dataset

        if not annotations_data_directory:
            raise BuildAndFormatDatasetJobError("build_dataset_from_data_files: annotations_data_directory is required")
        if not sequence_data_directory:
            raise BuildAndFormatDatasetJobError("build_dataset_from_data_files: sequence_data_directory is required")
        if limit is not None and limit < 1:
            raise BuildAndFormatDatasetJobError(
                f"build_dataset_from_data_files: limit must be a positive number of videos, got {limit}"
            )
        if config is None and Path("config.yml").is_file():
            config = Path("config.yml")
        schema = load_config(config).annotation_schema
        frames, report = build_dataset(
            sequence_data_directory, annotations_data_directory, schema, parser,
            include_unlabeled=include_unlabeled, strict=strict, limit=limit, quiet=False,
        )
        return FrameDataset(frames=frames, report=report, classes=list(report.classes))
