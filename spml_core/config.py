"""config.yml: the seed's annotation_schema plus the pipeline stages, validated with pydantic.

Pass 1 validates the file's shape; pass 2 (``validate_components``) resolves every ``use:``
through the registry and validates its ``options`` against the component's Options model.
Errors name the file and the dotted key path. Relative paths resolve against the config's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ActuatorConfig", "AnnotationFields", "AnnotationSchema", "ComponentRef", "Config", "DatasetStage",
    "EvaluateStage", "ExtractStage", "PipelineConfig", "Strict", "TrainStage", "format_validation_error",
    "load_config", "validate_components", "validate_options",
]

import yaml
from pydantic import Field, ValidationError, field_validator

from spml_core.actuation.decisions import DecisionEngine
from spml_core.actuation.hub import ActuatorConfig
from spml_core.components import ComponentRef, Strict
from spml_core.datasets.annotations import AnnotationFields, AnnotationSchema
from spml_core.errors import ConfigError, format_validation_error
from spml_core.features.defaults import DEFAULT_FEATURES
from spml_core.features.timegrid import GateConfig
from spml_core.payloads import PayloadError
from spml_core.registry import validate_options


class ExtractStage(Strict):
    """`spml extract`: videos -> one keypoint Parquet file per video."""

    videos: Path = Field(description="A video file or a folder of videos")
    out: Path = Field(description="Folder for <video stem>.parquet files")
    estimator: ComponentRef = Field(default_factory=lambda: ComponentRef(use="mediapipe"))
    workers: int | None = Field(None, ge=1, description="Processes (default: number of cores)")
    format: Literal["parquet", "streamposeml"] = "parquet"
    executor: ComponentRef | None = Field(
        None, description="Executor: {use: local} (default) or {use: dask, options: {scheduler: tcp://HOST:PORT}}"
    )
    retries: int = Field(1, ge=0, description="Times a failing video is retried before it is reported")


class DatasetStage(Strict):
    """`spml dataset`: keypoints + annotations -> one table (a row per frame or per example)."""

    keypoints: Path
    annotations: Path
    out: Path
    include_unlabeled: bool = True
    strict: bool = False
    parser: ComponentRef = Field(default_factory=lambda: ComponentRef(use="json"))
    features: list[str] = Field(default_factory=list)
    feature_options: dict[str, Any] = Field(default_factory=dict)
    segmentation: ComponentRef | None = None
    decimals: int | None = Field(None, ge=0, le=12)
    executor: ComponentRef | None = Field(
        None, description="Build each video in a worker: {use: local, options: {workers: N}} or {use: dask, "
        "options: {scheduler: tcp://HOST:PORT}}; absent: one process (fastest unless formatting is heavy)"
    )
    retries: int = Field(1, ge=0, description="Times a failing video is retried on the executor before the run stops")
    gate: GateConfig = Field(
        default_factory=GateConfig, description="Windows the live gate refuses are left out of formatted windows "
        "(as training does); {enabled: false} keeps them (docs/live.md)")


class TrainStage(Strict):
    """`spml train`: dataset -> model bundle."""

    dataset: Path
    target: str
    out: Path
    model: ComponentRef = Field(default_factory=lambda: ComponentRef(use="xgboost"))
    search: bool = False
    split: Literal["auto", "group", "blocked", "random"] = "auto"
    folds: int = Field(5, ge=2, description="Cross-validation folds")
    features: list[str] = Field(default_factory=list, description="Feature extractors (default: angles, distances, normalized)")
    feature_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    window: int = Field(10, ge=1, description="Frames per example")
    stride: int = Field(1, ge=1, description="Frames between example starts")
    pool: list[Literal["mean", "max", "std"]] = Field(default_factory=list, description="Pool windows instead of flattening")
    seed: int = 0
    zip: bool = Field(False, description="Also write <out>.zip")
    background: str | None = Field(None, description="Keep unlabelled frames as this explicit class")
    reject_keep: float | None = Field(
        0.95, gt=0, le=1, description="Answer 'unknown' below the calibrated probability keeping this share of correct "
        "cross-validated answers; null: never")
    mirror: list[str] | None = Field(
        None, description="Mirrored training copies; label pairs that swap, e.g. ['Left Step<->Right Step'] ([]: none swap)")
    time_warp: list[float] = Field(default_factory=list, description="Speed factors of resampled training copies, e.g. [0.9, 1.1]")
    jitter: float = Field(0.0, ge=0, description="Gaussian noise copy of the training folds (share of the frame)")
    fail_on_warning: bool = Field(False, description="Stop the run when metrics.json has quality warnings")
    gate: GateConfig = Field(
        default_factory=GateConfig, description="Presence and visibility gate of training windows and of the "
        "bundle live (docs/live.md); {enabled: false} trains on every window")


class EvaluateStage(Strict):
    """`spml evaluate`: bundle + dataset -> metrics.json and plots."""

    bundle: Path
    dataset: Path
    out: Path | None = Field(None, description="Output folder (default: <bundle>/eval-<dataset name>)")
    mode: Literal["auto", "holdout", "cv"] = "auto"
    fail_on_warning: bool = Field(False, description="Stop the run when the report has quality warnings")


class PipelineConfig(Strict):
    """Stages `spml run` executes, in this order, when present."""

    extract: ExtractStage | None = None
    dataset: DatasetStage | None = None
    train: TrainStage | None = None
    evaluate: EvaluateStage | None = None


class Config(Strict):
    """The whole config.yml."""

    annotation_schema: AnnotationSchema = Field(default_factory=AnnotationSchema)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    serve: dict[str, Any] = Field(default_factory=dict)
    actuators: list[ActuatorConfig] = Field(default_factory=list)

    base_dir: Path = Field(Path("."), exclude=True, description="Folder of the config file")

    @field_validator("actuators")
    @classmethod
    def _unique_actuator_names(cls, actuators: list[ActuatorConfig]) -> list[ActuatorConfig]:
        return ActuatorConfig.check_unique(actuators)

    def resolve(self, path: Path | str) -> Path:
        """Resolve a path from the config against the config file's folder."""
        p = Path(os.path.expanduser(str(path)))
        return p if p.is_absolute() else (self.base_dir / p)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate config.yml; a missing path gives the defaults (seed annotation schema)."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at line {line}); "
                          "save the config as UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    problem = _expansion_problem(data)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    cfg.base_dir = path.resolve().parent
    return cfg


