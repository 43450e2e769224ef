"""`spml dataset --executor`: a video per task, and the same table as the single-process build.

Uses the real example video's keypoints (tests/conftest.py) copied under several stems, each with
the example's annotations; the copies differ (frames cut, a video without annotations, one without
any person) so that the parts are not all alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spml_core.cli.main import main
from spml_core.config import AnnotationSchema
from spml_core.datasets.build import build_and_write
from spml_core.datasets.io import read_dataset
from spml_core.datasets.report import report_path
from spml_core.datasets.parts import parts_dir_for
from spml_core.errors import SpmlError
from spml_core.features.spec import SPEC_ATTR, FeaturePipelineSpec, spec_path
from spml_core.features.offline import formatting_step


def make_videos(example_keypoints, example_annotations: Path, folder: Path, n: int = 4) -> tuple[Path, Path]:
    """`n` copies of the example under clip_0..: clip_1 lacks its last 100 frames, clip_2 has no
    annotations, clip_3 has no person at all (every landmark NaN)."""
    kp, an = folder / "keypoints", folder / "annotations"
    kp.mkdir(parents=True)
    an.mkdir(parents=True)
    data = json.loads(example_annotations.read_text(encoding="utf-8"))
    seq = example_keypoints
    for i in range(n):
        stem = f"clip_{i}"
        if i == 1:
            m = len(seq.xyzv) - 100
            update = {"xyzv": seq.xyzv[:m], "frame_index": seq.frame_index[:m], "timestamps_ms": seq.timestamps_ms[:m]}
            if seq.world is not None:
                update["world"] = seq.world[:m]
            copy = seq.model_copy(update=update)
        elif i == 3:
            copy = seq.model_copy(update={"xyzv": np.full_like(seq.xyzv, np.nan)})
        else:
            copy = seq
        copy.save(kp / f"{stem}.parquet")
        if i != 2:
            (an / f"{stem}.json").write_text(json.dumps({**data, "name": f"{stem}.webm"}), encoding="utf-8")
    return kp, an


@pytest.fixture()
def videos(example_keypoints, example_annotations: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Four example copies (see make_videos)."""
    return make_videos(example_keypoints, example_annotations, tmp_path / "data")


