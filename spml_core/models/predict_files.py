"""`spml predict`: classify every frame of videos or keypoint files with a bundle, on an executor, resumably.

Per input stem, in the output folder: ``<stem>.predictions.parquet`` (+ ``.csv`` on request), ``<stem>.bouts.csv``,
``<stem>.timeline.png`` and any ``--export`` files; ``summary.json`` covers the run. The Parquet file records
what it was made from (input content hash, bundle fingerprint, outputs asked for), so a re-run skips inputs
whose outputs are complete and current. Videos are extracted first into ``<out>/keypoints/`` (kept, and
reused when up to date) with the bundle's recorded pose estimator unless one is given.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spml_core.datasets.plan import SEQUENCE_SUFFIX, sequence_stem
from spml_core.keypoints.streamposeml import read_sequence_json
from spml_core.errors import SpmlError
from spml_core.keypoints.extract import VIDEO_EXTENSIONS, ExtractJob, run_job
from spml_core.keypoints.sequence import SESSION_KEYPOINTS, PoseSequence, file_sha256, load_keypoints
from spml_core.keypoints.skeleton import N_LANDMARKS
from spml_core.models.batch import bout_summary, bouts
from spml_core.models.exports import EXPORT_SUFFIXES, export_bouts
from spml_core.models.predict_plots import prediction_timeline_png
from spml_core.models.predictor import load_bundle
from spml_core.util.atomic import atomic_path, write_bytes_atomic, write_text_atomic

PREDICTIONS_SUFFIX = ".predictions.parquet"
_META_KEY = b"spml.predictions"


@dataclass
class PredictJob:
    """One input to classify: a video or keypoint file, the bundle, and which outputs to write."""

    source: Path
    stem: str
    kind: str  # "video" or "keypoints"
    out_dir: Path
    bundle: Path
    bundle_fingerprint: str
    csv: bool = False
    exports: tuple[str, ...] = ()
    estimator: str = "mediapipe"
    estimator_options: dict[str, Any] = field(default_factory=dict)
    decide: Callable[[Any], Any] | None = None
    decide_key: str = ""
    force: bool = False
    timeline: bool = True


@dataclass
class PredictResult:
    """Outcome of one input: written, skipped (outputs current) or failed."""

    source: Path
    stem: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def find_inputs(paths: list[Path]) -> list[tuple[Path, str, str]]:
    """(path, stem, kind) of every video, keypoint Parquet or StreamPoseML sequence file given or in a folder."""
    found: list[tuple[Path, str, str]] = []
    for path in paths:
        if not path.exists():
            raise SpmlError(f"{path}: no such file or folder")
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
            and (_kind(p) is not None) and not p.name.endswith(PREDICTIONS_SUFFIX))
        for f in files:
            if _in_session(f):
                # A session folder of spml serve: its keypoints, named after the folder; its video.webm is
                # the same frames again (the keypoints were made from it in the page).
                if f.name == SESSION_KEYPOINTS:
                    found.append((f, f.parent.name, "keypoints"))
                continue
            kind = _kind(f)
            if kind is None:
                raise SpmlError(f"{f}: not a video ({', '.join(VIDEO_EXTENSIONS)}), keypoint .parquet or "
                                f"*{SEQUENCE_SUFFIX} file")
            found.append((f, sequence_stem(f) if f.name.endswith(SEQUENCE_SUFFIX) else f.stem, kind))
    if not found:
        raise SpmlError(f"{', '.join(map(str, paths))}: no videos or keypoint files found")
    seen: dict[str, tuple[Path, str, str]] = {}
    for item in found:
        f, stem, _ = item
        other = seen.get(stem)
        if other is not None:
            # `spml extract --format streamposeml` writes both: the Parquet file holds the same frames and more.
            if {f.suffix, other[0].suffix} == {".parquet", ".json"}:
                seen[stem] = item if f.suffix == ".parquet" else other
                continue
            raise SpmlError(f"{f}: same stem '{stem}' as {other[0]}; outputs are named by stem, give one of them")
        seen[stem] = item
    return list(seen.values())


def _in_session(path: Path) -> bool:
    return (path.parent / "session.json").is_file() and (path.parent / SESSION_KEYPOINTS).is_file()


def _kind(path: Path) -> str | None:
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return "video"
    if path.suffix == ".parquet" or path.name.endswith(SEQUENCE_SUFFIX):
        return "keypoints"
    return None


def bundle_fingerprint(predictor: Any) -> str:
    """A hash of the bundle's manifest (model, options, features, classes, creation time)."""
    return hashlib.sha256(predictor.manifest.model_dump_json().encode()).hexdigest()[:16]


def output_paths(job: PredictJob) -> dict[str, Path]:
    """Every file this job writes, by role."""
    d, s = job.out_dir, job.stem
    out = {"predictions": d / f"{s}{PREDICTIONS_SUFFIX}", "bouts": d / f"{s}.bouts.csv"}
    if job.timeline:
        out["timeline"] = d / f"{s}.timeline.png"
    if job.csv:
        out["csv"] = d / f"{s}.predictions.csv"
    out.update({f"export:{f}": d / f"{s}{EXPORT_SUFFIXES[f]}" for f in job.exports})
    return out


