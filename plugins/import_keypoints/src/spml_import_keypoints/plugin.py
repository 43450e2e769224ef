"""Hook implementations: only cheap imports here; the importer modules are imported on demand."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_keypoint_importers() -> list[type]:
    """Register the importers ``csv`` and ``openpose``."""
    from spml_import_keypoints.csv_table import CsvImporter
    from spml_import_keypoints.openpose import OpenPoseImporter

    return [CsvImporter, OpenPoseImporter]
