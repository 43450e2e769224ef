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
real timestamps). The merge is ``spml_core.datasets.build.build_dataset`` (docs/datasets.md).

``build_dataset_from_data_files`` returns StreamPoseML's kind of ``Dataset`` (per-video lists of
frame dicts in ``all_frames`` / ``labeled_frames`` / ``unlabeled_frames``; the table itself in
``.frames``) and ``format_dataset`` a list of row dicts (with the DataFrame as ``.frame``), with
StreamPoseML's argument order and defaults (no segmentation, pooled, labelled frames only);
the differences that remain are tabled in MIGRATING.md.

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
from typing import TYPE_CHECKING

from spml_core.datasets.frames import FrameDataset
from spml_core.errors import ConfigError, SpmlError
from stream_pose_ml.learning.dataset import Dataset, FormattedDataset

if TYPE_CHECKING:
    import pandas as pd


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
    ) -> Dataset:
        """Merge the annotations with the sequences; returns a dataset with all/labeled/unlabeled frames."""
        from spml_core.config import load_config
        from spml_core.datasets.build import build_dataset

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
        return Dataset(frames=frames, report=report, classes=list(report.classes))

    @staticmethod
    def build_dataset_from_videos(
        annotations_directory: str | os.PathLike[str],
        video_directory: str | os.PathLike[str],
        limit: int | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
    ) -> Dataset:
        """Extract keypoints of the videos (MediaPipe, into a temporary folder), then build the dataset."""
        import tempfile

        from stream_pose_ml.jobs.process_videos_job import ProcessVideosJob

        if not annotations_directory:
            raise BuildAndFormatDatasetJobError("build_dataset_from_videos: annotations_directory is required")
        if not video_directory:
            raise BuildAndFormatDatasetJobError("build_dataset_from_videos: video_directory is required")
        with tempfile.TemporaryDirectory(prefix="spml-dataset-from-videos-") as scratch:
            ProcessVideosJob.process_videos(src_videos_path=str(video_directory), output_sequence_data_path=scratch,
                                            limit=limit, return_output=False)
            return BuildAndFormatDatasetJob.build_dataset_from_data_files(
                annotations_directory, scratch, limit, config=config)

    # -- formatting (spml_core.features (spec, compute, live, offline); docs/features.md) ------------------------------------------
    @staticmethod
    def format_dataset(
        dataset: FrameDataset | pd.DataFrame,
        pool_frame_data_by_clip: bool = True,
        decimal_precision: int | None = None,
        include_unlabeled_data: bool = False,
        include_angles: bool = True,
        include_distances: bool = True,
        include_normalized: bool = True,
        include_joints: bool = False,
        include_z_axis: bool = False,
        segmentation_strategy: str | None = None,
        segmentation_splitter_label: str | None = None,
        segmentation_window: int | None = None,
        segmentation_window_label: str | None = None,
    ) -> FormattedDataset:
        """Segment the dataset and compute its features: a list with a row dict per example.

        StreamPoseML's parameters, positions and defaults (no segmentation, pooled, labelled frames
        only); parameters a strategy does not use are ignored, and a label or window a strategy
        needs raises (both as StreamPoseML did). The rows are also one DataFrame, ``result.frame``.
        Differences, on purpose: ``decimal_precision`` is honoured (None: no rounding); pooled ``std`` is a real
        standard deviation and ``max`` is not floored at 0; angles and distances are the fixed
        definitions of docs/features.md; ``include_normalized`` adds body-normalised coordinates
        (distances are always divided by the body size); with every ``include_*`` off, the raw
        joint coordinates x, y, z are the features (what the seed README promises); column names are
        ``frame-{k}-<feature>`` / ``<stat>-<feature>`` (see ``spec.columns``).
        """
        import pandas as pd

        from spml_core.features.spec import FeaturePipelineSpec, FeatureRef
        from spml_core.features.offline import format_dataset_frames
        from spml_core.registry import Registry

        if dataset is None:
            raise BuildAndFormatDatasetJobError(
                "format_dataset: dataset is required (from build_dataset_from_data_files)")
        frames = dataset.frames if isinstance(dataset, FrameDataset) else dataset
        if not isinstance(frames, pd.DataFrame):
            raise BuildAndFormatDatasetJobError(
                f"format_dataset: dataset must come from build_dataset_from_data_files, got {type(dataset).__name__}"
            )
        features = []
        if include_joints:
            features.append(FeatureRef(use="joints", options={"include_z": include_z_axis}))
        if include_normalized:
            features.append(FeatureRef(use="normalized", options={"include_z": include_z_axis}))
        if include_angles:
            features.append(FeatureRef(use="angles"))
        if include_distances:
            features.append(FeatureRef(use="distances", options={"mode": "both" if include_z_axis else "2d"}))
        if not features:
            # The seed README's "simplest approach" (every include_* off) promises x, y, z per joint.
            features.append(FeatureRef(use="joints", options={"include_z": True}))
        strategy = segmentation_strategy or "none"
        registry = Registry().load()
        cls = registry.get("segmenter", strategy)
        wanted = {
            "segmentation_splitter_label": segmentation_splitter_label,
            "segmentation_window": segmentation_window,
            "segmentation_window_label": segmentation_window_label,
            "include_unlabeled_data": include_unlabeled_data,
            "pool": ["mean", "max", "std"] if pool_frame_data_by_clip else [],
        }
        accepted = cls.Options.model_fields  # type: ignore[attr-defined]
        options = {k: v for k, v in wanted.items() if k in accepted and v is not None}
        if pool_frame_data_by_clip and "pool" not in accepted:
            raise BuildAndFormatDatasetJobError(f"format_dataset: strategy '{strategy}' cannot pool")
        spec = FeaturePipelineSpec(
            features=features, segmentation=FeatureRef(use=strategy, options=options), decimals=decimal_precision,
        )
        try:
            result = format_dataset_frames(frames, spec, registry, quiet=True)
        except ConfigError as exc:  # a missing label/window: StreamPoseML's SegmentationServiceError
            raise BuildAndFormatDatasetJobError(f"format_dataset: {exc}") from exc
        for note in result.notes:
            print(f"format_dataset: note: {note}")
        return FormattedDataset(result.frame)

    @staticmethod
    def write_dataset_to_csv(
        csv_location: str | os.PathLike[str] | None = None,
        formatted_dataset: FormattedDataset | pd.DataFrame | list[dict] | None = None,
        filename: str | None = None,
    ) -> Path:
        """Write the formatted dataset to ``<csv_location>/<filename>.csv`` atomically; returns the path.

        The folder is created; a filename already ending in ``.csv`` is not doubled; without a
        filename it is ``dataset_<nanoseconds>.csv``. No index column is written. The feature spec
        of a formatted dataset goes beside it as ``<file>.csv.spec.json``.
        """
        import time

        import pandas as pd

        from spml_core.datasets.io import write_dataset
        from spml_core.features.spec import write_feature_spec

        if not csv_location:
            raise BuildAndFormatDatasetJobError("write_dataset_to_csv: csv_location is required")
        if formatted_dataset is None:
            raise BuildAndFormatDatasetJobError("write_dataset_to_csv: formatted_dataset is required")
        if isinstance(formatted_dataset, FormattedDataset):
            df = formatted_dataset.frame
        elif isinstance(formatted_dataset, pd.DataFrame):
            df = formatted_dataset
        else:
            df = pd.json_normalize(formatted_dataset)
        name = filename or f"dataset_{time.time_ns()}"
        if not name.lower().endswith(".csv"):
            name += ".csv"
        if Path(name).name != name:
            raise BuildAndFormatDatasetJobError(f"write_dataset_to_csv: filename {filename!r} must be a plain name")
        out = Path(csv_location) / name
        write_dataset(df, out)
        write_feature_spec(df, out)
        return out
