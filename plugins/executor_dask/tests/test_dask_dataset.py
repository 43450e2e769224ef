"""`spml dataset --executor dask` on a real 2-worker LocalCluster (127.0.0.1): the same table as
the single-process build, unformatted and formatted, from the real example video's keypoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spml_core.config import AnnotationSchema
from spml_core.datasets.build import build_and_write
from spml_core.datasets.io import read_dataset
from spml_core.datasets.parts import parts_dir_for
from spml_core.errors import SpmlError
from spml_core.features.spec import SPEC_ATTR, FeaturePipelineSpec
from spml_core.features.offline import formatting_step


@pytest.fixture(scope="module")
def videos(example_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example's keypoints (MediaPipe lite) under three stems, one without annotations."""
    from spml_core.pipeline import run_extract

    root = tmp_path_factory.mktemp("dask_dataset")
    extracted = root / "extracted"
    results = run_extract(example_dir / "example_video.webm", extracted, "mediapipe", {"model": "lite"}, quiet=True)
    assert [r.status for r in results] == ["written"], [r.message for r in results]
    kp, an = root / "keypoints", root / "annotations"
    kp.mkdir()
    an.mkdir()
    data = json.loads((example_dir / "example_video.json").read_text(encoding="utf-8"))
    for i in range(3):
        (kp / f"clip_{i}.parquet").write_bytes((extracted / "example_video.parquet").read_bytes())
        if i != 1:
            (an / f"clip_{i}.json").write_text(json.dumps({**data, "name": f"clip_{i}.webm"}), encoding="utf-8")
    return kp, an


def build(videos: tuple[Path, Path], out: Path, spec: FeaturePipelineSpec | None = None, **kw) -> pd.DataFrame:
    kp, an = videos
    df, _ = build_and_write(kp, an, out, AnnotationSchema(), quiet=True, feature_spec=spec,
                            formatting=None if spec is None else formatting_step(spec, quiet=True), **kw)
    return df


@pytest.mark.slow
def test_dask_builds_the_single_process_dataset(videos: tuple[Path, Path], tmp_path: Path) -> None:
    spec = FeaturePipelineSpec.from_options(
        ["angles", "distances", "normalized"], None, "window",
        {"segmentation_window": 10, "segmentation_window_label": "weight_transfer_type", "stride": 5}, 4,
    ).resolve()
    for name, s in (("raw", None), ("windows", spec)):
        single = build(videos, tmp_path / f"{name}-single.parquet", s)
        dask = build(videos, tmp_path / f"{name}-dask.parquet", s, executor="dask", executor_options={"workers": 2})
        assert len(single) > 0
        pd.testing.assert_frame_equal(single, dask, check_exact=True)
        assert single.attrs.get(SPEC_ATTR) == dask.attrs.get(SPEC_ATTR)
        pd.testing.assert_frame_equal(read_dataset(tmp_path / f"{name}-single.parquet"),
                                      read_dataset(tmp_path / f"{name}-dask.parquet"), check_exact=True)
        assert not parts_dir_for(tmp_path / f"{name}-dask.parquet").exists()
    assert (np.unique(dask["video"].to_numpy()) == ["clip_0", "clip_2"]).all()  # clip_1 has no labels: no windows


@pytest.mark.slow
def test_dask_stops_on_a_video_failing_in_a_worker(videos: tuple[Path, Path], tmp_path: Path) -> None:
    """A keypoint file whose footer reads but whose rows do not fails on its worker; the run stops naming it."""
    kp, an = videos
    bad = tmp_path / "keypoints"
    bad.mkdir()
    for p in kp.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    raw = bytearray((bad / "clip_2.parquet").read_bytes())
    raw[4:4 + 4096] = b"\0" * 4096  # the first data pages: the footer (metadata, columns) stays valid
    (bad / "clip_2.parquet").write_bytes(bytes(raw))
    out = tmp_path / "data.parquet"
    out.write_bytes(b"an older dataset")
    with pytest.raises(SpmlError, match=r"video 'clip_2' \(.*clip_2\.parquet\) failed"):
        build((bad, an), out, executor="dask", executor_options={"workers": 2})
    assert out.read_bytes() == b"an older dataset"
    assert not parts_dir_for(out).exists()