def _record(job: PredictJob, source_sha: str) -> dict[str, Any]:
    return {"source": str(job.source), "source_sha256": source_sha, "bundle": job.bundle_fingerprint,
            "csv": job.csv, "exports": sorted(job.exports), "decide": job.decide_key, "timeline": job.timeline}


def _current(job: PredictJob, source_sha: str) -> dict[str, Any] | None:
    import pyarrow.parquet as pq

    paths = output_paths(job)
    if not all(p.exists() for p in paths.values()):
        return None
    try:
        meta = json.loads((pq.read_schema(paths["predictions"]).metadata or {})[_META_KEY])
    except Exception:  # unreadable or foreign file: predict again
        return None
    want = _record(job, source_sha)
    return meta if all(meta.get(k) == v for k, v in want.items()) else None


_BUNDLES: dict[tuple[str, str], Any] = {}  # per worker process: a bundle is loaded once, not per input


def remember_bundle(path: Path, fingerprint: str, predictor: Any) -> None:
    """Let jobs run in this process use a bundle the driver already loaded."""
    _BUNDLES[(str(path), fingerprint)] = predictor


def _predictor(job: PredictJob) -> Any:
    key = (str(job.bundle), job.bundle_fingerprint)
    if key not in _BUNDLES:
        _BUNDLES[key] = load_bundle(job.bundle)
    return _BUNDLES[key]


def load_sequence(path: Path) -> PoseSequence:
    """A keypoint Parquet file, or a StreamPoseML sequence file (no timestamps: 30 fps assumed; no visibility:
    1.0 where a joint is present, as `spml import streamposeml` does, so the live gate does not read it as unseen)."""
    if not path.name.endswith(SEQUENCE_SUFFIX):
        return load_keypoints(path)
    kt = read_sequence_json(path)
    cols = kt.table.column_names
    frames = kt.table.column("frame").to_numpy()
    flat = np.column_stack([kt.table.column(c).to_numpy() for c in cols[2:]]).astype(np.float32)
    xyzv = flat.reshape(len(frames), N_LANDMARKS, 4)
    xyzv[:, :, 3] = np.where(np.isnan(xyzv[:, :, 0]), np.nan, 1.0)
    return PoseSequence(xyzv=xyzv, frame_index=frames,
                        timestamps_ms=frames * (1000.0 / 30.0), fps=30.0, width=kt.width, height=kt.height,
                        source={"path": path.name[: -len(SEQUENCE_SUFFIX)], "sha256": file_sha256(path)})


def run_predict_job(job: PredictJob, progress: Callable[[int], None] | None = None) -> PredictResult:
    """Classify one input and write its outputs (runs in an executor's worker)."""
    start = time.perf_counter()
    try:
        source_sha = file_sha256(job.source)
        if not job.force and (meta := _current(job, source_sha)) is not None:
            return PredictResult(job.source, job.stem, "skipped", meta.get("frames", 0),
                                 message="outputs up to date", summary=meta.get("summary", {}))
        kp_file = job.source
        if job.kind == "video":
            kp_file = job.out_dir / "keypoints" / f"{job.stem}.parquet"
            extracted = run_job(ExtractJob(job.source, kp_file, job.estimator, job.estimator_options,
                                           sha256=source_sha), progress=None)
            if extracted.status == "failed":
                raise SpmlError(f"{job.source}: keypoint extraction failed: {extracted.message}")
        seq = load_sequence(kp_file)
        predictor = _predictor(job)
        table = predictor.predict_sequence(seq, job.decide)
        b = bouts(table, predictor.classes)
        summary = bout_summary(b, predictor.classes)
        _write_outputs(job, predictor, seq, table, b, summary, source_sha)
        if progress is not None:
            progress(seq.n_frames)
        return PredictResult(job.source, job.stem, "written", seq.n_frames, time.perf_counter() - start,
                             summary=summary)
    except Exception as exc:  # one failing input must not stop the others
        message = str(exc) if isinstance(exc, SpmlError) else f"{type(exc).__name__}: {exc}"
        return PredictResult(job.source, job.stem, "failed", seconds=time.perf_counter() - start, message=message)


def _write_outputs(job: PredictJob, predictor: Any, seq: PoseSequence, table: Any, b: Any,
                   summary: dict[str, Any], source_sha: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = output_paths(job)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    video = Path(seq.source.path).name if seq.source else job.source.name
    for key, path in paths.items():
        if key.startswith("export:"):
            export_bouts(b, key.split(":", 1)[1], path, video, predictor.target, seq.fps)
    write_text_atomic(paths["bouts"], b.to_csv(index=False))
    if job.csv:
        write_text_atomic(paths["csv"], table.to_csv(index=False))
    if job.timeline:
        write_bytes_atomic(paths["timeline"], prediction_timeline_png(table, predictor.classes,
                                                                      f"{job.stem}: {predictor.target}"))
    meta = _record(job, source_sha) | {"frames": int(len(table)), "summary": summary,
                                       "classes": predictor.classes, "target": predictor.target}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    # Written last: its record is what marks the outputs complete for a re-run.
    with atomic_path(paths["predictions"]) as tmp:
        pq.write_table(arrow, tmp)
