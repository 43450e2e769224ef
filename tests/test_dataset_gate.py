"""`spml dataset` with windowed output applies the live gate as `spml train` does (on by default,
--no-gate / --gate-* / config.yml gate), so a formatted dataset trains on the same windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spml_core.cli.main import main
from spml_core.datasets.io import read_dataset
from spml_core.errors import SpmlError
from spml_core.features.spec import SPEC_ATTR
from spml_core.features.timegrid import GateConfig, window_gate_mask
from spml_core.keypoints.skeleton import INDEX

HIPS = [INDEX["left_hip"], INDEX["right_hip"]]


@pytest.fixture()
def data(example_keypoints, example_annotations: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The example with nobody in every other frame of 60-99 and the hips hardly visible (0.2) in 200-259."""
    kp, an = tmp_path / "kp", tmp_path / "an"
    kp.mkdir()
    an.mkdir()
    xyzv = example_keypoints.xyzv.copy()
    xyzv[60:100:2] = np.nan
    xyzv[200:260, HIPS, 3] = 0.2
    example_keypoints.model_copy(update={"xyzv": xyzv}).save(kp / "clip.parquet")
    data = json.loads(example_annotations.read_text(encoding="utf-8"))
    (an / "clip.json").write_text(json.dumps({**data, "name": "clip.webm"}), encoding="utf-8")
    return kp, an


def dataset(data, out: Path, *extra: str) -> int:
    kp, an = data
    return main(["dataset", "--keypoints", str(kp), "--annotations", str(an), "--out", str(out), "--quiet",
                 "--strategy", "flatten_into_columns", "--window", "10", "--stride", "1",
                 "--window-label", "step_type", *extra])


def spans(df) -> list[tuple[int, int]]:
    return list(zip(df["start_frame"].tolist(), df["end_frame"].tolist()))


def test_windowed_dataset_leaves_out_what_the_live_gate_refuses(data, tmp_path: Path) -> None:
    kp, an = data
    assert dataset(data, tmp_path / "gated.parquet") == 0
    assert dataset(data, tmp_path / "all.parquet", "--no-gate") == 0
    assert dataset(data, tmp_path / "lenient.parquet", "--gate-min-visibility", "0.1") == 0
    assert dataset(data, tmp_path / "parts.parquet", "--executor", "local", "--workers", "2") == 0
    gated, every = read_dataset(tmp_path / "gated.parquet"), read_dataset(tmp_path / "all.parquet")
    assert main(["dataset", "--keypoints", str(kp), "--annotations", str(an), "--out",
                 str(tmp_path / "frames.parquet"), "--quiet"]) == 0
    frames = read_dataset(tmp_path / "frames.parquet")
    passed = window_gate_mask(frames, every["video"].astype(str).to_numpy(), every["start_frame"].to_numpy(),
                              every["end_frame"].to_numpy(), GateConfig())
    assert 30 < (~passed).sum() < len(every) // 2  # both stretches refuse windows, most windows pass
    assert spans(gated) == [s for s, ok in zip(spans(every), passed) if ok]
    assert not any(min(e, 259) - max(s, 200) + 1 > 3 for s, e in spans(gated))  # hips hidden in > 30% of it
    lenient = read_dataset(tmp_path / "lenient.parquet")
    assert any(210 <= e <= 255 for _, e in spans(lenient))  # 0.2 counts as visible at threshold 0.1
    assert not any(70 <= e <= 95 for _, e in spans(lenient))  # nobody in half the frames: still refused
    assert gated["example"].tolist() == list(range(len(gated)))
    parts = read_dataset(tmp_path / "parts.parquet")
    assert spans(parts) == spans(gated)
    np.testing.assert_array_equal(parts.filter(like="frame-").to_numpy(), gated.filter(like="frame-").to_numpy())


def test_a_gated_dataset_trains_on_the_windows_training_from_frames_uses(data, tmp_path: Path) -> None:
    from spml_core.models.examples import load_examples

    kp, an = data
    assert dataset(data, tmp_path / "gated.parquet") == 0
    assert main(["dataset", "--keypoints", str(kp), "--annotations", str(an), "--out",
                 str(tmp_path / "frames.parquet"), "--quiet"]) == 0
    formatted = load_examples(tmp_path / "gated.parquet", "step_type")
    from_frames = load_examples(tmp_path / "frames.parquet", "step_type", gate=GateConfig())
    assert list(zip(formatted.start, formatted.end)) == list(zip(from_frames.start, from_frames.end))
    np.testing.assert_array_equal(formatted.X, from_frames.X)


def test_gate_flags_need_windows_and_valid_values(data, tmp_path: Path, capsys) -> None:
    kp, an = data
    rc = main(["dataset", "--keypoints", str(kp), "--annotations", str(an), "--out", str(tmp_path / "x.parquet"),
               "--no-gate"])
    assert rc != 0 and "--no-gate and --gate-* apply to formatted windows" in capsys.readouterr().err
    assert dataset(data, tmp_path / "y.parquet", "--gate-max-missing", "1.5") != 0
    assert "--gate-max-missing 1.5" in capsys.readouterr().err
    assert not (tmp_path / "y.parquet").exists()


def test_a_gate_that_refuses_everything_says_so(data, tmp_path: Path, capsys) -> None:
    rc = dataset(data, tmp_path / "z.parquet", "--gate-min-visibility", "1.0")
    err = capsys.readouterr().err
    assert rc != 0 and "refused by the live gate" in err and "--no-gate" in err
    assert not (tmp_path / "z.parquet").exists()
