"""Predictors: a loaded bundle classifying windows of raw keypoints, offline (Predictor) or frame by frame (StreamPredictor)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from spml_core.errors import SpmlError, format_validation_error
from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.models.archive import BundleError
from spml_core.models.batch import predict_sequence
from spml_core.models.calibration import apply_temperature
from spml_core.models.novelty import distance
from spml_core.models.bundle import (
    MODEL_DIR,
    Features,
    Manifest,
    opened_bundle,
    read_manifest,
)
from spml_core.models.stream import StreamPredictor, bundle_timing, predict_stream
from spml_core.registry import Registry, validate_options

UNKNOWN = "unknown"


# -- prediction -----------------------------------------------------------------------------
def load_bundle(path: str | os.PathLike[str], registry: Any = None) -> Predictor:
    """Load a bundle folder or zip into a Predictor (validated manifest, safe weights, same features)."""

    with opened_bundle(path) as root:
        manifest = read_manifest(root)
        registry = registry or Registry().load()
        try:
            cls = registry.get("model", manifest.model.component)
        except SpmlError as exc:
            raise BundleError(f"{path}: the bundle needs model component {manifest.model.component!r} "
                              f"from {manifest.model.distribution}; {exc}") from None
        model_dir = root / MODEL_DIR
        for name in manifest.model.files:
            if not (model_dir / name).is_file():
                raise BundleError(f"{path}: manifest lists model/{name}, which is missing")

        options = validate_options(cls, manifest.model.options, f"{path}: manifest.model.options").model_dump()
        model = cls.load(model_dir, options, list(manifest.classes))  # type: ignore[attr-defined]
    if list(model.classes_) != list(manifest.classes):
        raise BundleError(f"{path}: model classes {model.classes_} differ from the manifest's {manifest.classes}")
    return Predictor(manifest, model, source=Path(path))


# -- writing --------------------------------------------------------------------------------


class Predictor:
    """A loaded model plus the exact feature pipeline it was trained with.

    ``predict_window`` takes raw keypoints (frames, 33, 4) and returns the label and class
    probabilities; ``new_stream`` gives a per-stream live predictor fed one frame at a time.
    """

    def __init__(self, manifest: Manifest, model: Any, source: Path | None = None) -> None:
        self.manifest = manifest
        self.model = model
        self.source = source
        self.classes: list[str] = list(manifest.classes)
        self.target = manifest.target
        self._novelty: tuple[np.ndarray, np.ndarray] | None = None
        self.spec = _load_spec(manifest.features) if manifest.features.kind == "pipeline" else None
        if self.spec is not None:
            try:
                # Instantiates the extractors and checks they still produce the spec's columns.
                self.spec._extractors()
            except SpmlError as exc:
                raise BundleError(f"{source}: {exc}") from None
        # A model trained on some of the spec's columns (e.g. a seed CSV with a column whitelist)
        # gets exactly those, in its order, from the full row the spec computes.
        self._select: np.ndarray | None = None
        if self.spec is not None and manifest.features.columns != list(self.spec.columns):
            where = {c: i for i, c in enumerate(self.spec.columns)}
            missing = [c for c in manifest.features.columns if c not in where]
            if missing or manifest.model.input_rank != 2:
                raise BundleError(f"{source}: manifest features.columns do not match its feature spec "
                                  f"(e.g. {missing[:3]})")
            self._select = np.asarray([where[c] for c in manifest.features.columns], dtype=np.int64)

    @property
    def window(self) -> int | None:
        """Frames per example (the live buffer length)."""
        return self.manifest.features.window

    def _require_spec(self) -> Any:
        if self.spec is None:
            raise SpmlError(
                f"{self.source}: this bundle was trained on preformatted columns (e.g. a StreamPoseML CSV), "
                "so it cannot compute features from raw keypoints; train with `spml train` for live use, "
                "or call predict_rows() with rows in the same column order"
            )
        return self.spec

    def _shape(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        if self.manifest.model.input_rank == 3:
            f = self.manifest.features
            per_frame = f.frame_features or rows.shape[1] // (f.window or 1)
            rows = rows.reshape(rows.shape[0], -1, per_frame)
        return rows

    def raw_proba(self, rows: np.ndarray) -> np.ndarray:
        """The model's own probabilities (before the bundle's calibration) for feature rows."""
        return self.model.predict_proba(self._shape(rows))

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, classes) for already-computed feature rows in the manifest's column order."""
        proba = self.raw_proba(rows)
        return apply_temperature(proba, self.temperature) if self.temperature else proba

    @property
    def temperature(self) -> float | None:
        """The bundle's calibration temperature (None: probabilities are used as the model gives them)."""
        cal = self.manifest.calibration
        return cal.temperature if cal is not None else None

    @property
    def threshold(self) -> float:
        """Calibrated top probability below which the answer is unknown (0: never)."""
        cal = self.manifest.calibration
        return cal.reject_below if cal is not None else 0.0

    def unknown(self, proba: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Which rows to answer unknown: calibrated top probability below the bundle's threshold, or (given
        the feature ``rows``) a window farther from every class than the training data ever was."""
        out = np.nanmax(np.atleast_2d(proba), axis=1) < self.threshold
        cal = self.manifest.calibration
        if rows is not None and cal is not None and cal.novelty_threshold is not None and cal.centers:
            if self._novelty is None:
                self._novelty = (np.asarray(cal.centers), np.asarray(cal.scale))
            out |= distance(rows, *self._novelty) > cal.novelty_threshold
        return out

    def _result(self, proba: np.ndarray, row: np.ndarray | None = None) -> dict[str, Any]:
        return self._results(np.atleast_2d(proba), None if row is None else np.atleast_2d(row))[0]

    def _results(self, proba: np.ndarray, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        """One result dict per row of calibrated probabilities (n, classes), unknown ones without a label."""
        unknown = self.unknown(proba, rows).tolist()
        classes = self.classes
        out = []
        for p, best, unsure in zip(np.asarray(proba, dtype=np.float64).tolist(), np.argmax(proba, axis=1).tolist(),
                                   unknown):
            result: dict[str, Any] = {"label": classes[best], "probabilities": dict(zip(classes, p))}
            if unsure:
                # Unlike every class it knows: no label, and the decision layer treats it as off.
                result.update(label=None, status=UNKNOWN)
            out.append(result)
        return out

    def predict_window(self, xyzv: np.ndarray, width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """Classify one window of raw keypoints (frames, 33, 4): {"label", "probabilities"}."""
        spec = self._require_spec()
        xyzv = np.asarray(xyzv, dtype=np.float32)
        if xyzv.ndim != 3 or xyzv.shape[1:] != (33, 4):
            raise SpmlError(f"predict_window expects keypoints shaped (frames, 33, 4), got {xyzv.shape}")
        w, h = _frame_size(self.manifest, width, height)
        row = self.select(spec.transform_window(xyzv, w, h))
        return self._result(self.predict_rows(row)[0], row)

    def select(self, row: np.ndarray) -> np.ndarray:
        """The model's columns of a full feature-spec row (identity unless trained on a subset)."""
        return row if self._select is None else row[..., self._select]

    def predict_sequence(self, seq: Any, decide: Any = None, width: int | None = None,
                         height: int | None = None) -> Any:
        """Per-frame predictions of a whole PoseSequence as a DataFrame (spml_core.models.batch)."""
        return predict_sequence(self, seq, decide, width, height)

    def new_stream(self, width: int | None = None, height: int | None = None) -> StreamPredictor:
        """A live predictor for one stream (one browser tab, one camera): push frames with their t_ms."""
        return StreamPredictor(self, *_frame_size(self.manifest, width, height))

    def predict_stream(self, xyzv: np.ndarray, t_ms: np.ndarray, width: int | None = None,
                       height: int | None = None) -> list[dict[str, Any] | None]:
        """What the live path returns after each frame of (frames, 33, 4) keypoints taken at ``t_ms``."""
        self._require_spec()
        return predict_stream(self, np.asarray(xyzv), t_ms, *_frame_size(self.manifest, width, height))

    @property
    def timing(self) -> Any:
        """The bundle's frame rate, window duration and lowest supported input rate (30 fps if unrecorded)."""
        return bundle_timing(self.manifest)

    def info(self) -> dict[str, Any]:
        """Summary for UIs and logs: target, classes, model, window, metrics."""
        m = self.manifest
        return {"target": m.target, "classes": m.classes, "model": m.model.component,
                "window": m.features.window, "created_at": m.created_at, "metrics": m.metrics,
                "live": self.spec is not None, "timing": self.timing.model_dump(exclude={"per_video_fps"}),
                "pose": m.features.pose}


def _frame_size(manifest: Manifest, width: int | None, height: int | None) -> tuple[int, int]:
    if width and height:
        return int(width), int(height)
    if manifest.features.frame_size:
        return manifest.features.frame_size
    raise SpmlError("width and height of the video frames are needed (keypoints are normalised to them)")


def _load_spec(features: Features) -> Any:

    try:
        return FeaturePipelineSpec.model_validate(features.spec or {})
    except ValidationError as exc:

        raise BundleError(format_validation_error(exc, "manifest.json: features.spec")) from None

