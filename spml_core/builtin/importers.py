"""The built-in keypoint importer: StreamPoseML's ``<video>_sequence.json`` files -> spml keypoint Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from spml_core.components import ImportedKeypoints, KeypointImporter
from spml_core.components import Options as BaseOptions
from spml_core.datasets.plan import SEQUENCE_SUFFIX, sequence_stem
from spml_core.keypoints.streamposeml import read_sequence_json
from spml_core.errors import SpmlError
from spml_core.keypoints.sequence import PoseSequence, file_sha256
from spml_core.keypoints.skeleton import N_LANDMARKS


class StreamPoseMLImporter(KeypointImporter):
    """StreamPoseML sequence JSON (x, y, z per joint; no visibility or timestamps: these are filled in)."""

    name: ClassVar[str] = "streamposeml"
    description: ClassVar[str] = "StreamPoseML <video>_sequence.json files (1-based frames, normalised x/y/z)"
    file_patterns: ClassVar[tuple[str, ...]] = (f"*{SEQUENCE_SUFFIX}",)

    class Options(BaseOptions):
        """Options of the StreamPoseML importer."""

        fps: float = Field(30.0, gt=0, description="Frame rate for timestamps (the files record none)")
        visibility: float | None = Field(
            1.0, ge=0, le=1, description="Visibility of present joints (the files record none); null leaves NaN")

    def read(self, path: Path) -> list[ImportedKeypoints]:
        """Every sequence file given, or in a folder (recursively)."""
        path = Path(path)
        files = [path] if path.is_file() else sorted(path.rglob(f"*{SEQUENCE_SUFFIX}"))
        if not files:
            raise SpmlError(f"{path}: no StreamPoseML sequence files (*{SEQUENCE_SUFFIX}) found")
        opts = self.options
        out = []
        for f in files:
            if not f.name.endswith(SEQUENCE_SUFFIX):
                raise SpmlError(f"{f}: not a StreamPoseML sequence file (name must end with {SEQUENCE_SUFFIX})")
            kt = read_sequence_json(f)
            t = kt.table
            frames = t.column("frame").to_numpy()
            flat = np.column_stack([t.column(c).to_numpy() for c in t.column_names[2:]]).astype(np.float32)
            xyzv = flat.reshape(len(frames), N_LANDMARKS, 4)
            present = ~np.isnan(xyzv[:, :, 0])
            if opts.visibility is not None:  # type: ignore[attr-defined]
                xyzv[:, :, 3] = np.where(present, opts.visibility, np.nan)  # type: ignore[attr-defined]
            stem = sequence_stem(f)
            seq = PoseSequence(
                xyzv=xyzv, frame_index=frames, timestamps_ms=frames * (1000.0 / opts.fps),  # type: ignore[attr-defined]
                fps=opts.fps, width=kt.width, height=kt.height,  # type: ignore[attr-defined]
                provenance={"name": stem, "format": self.name, "file": str(f), "sha256": file_sha256(f),
                            "options": opts.model_dump(mode="json"),
                            "note": "timestamps from the fps option; visibility filled in"},
            )
            out.append(ImportedKeypoints(stem, seq))
        return out
