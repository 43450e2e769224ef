"""Config-driven runs: `spml run config.yml` executes the configured stages in order, on one registry."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spml_core.config import (
    Config,
    DatasetStage,
    EvaluateStage,
    ExtractStage,
    TrainStage,
    load_config,
    validate_components,
)
from spml_core.datasets.build import build_and_write
from spml_core.errors import SpmlError
from spml_core.features.offline import formatting_step
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.keypoints.batch import run_extract
from spml_core.models.augment import AugmentSettings, parse_label_map
from spml_core.models.evaluation import evaluate_bundle
from spml_core.models.examples import default_spec
from spml_core.models.training import TrainResult, train
from spml_core.registry import Registry

__all__ = ["STAGES", "run_config", "run_extract"]


def run_extract_stage(cfg: Config, stage: ExtractStage, registry: Registry) -> Any:
    """The `extract` stage: pipeline.extract (videos, out, estimator, executor)."""
    ex = stage.executor
    results = run_extract(
        cfg.resolve(stage.videos), cfg.resolve(stage.out), stage.estimator.use, stage.estimator.options,
        executor=ex.use if ex else "local",
        executor_options=(ex.options if ex else {}) | ({"workers": stage.workers} if stage.workers else {}),
        formats=("parquet", "streamposeml") if stage.format == "streamposeml" else ("parquet",),
        retries=stage.retries, registry=registry,
    )
    if any(r.status == "failed" for r in results):
        raise SpmlError("extract: some videos failed (see above); finished outputs are kept")
    return results


def run_dataset_stage(cfg: Config, stage: DatasetStage, registry: Registry) -> Any:
    """The `dataset` stage: build, format when configured, write dataset and report."""
    formatting = spec = None
    if stage.features or stage.feature_options or stage.segmentation is not None or stage.decimals is not None:
        # Resolved now, so unknown feature or strategy names fail before any keypoints are read.
        spec = FeaturePipelineSpec.from_stage(stage).resolve(registry)
        formatting = formatting_step(spec, registry=registry, gate=stage.gate)
    ex = stage.executor  # absent: the single-process build (fastest for most datasets)
    return build_and_write(
        cfg.resolve(stage.keypoints), cfg.resolve(stage.annotations), cfg.resolve(stage.out),
        cfg.annotation_schema, parser=stage.parser.use, parser_options=stage.parser.options,
        include_unlabeled=stage.include_unlabeled, strict=stage.strict, formatting=formatting,
        feature_spec=spec, executor=ex.use if ex else None, executor_options=ex.options if ex else None,
        retries=stage.retries, registry=registry, gate=stage.gate,
    )


def run_train_stage(cfg: Config, stage: TrainStage, registry: Registry) -> TrainResult:
    """The `train` stage: pipeline.train (dataset, target, out, model, search, split)."""
    spec = default_spec(stage.target, stage.features or None, stage.window, stage.stride, stage.pool or None,
                        feature_options=stage.feature_options)
    return train(cfg.resolve(stage.dataset), stage.target, cfg.resolve(stage.out), stage.model.use,
                 stage.model.options, spec=spec, split=stage.split, n_splits=stage.folds, search=stage.search,
                 seed=stage.seed, zip_bundle=stage.zip, registry=registry, background=stage.background,
                 reject_keep=stage.reject_keep, fail_on_warning=stage.fail_on_warning, gate=stage.gate,
                 augment=AugmentSettings(mirror=parse_label_map(stage.mirror) if stage.mirror is not None else None,
                                         time_warp=stage.time_warp, jitter=stage.jitter, seed=stage.seed))


def run_evaluate_stage(cfg: Config, stage: EvaluateStage, registry: Registry) -> dict[str, Any]:
    """The `evaluate` stage: score pipeline.evaluate.bundle on pipeline.evaluate.dataset."""
    out = cfg.resolve(stage.out) if stage.out else None
    return evaluate_bundle(cfg.resolve(stage.bundle), cfg.resolve(stage.dataset), out, mode=stage.mode,
                           registry=registry, fail_on_warning=stage.fail_on_warning)


STAGES: dict[str, Callable[[Config, Any, Registry], Any]] = {
    "extract": run_extract_stage,
    "dataset": run_dataset_stage,
    "train": run_train_stage,
    "evaluate": run_evaluate_stage,
}


def run_config(path: Path, only: list[str] | None = None, registry: Registry | None = None) -> Config:
    """Validate config.yml (both passes), then run each configured stage in order on one registry."""
    cfg = load_config(path)
    registry = registry or Registry().load()
    validate_components(cfg, registry, str(path))
    ran = []
    for name, run_stage in STAGES.items():
        stage = getattr(cfg.pipeline, name, None)
        if stage is None or (only and name not in only):
            continue
        print(f"== spml run: {name}", file=sys.stderr)
        run_stage(cfg, stage, registry)
        ran.append(name)
    if not ran:
        raise SpmlError(f"{path}: no pipeline stages configured (add pipeline.extract, pipeline.dataset, ...)")
    return cfg