MAX_CONFIG_NODES = 100_000


def _expansion_problem(data: Any) -> str | None:
    """Why parsed YAML is refused: aliases that expand to too many values (a 'billion laughs') or a cycle.

    YAML aliases share one object, so parsing is cheap; validating walks every use of it. Sizes are
    counted per distinct object (memoised by id), so the check itself stays fast.
    """
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        obj, done = stack.pop()
        if not isinstance(obj, dict | list):
            continue
        key = id(obj)
        children = list(obj.keys()) + list(obj.values()) if isinstance(obj, dict) else obj
        if done:
            open_ids.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
            if sizes[key] > MAX_CONFIG_NODES:
                return (f"YAML aliases expand to more than {MAX_CONFIG_NODES} values (an alias bomb?); "
                        "refusing to read it")
            continue
        if key in sizes:
            continue
        if key in open_ids:
            return "a YAML alias refers to itself (a recursive structure); refusing to read it"
        open_ids.add(key)
        stack.append((obj, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list) and id(c) not in sizes)
    return None


def validate_components(cfg: Config, registry: Any, source: str = "config.yml") -> None:
    """Pass 2: every `use:` names an installed component and its options validate."""
    refs: list[tuple[str, str, ComponentRef]] = []
    p = cfg.pipeline
    if p.extract:
        refs.append(("pose_estimator", "pipeline.extract.estimator", p.extract.estimator))
    if p.dataset:
        refs.append(("annotation_parser", "pipeline.dataset.parser", p.dataset.parser))
        if p.dataset.segmentation:
            refs.append(("segmenter", "pipeline.dataset.segmentation", p.dataset.segmentation))
    if p.train:
        refs.append(("model", "pipeline.train.model", p.train.model))
    for name, stage in (("extract", p.extract), ("dataset", p.dataset)):
        if stage is not None and stage.executor is not None:
            refs.append(("executor", f"pipeline.{name}.executor", stage.executor))
    for i, actuator in enumerate(cfg.actuators):
        refs.append(("actuator", f"actuators.{i}", ComponentRef(use=actuator.use, options=actuator.options)))
    for kind, where, ref in refs:
        try:
            cls = registry.get(kind, ref.use)
        except Exception as exc:
            raise ConfigError(f"{source}: {where}.use: {exc}") from None
        try:
            validate_options(cls, ref.options, f"{where}.options")
        except ConfigError as exc:
            raise ConfigError("\n".join(f"{source}: {line}" for line in str(exc).splitlines())) from None
    for name in ("dataset", "train"):
        stage = getattr(p, name)
        if stage is not None:
            _validate_features(stage, f"pipeline.{name}", registry, source)
    for i, actuator in enumerate(cfg.actuators):
        _validate_payloads(actuator, f"actuators.{i}", registry, source)


def _validate_features(stage: DatasetStage | TrainStage, where: str, registry: Any, source: str) -> None:
    """<stage>.features name installed feature extractors; feature_options fit them."""
    names = stage.features or list(DEFAULT_FEATURES)
    for i, name in enumerate(stage.features):
        try:
            registry.get("feature_extractor", name)
        except Exception as exc:
            raise ConfigError(f"{source}: {where}.features.{i}: {exc}") from None
    for name, options in stage.feature_options.items():
        if name not in names:
            raise ConfigError(f"{source}: {where}.feature_options.{name}: not among the features "
                              f"({', '.join(names)})")
        try:
            validate_options(registry.get("feature_extractor", name), options, f"{where}.feature_options.{name}")
        except ConfigError as exc:
            raise ConfigError("\n".join(f"{source}: {line}" for line in str(exc).splitlines())) from None


def _validate_payloads(actuator: ActuatorConfig, where: str, registry: Any, source: str) -> None:
    """Every payload of the actuator's decisions encodes, as `spml serve` will encode it at start-up."""
    device = registry.build("actuator", actuator.use, actuator.options, where)
    try:
        DecisionEngine.from_config(actuator.decisions, device.encode, actuator.label, f"{where}.decisions")
    except PayloadError as exc:
        raise ConfigError(f"{source}: {exc}") from None
