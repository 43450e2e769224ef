"""`spml import`: keypoints made elsewhere -> ordinary spml keypoint files (+ annotations when labelled).

Everything is read and checked first; only then are files written (each atomically), so a bad input
leaves nothing half-written. Labelled imports also write ``annotations/<name>.json`` (Dataloop layout,
read by the default ``json`` parser) and ``config.yml`` with the matching ``annotation_schema``, so that
``spml dataset --keypoints OUT --annotations OUT/annotations --config OUT/config.yml`` works unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spml_core.components import ImportedKeypoints
from spml_core.errors import SpmlError
from spml_core.registry import Registry
from spml_core.util.atomic import write_text_atomic


@dataclass
class ImportResult:
    """What one imported sequence became."""

    name: str
    keypoints: Path
    frames: int
    annotations: Path | None = None
    labelled_frames: int = 0


def label_runs(frames: np.ndarray, labels: list[str | None]) -> list[dict[str, Any]]:
    """Consecutive rows with one label -> Dataloop-style annotations with frame ranges (inclusive)."""
    out: list[dict[str, Any]] = []
    start = None
    for i, lab in enumerate([*labels, None]):
        prev = labels[i - 1] if i else None
        if start is not None and (lab != prev or (i < len(labels) and frames[i] != frames[i - 1] + 1)):
            out.append({"label": prev, "metadata": {"system": {"frame": int(frames[start]),
                                                               "endFrame": int(frames[i - 1])}}})
            start = None
        if lab is not None and start is None:
            start = i
    return out


def run_import(fmt: str, source: Path, out_dir: Path, options: dict[str, Any] | None = None,
               registry: Any = None) -> list[ImportResult]:
    """Read ``source`` with the named keypoint importer and write keypoint Parquet files (+ annotations)."""
    registry = registry or Registry().load()
    importer = registry.build("keypoint_importer", fmt, options or {}, f"--option ({fmt} importer) options")
    source = Path(source)
    if not source.exists():
        raise SpmlError(f"{source}: no such file or folder")
    items: list[ImportedKeypoints] = importer.read(source)  # type: ignore[attr-defined]
    if not items:
        raise SpmlError(f"{source}: the {fmt} importer found no keypoints")
    seen: dict[str, str] = {}
    for it in items:
        if it.name in seen:
            raise SpmlError(f"{source}: two sequences named '{it.name}'; names become file names, make them unique")
        seen[it.name] = it.name
        if it.labels is not None and len(it.labels) != it.sequence.n_frames:
            raise SpmlError(f"{source}: '{it.name}' has {len(it.labels)} labels for {it.sequence.n_frames} frames")
    out_dir = Path(out_dir)
    results = []
    mapping: dict[str, str] = {}
    for it in items:
        kp = it.sequence.save(out_dir / f"{it.name}.parquet")
        res = ImportResult(it.name, kp, it.sequence.n_frames)
        if it.labels is not None:
            target = it.target or "label"
            runs = label_runs(it.sequence.frame_index, it.labels)
            mapping.update({r["label"]: target for r in runs})
            res.annotations = write_text_atomic(out_dir / "annotations" / f"{it.name}.json", json.dumps(
                {"name": it.name, "annotations": runs}, indent=1) + "\n")
            res.labelled_frames = sum(lab is not None for lab in it.labels)
        results.append(res)
    if mapping:
        import yaml

        schema = {"annotation_schema": {"label_class_mapping": dict(sorted(mapping.items()))}}
        write_text_atomic(out_dir / "config.yml", "# written by spml import: the classes of the imported labels\n"
                          + yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    return results
