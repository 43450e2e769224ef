"""The feature pipeline spec: which extractors, segmentation and rounding turn keypoints into a model's rows (docs/features.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from spml_core.errors import ConfigError, SpmlError
from spml_core.features.defaults import DEFAULT_DECIMALS, DEFAULT_FEATURES
from spml_core.features.segments import (
    LayoutKind,
    PoolStat,
    RowLayout,
)
from spml_core.keypoints.skeleton import N_LANDMARKS

if TYPE_CHECKING:
    import pandas as pd

    from spml_core.components import FeatureExtractor
from spml_core.errors import format_validation_error
from spml_core.features.compute import (
    _column_mismatch,
    _finish,
    _live_window,
    _make_extractors,
    _make_segmenter,
    _Runtime,
    build_rows_fixed,
    frame_features,
    layout_columns,
)
from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.visibility import VisibilityOptions, filled_options, policy_of
from spml_core.util.atomic import write_text_atomic
from spml_core.util.names import repeated

SPEC_VERSION = 1


SPEC_ATTR = "spml_feature_spec"


NOTES_ATTR = "spml_format_notes"


class FeatureRef(BaseModel):
    """A component by name with its options (as in config.yml's ``use:`` / ``options:``)."""

    model_config = ConfigDict(extra="forbid")
    use: str = Field(description="Component name, as listed by `spml plugins`")
    options: dict[str, Any] = Field(default_factory=dict)


class FeaturePipelineSpec(BaseModel):
    """How raw keypoints become model input rows; serialisable (``model_dump()``) into model bundles.

    The first four fields are what a user chooses. The rest are filled by :meth:`resolve` from the
    installed components and checked again when a resolved spec is loaded, so a bundle whose
    features no longer match the installed extractors fails loudly instead of feeding a model
    shifted columns.
    """

    model_config = ConfigDict(extra="forbid")

    spec_version: Literal[1] = SPEC_VERSION
    features: list[FeatureRef] = Field(min_length=1, description="Feature extractors, in column order")
    segmentation: FeatureRef = Field(
        default_factory=lambda: FeatureRef(use="none"), description="Segmentation strategy and its options"
    )
    decimals: int | None = Field(DEFAULT_DECIMALS, ge=0, le=12, description="Round features (None: no rounding)")
    # -- resolved ------------------------------------------------------------------------------
    layout: LayoutKind | None = Field(None, description="frame, flatten or pool (from the strategy)")
    window: int | None = Field(None, ge=1, description="Frames per live row (None: no fixed window)")
    pool: list[PoolStat] = Field(default_factory=list, description="Pooling statistics, in column order")
    history: int = Field(0, ge=0, description="Frames before the window some features need (velocities)")
    frame_columns: list[str] = Field(default_factory=list, description="Feature columns of one frame")
    columns: list[str] = Field(default_factory=list, description="Output feature columns, exact order")
    label_columns: list[str] = Field(default_factory=list, description="Class columns of the dataset")

    _runtime: Any = PrivateAttr(default=None)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[FeatureRef]) -> list[FeatureRef]:
        dupes = repeated(f.use for f in v)
        if dupes:
            raise ValueError(f"feature(s) listed twice: {', '.join(dupes)}")
        return v

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_options(
        cls,
        features: Sequence[str] | None = None,
        feature_options: Mapping[str, Mapping[str, Any]] | None = None,
        strategy: str | None = None,
        strategy_options: Mapping[str, Any] | None = None,
        decimals: int | None = DEFAULT_DECIMALS,
    ) -> FeaturePipelineSpec:
        """Build a spec from CLI/config-style options (feature names, per-feature options, strategy)."""
        names = list(features) if features else list(DEFAULT_FEATURES)
        feature_options = dict(feature_options or {})
        stray = sorted(set(feature_options) - set(names))
        if stray:
            raise ConfigError(
                f"feature_options for {', '.join(stray)}, which are not among the features ({', '.join(names)})"
            )
        return cls(
            features=[FeatureRef(use=n, options=dict(feature_options.get(n, {}))) for n in names],
            segmentation=FeatureRef(use=strategy or "none", options=dict(strategy_options or {})),
            decimals=decimals,
        )

    @classmethod
    def from_stage(cls, stage: Any) -> FeaturePipelineSpec:
        """Build a spec from config.yml's ``pipeline.dataset`` (a DatasetStage)."""
        seg = stage.segmentation
        return cls.from_options(
            stage.features, stage.feature_options, seg.use if seg else None, seg.options if seg else None,
            DEFAULT_DECIMALS if stage.decimals is None else stage.decimals,
        )

    # -- resolution ----------------------------------------------------------------------------
    @property
    def is_resolved(self) -> bool:
        """True when the layout and column order are filled in."""
        return self.layout is not None and bool(self.columns)

    def resolve(self, registry: Any = None, label_columns: Sequence[str] | None = None) -> FeaturePipelineSpec:
        """A copy with layout, window, pooling and the exact column order filled in from the components."""
        extractors = _make_extractors(self.features, registry)
        frame_columns = [c for e in extractors for c in e.columns()]
        dupes = repeated(frame_columns)
        if dupes:
            raise ConfigError(f"features produce the same column twice: {', '.join(dupes[:5])}")
        segmenter = _make_segmenter(self.segmentation, registry)
        layout = segmenter.row_layout()
        update = {
            # A set policy is recorded with its threshold, so later default changes leave a bundle's meaning alone.
            "features": [f.model_copy(update={"options": filled_options(f.options)}) if e.Options is not None
                         and issubclass(e.Options, VisibilityOptions) else f
                         for f, e in zip(self.features, extractors)],
            "layout": layout.kind,
            "window": layout.window,
            "pool": list(layout.pool),
            "history": max((int(getattr(e, "history", 0)) for e in extractors), default=0),
            "frame_columns": frame_columns,
            "columns": layout_columns(layout, frame_columns),
            "label_columns": list(label_columns) if label_columns is not None else list(self.label_columns),
        }
        if self.columns and self.columns != update["columns"]:
            raise SpmlError(_column_mismatch(self.columns, update["columns"]))
        spec = self.model_copy(update=update)
        spec._runtime = _Runtime(extractors, segmenter)
        return spec

    def _extractors(self) -> list[FeatureExtractor]:
        """Instantiated extractors (cached); a resolved spec is checked against them once."""
        if self._runtime is None:
            if not self.is_resolved:
                raise SpmlError("the feature spec is not resolved: call spec.resolve() (format_frames does)")
            extractors = _make_extractors(self.features, None)
            found = [c for e in extractors for c in e.columns()]
            if found != self.frame_columns:
                raise SpmlError(_column_mismatch(self.frame_columns, found))
            self._runtime = _Runtime(extractors, None)
        return self._runtime.extractors

    @property
    def context_frames(self) -> int:
        """Frames transform_window needs for exact agreement with the offline path: window + history
        (+ impute_frames when an extractor imputes low-visibility joints)."""
        return (self.window or 1) + self.history + self.carry_frames

    @property
    def carry_frames(self) -> int:
        """How far back an imputed joint position can come from (0 without low_visibility: impute)."""
        return max((p.carry for p in map(policy_of, self._extractors()) if p is not None), default=0)

    def layout_info(self) -> RowLayout:
        """The resolved row layout."""
        if not self.is_resolved:
            raise SpmlError("the feature spec is not resolved: call spec.resolve()")
        return RowLayout(self.layout, self.window, tuple(self.pool))  # type: ignore[arg-type]

    # -- live ----------------------------------------------------------------------------------
    def transform_window(self, xyzv_window: np.ndarray, width: int, height: int) -> np.ndarray:
        """One model input row (1-D float32, ``columns`` order) from the last ``window`` frames.

        Pass ``context_frames`` frames (window + history + imputation reach) to match the offline
        rows exactly when temporal features (velocities) or imputation are used; with fewer, the
        first frames' velocities are NaN and joints hidden since before them are not imputed.
        """
        spec = self if self.is_resolved else self.resolve()
        layout = spec.layout_info()
        window = _live_window(spec)
        arr = np.asarray(xyzv_window, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1] != N_LANDMARKS or arr.shape[2] != 4:
            raise SpmlError(f"transform_window expects keypoints shaped (frames, 33, 4), got {arr.shape}")
        if len(arr) < window:
            raise SpmlError(f"transform_window needs at least {window} frames (the window), got {len(arr)}")
        arr = arr[-(window + spec.history + spec.carry_frames):]
        feats = frame_features(spec._extractors(), arr, width, height, temporal_blocks=None)
        rows = build_rows_fixed(feats[-window:][None], layout)
        return _finish(rows, spec.decimals)[0]

    def live_buffer(self, width: int, height: int) -> LiveFeatureBuffer:
        """A LiveFeatureBuffer for one stream of frames of this size."""
        return LiveFeatureBuffer(self, width, height)


def spec_path(dataset: str | os.PathLike[str]) -> Path:
    """Where a formatted dataset's spec goes: '<dataset>.spec.json' beside it."""
    p = Path(dataset)
    return p.with_name(p.name + ".spec.json")


def write_feature_spec(df: pd.DataFrame, dataset: str | os.PathLike[str]) -> Path | None:
    """Write the resolved spec of a formatted table beside its dataset file (atomic); None if unformatted."""

    raw = df.attrs.get(SPEC_ATTR)
    if not raw:
        return None
    return write_text_atomic(spec_path(dataset), json.dumps(json.loads(raw), indent=2) + "\n")


def read_feature_spec(dataset: str | os.PathLike[str]) -> FeaturePipelineSpec | None:
    """The spec a formatted dataset was made with ('<dataset>.spec.json'), or None when there is none."""
    from pydantic import ValidationError


    p = spec_path(dataset)
    if not p.is_file():
        return None
    try:
        return FeaturePipelineSpec.model_validate_json(p.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise SpmlError(format_validation_error(exc, str(p))) from None