def window_spec() -> FeaturePipelineSpec:
    """Features + a window segmentation with a stride: frame rows numbered by example."""
    return FeaturePipelineSpec.from_options(
        ["angles", "distances", "normalized"], None, "window",
        {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type", "stride": 5}, 4,
    ).resolve()


def build(videos, out: Path, spec=None, **kw):
    """build_and_write quietly, with the default schema."""
    kp, an = videos
    return build_and_write(kp, an, out, AnnotationSchema(), formatting=None if spec is None else formatting_step(
        spec, quiet=True), feature_spec=spec, quiet=True, **kw)


def assert_same(single: pd.DataFrame, parts: pd.DataFrame) -> None:
    """Same columns, dtypes, categories, values, row order and spec."""
    pd.testing.assert_frame_equal(single, parts, check_exact=True, check_categorical=True)
    for name in single.columns:
        if isinstance(single[name].dtype, pd.CategoricalDtype):
            assert list(single[name].cat.categories) == list(parts[name].cat.categories), name
    assert single.attrs.get(SPEC_ATTR) == parts.attrs.get(SPEC_ATTR)


@pytest.mark.parametrize("include_unlabeled", [True, False])
def test_local_executor_builds_the_single_process_table(videos, tmp_path: Path, include_unlabeled: bool) -> None:
    single, rep1 = build(videos, tmp_path / "single.parquet", include_unlabeled=include_unlabeled)
    multi, rep2 = build(videos, tmp_path / "multi.parquet", include_unlabeled=include_unlabeled,
                        executor="local", executor_options={"workers": 2})
    assert_same(single, multi)
    assert rep1.model_dump() == rep2.model_dump()
    assert_same(read_dataset(tmp_path / "single.parquet"), read_dataset(tmp_path / "multi.parquet"))
    assert report_path(tmp_path / "multi.parquet").read_text() == report_path(tmp_path / "single.parquet").read_text()
    assert not parts_dir_for(tmp_path / "multi.parquet").exists()


@pytest.mark.parametrize("strategy, options", [
    ("window", {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type", "stride": 5}),
    ("flatten_into_columns", {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type"}),
    ("split_on_label", {"segmentation_splitter_label": "step_type", "pool": ["mean", "max"]}),
])
def test_local_executor_formats_as_the_single_process_build(
    videos, tmp_path: Path, strategy: str, options: dict
) -> None:
    spec = FeaturePipelineSpec.from_options(["angles", "distances", "normalized"], None, strategy, options, 4).resolve()
    single, _ = build(videos, tmp_path / "single.parquet", spec)
    multi, _ = build(videos, tmp_path / "multi.parquet", spec, executor="local", executor_options={"workers": 2})
    assert len(single) > 0 and "clip_3" not in set(single["video"])  # no person: every row dropped
    assert_same(single, multi)
    assert spec_path(tmp_path / "multi.parquet").read_text() == spec_path(tmp_path / "single.parquet").read_text()
    assert_same(read_dataset(tmp_path / "single.parquet"), read_dataset(tmp_path / "multi.parquet"))
    assert not parts_dir_for(tmp_path / "multi.parquet").exists()


def test_cli_executor_flags_write_the_same_dataset(videos, tmp_path: Path) -> None:
    kp, an = videos
    common = ["dataset", "--keypoints", str(kp), "--annotations", str(an), "--quiet",
              "--strategy", "window", "--window", "10", "--window-label", "weight_transfer_type"]
    assert main([*common, "--out", str(tmp_path / "single.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "multi.csv"), "--executor", "local", "--workers", "2",
                 "--retries", "0"]) == 0
    assert (tmp_path / "single.csv").read_bytes() == (tmp_path / "multi.csv").read_bytes()


def test_broken_keypoint_file_stops_the_run_and_names_it(videos, tmp_path: Path) -> None:
    kp, an = videos
    out = tmp_path / "data.parquet"
    out.write_bytes(b"an older dataset")
    (kp / "clip_1.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(SpmlError, match=r"clip_1\.parquet: not a readable Parquet file"):
        build(videos, out, executor="local", executor_options={"workers": 2})
    assert out.read_bytes() == b"an older dataset"
    assert not parts_dir_for(out).exists()
    assert not report_path(out).exists()


def test_video_failing_in_a_worker_stops_the_run(videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that breaks after planning (rows unreadable, footer fine) fails in its worker, is not retried
    (an input error), and stops the dataset with its name; no parts, no output."""
    import pyarrow.parquet as pq

    kp, an = videos
    out = tmp_path / "data.parquet"
    out.write_bytes(b"an older dataset")
    from spml_core.datasets import plan as dataset

    real = dataset.KeypointFile.load
    calls = []

    def load(self, columns=None):
        calls.append(self.path.name)
        if self.path.name == "clip_1.parquet" and columns is None:
            raise SpmlError(f"{self.path}: cannot read keypoints (simulated corrupt page)")
        return real(self, columns)

    monkeypatch.setattr(dataset.KeypointFile, "load", load)
    assert pq.read_metadata(kp / "clip_1.parquet").num_rows > 0
    with pytest.raises(SpmlError, match=r"video 'clip_1' .*clip_1\.parquet\) failed: .*simulated corrupt page"):
        # workers=1 runs the tasks in this process, where the patch applies.
        build(videos, out, executor="local", executor_options={"workers": 1}, retries=3)
    assert calls.count("clip_1.parquet") == 1  # an input error is not retried
    assert out.read_bytes() == b"an older dataset"
    assert not parts_dir_for(out).exists()


def test_config_executor_is_honoured_by_spml_run(videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spml_core.datasets import build as dataset_build
    from spml_core.datasets import parts as dataset_parts

    kp, an = videos
    seen = []
    real = dataset_parts.build_on_executor

    def spy(plan, parts_dir, executor, **kw):
        seen.append((executor.name, executor.options.workers, parts_dir.name))
        return real(plan, parts_dir, executor, **kw)

    monkeypatch.setattr(dataset_build, "build_on_executor", spy)
    config = tmp_path / "config.yml"
    config.write_text(
        "pipeline:\n  dataset:\n"
        f"    keypoints: {kp}\n    annotations: {an}\n    out: {tmp_path / 'run.parquet'}\n"
        "    features: [angles, distances]\n"
        "    segmentation: {use: window, options: {segmentation_window: 10, "
        "segmentation_window_label: weight_transfer_type}}\n"
        "    executor: {use: local, options: {workers: 2}}\n    retries: 0\n",
        encoding="utf-8",
    )
    assert main(["run", str(config)]) == 0
    assert seen == [("local", 2, ".run.parquet.parts")]
    spec = FeaturePipelineSpec.from_options(
        ["angles", "distances"], None, "window",
        {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type"}, 4).resolve()
    single, _ = build(videos, tmp_path / "single.parquet", spec)
    assert_same(read_dataset(tmp_path / "single.parquet"), read_dataset(tmp_path / "run.parquet"))


def test_retries_without_executor_is_an_error(videos, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kp, an = videos
    assert main(["dataset", "--keypoints", str(kp), "--annotations", str(an), "--out", str(tmp_path / "d.parquet"),
                 "--retries", "2", "--quiet"]) == 1
    assert "--retries applies to a dataset built on an executor" in capsys.readouterr().err
    assert not (tmp_path / "d.parquet").exists()
