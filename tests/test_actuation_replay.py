"""The demo replay: real keypoints -> a real bundle's live predictor -> decisions -> BLE over bumble."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("spml_actuator_ble")


@pytest.fixture(scope="module")
def steps_bundle(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> Path:
    """A small xgboost bundle on step_type (window 10), trained with spml's own training code."""
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    root = tmp_path_factory.mktemp("replay_bundle")
    df, _ = build_dataset(example_keypoints_dir, example_annotations.parent)
    dataset = write_dataset(df, root / "dataset.parquet")
    return train(dataset, "step_type", root / "bundle", "xgboost", window=10, quiet=True).bundle


@pytest.mark.slow
def test_demo_replay_prints_actions_and_the_bytes_received(steps_bundle, example_keypoints_dir, tmp_path, capsys):
    from spml_actuator_ble.demo_replay import main

    log = tmp_path / "actions.jsonl"
    rc = main(
        [
            "--keypoints", str(example_keypoints_dir / "example_video.parquet"),
            "--bundle", str(steps_bundle),
            "--action", "Left Step=0a", "--action", "Right Step=0b",
            "--speed", "0", "--log", str(log),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    sent = int(re.search(r"sent (\d+)", out).group(1))
    received = re.findall(r"^\s+[\d.]+ ms  ([0-9a-f ]+)$", out, flags=re.M)
    assert sent > 0 and len(received) == sent
    assert set(received) <= {"0a", "0b", "00"} and {"0a", "0b"} & set(received)
    # As fast as possible, an off can supersede its on before the device takes it (the runner's
    # policy): every decision is accounted for as written, dropped (ons) or coalesced (offs).
    counts = {k: int(v) for k, v in re.findall(r"(dropped|coalesced|failed|stale) (\d+)", out)}
    ons = re.findall(r"\bON\s+(?:Left Step|Right Step)", out)
    offs = re.findall(r"\bOFF\s+(?:Left Step|Right Step)", out)
    assert counts["failed"] == counts["stale"] == 0
    assert len(ons) == received.count("0a") + received.count("0b") + counts["dropped"]
    assert len(offs) == received.count("00") + counts["coalesced"]
    assert len(log.read_text().splitlines()) >= sent


def test_demo_replay_rejects_an_unknown_class(steps_bundle, example_keypoints_dir, capsys):
    from spml_actuator_ble.demo_replay import main

    rc = main(["--keypoints", str(example_keypoints_dir / "example_video.parquet"), "--bundle", str(steps_bundle),
               "--action", "Jump=01"])
    assert rc == 1
    assert "the bundle has no class 'Jump'" in capsys.readouterr().err
