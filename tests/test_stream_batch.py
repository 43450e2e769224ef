"""push_many (the live server's batches) gives exactly what pushing each stream alone gives, on the real example."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import spml_core
from spml_core.errors import TimestampError
from spml_core.models.stream import push_many

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundles(example_keypoints_dir: Path, example_annotations: Path, tmp_path_factory) -> list[Path]:
    """Two XGBoost bundles: the default features (window 10), and velocities (history) with positions."""
    from spml_core.cli.main import main
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset

    root = tmp_path_factory.mktemp("batch_bundles")
    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    ds = write_dataset(frames, root / "example.parquet")
    out = []
    for name, extra in (("plain", []), ("velocity", ["--features", "velocities,normalized", "--window", "6"])):
        rc = main(["train", str(ds), "--target", "step_type", "--out", str(root / name), "--model", "xgboost",
                   "-o", "n_estimators=20", "--folds", "3", "--quiet", *extra])
        assert rc == 0
        out.append(root / name)
    return out


def _alone(stream, frame, t_ms):
    """The single-stream path, independent of the batch code: advance() computes each frame's features alone."""
    step = stream.advance(frame, t_ms)
    if step is None:
        return None
    row, status, t = step
    p = stream.predictor
    if status == "ok" and row is not None:
        row = p.select(row)
        result = p._result(p.predict_rows(row[None])[0], row)
    else:
        result = {"label": None, "probabilities": None}
    result.setdefault("status", status)
    result.update(t_ms=t, input_fps=stream.grid.input_fps())
    return result


def _feeds(seq, rng: random.Random) -> list[list[tuple[np.ndarray | None, float]]]:
    """Twelve cameras over the example: different starts, rates, jitter, nobody in view, a bad timestamp."""
    feeds = []
    for k in range(12):
        stride = (1, 2, 3, 1)[k % 4]  # 30, 15, 10 fps
        start = rng.randrange(0, 120)
        frames = []
        for i in range(start, seq.n_frames, stride):
            frame = None if 150 <= i < 170 and k % 3 == 0 else seq.xyzv[i]
            t = float(seq.timestamps_ms[i]) + (rng.uniform(-4, 4) if k % 4 == 3 else 0.0)
            frames.append((frame, t))
        if k == 5:
            frames.insert(40, (seq.xyzv[40], frames[39][1] - 100.0))  # earlier than its predecessor
        feeds.append(frames)
    return feeds


def test_batched_pushes_equal_single_pushes(bundles: list[Path], example_keypoints, monkeypatch) -> None:
    seq = example_keypoints
    predictors = [spml_core.load_bundle(b) for b in bundles]
    sizes = [(seq.width, seq.height), (640, 360)]
    rng = random.Random(7)
    feeds = _feeds(seq, rng)
    config = [(predictors[k % 2], sizes[(k // 2) % 2]) for k in range(len(feeds))]
    alone = [p.new_stream(*size) for p, size in config]
    batched = [p.new_stream(*size) for p, size in config]

    calls = {"n": 0}
    for p in predictors:
        original = p.predict_rows

        def counted(rows, _original=original):
            calls["n"] += 1
            return _original(rows)

        monkeypatch.setattr(p, "predict_rows", counted)

    pos = [0] * len(feeds)
    compared = ok = errors = 0
    seen: set[str] = set()
    while any(pos[k] < len(feeds[k]) for k in range(len(feeds))):
        # One turn of the server's loop: a random subset of cameras, sometimes two frames of one camera.
        batch = []
        for k in rng.sample(range(len(feeds)), rng.randint(1, len(feeds))):
            for _ in range(2 if rng.random() < 0.1 else 1):
                if pos[k] < len(feeds[k]):
                    batch.append((k, *feeds[k][pos[k]]))
                    pos[k] += 1
        got = push_many([(batched[k], frame, t) for k, frame, t in batch])
        calls_before = calls["n"]
        for (k, frame, t), result in zip(batch, got):
            try:
                want = _alone(alone[k], frame, t)
            except TimestampError as exc:
                assert isinstance(result, TimestampError) and result.code == exc.code
                errors += 1
                continue
            compared += 1
            assert result == want, (k, t)
            if want is not None:
                seen.add(want["status"])
            ok += want is not None and want["status"] == "ok"
        calls["n"] = calls_before  # count only the batched calls

    assert errors == 1 and compared > 2000
    assert ok > 1000, "too few classified windows for the comparison to mean anything"
    # About 6 cameras per turn over two bundles: the model runs once per bundle per turn, not per camera.
    assert calls["n"] < ok * 0.7, (calls["n"], ok)
    assert {"ok", "warming_up", "no_person"} <= seen
