"""The live time grid, the presence/visibility gate and the One Euro filter, on synthetic frames
whose expected values are worked out by hand (docs/live.md)."""

from __future__ import annotations

import numpy as np
import pytest

from spml_core import OneEuroFilter, SmoothingOptions, smooth_sequence
from spml_core.errors import TimestampError
from spml_core.features.timegrid import Gate, GateConfig, TimeGrid, Timing, min_input_fps


def frame(value: float, visibility: float = 1.0) -> np.ndarray:
    f = np.full((33, 4), value, dtype=np.float64)
    f[:, 3] = visibility
    return f


NOBODY = np.full((33, 4), np.nan)


def test_grid_interpolates_between_real_frames_at_a_lower_rate() -> None:
    grid = TimeGrid(fps=30.0, max_gap_ms=1000)
    assert [g[0, 0] for g in grid.push(frame(0.0), 0.0).frames] == [0.0]
    # A frame 100 ms later completes instants 33.3, 66.7 and 100 ms: linear in between.
    got = [g[0, 0] for g in grid.push(frame(0.3), 100.0).frames]
    assert got == pytest.approx([0.1, 0.2, 0.3])


def test_grid_at_its_own_rate_passes_frames_through_and_snaps_rounded_timestamps() -> None:
    grid = TimeGrid(fps=30.0, max_gap_ms=1000)
    out = []
    for i, t in enumerate([0, 33, 67, 100, 133]):  # whole milliseconds, as video timestamps are
        out += [g[0, 0] for g in grid.push(frame(float(i)), float(t)).frames]
    assert out == pytest.approx([0, 1, 2, 3, 4], abs=0.02)


def test_faster_input_is_decimated_and_repeats_add_nothing() -> None:
    grid = TimeGrid(fps=10.0, max_gap_ms=1000)
    counts = [len(grid.push(frame(float(t)), float(t)).frames) for t in range(0, 201, 20)]
    assert sum(counts) == 3  # instants 0, 100, 200 ms
    assert grid.push(frame(9.0), 200.0).frames == []


def test_bad_timestamps_have_codes_and_jumps_restart() -> None:
    grid = TimeGrid(fps=30.0, max_gap_ms=500)
    grid.push(frame(0.0), 1000.0)
    with pytest.raises(TimestampError) as exc:
        grid.push(frame(0.0), float("nan"))
    assert exc.value.code == "bad_timestamp"
    with pytest.raises(TimestampError) as exc:
        grid.push(frame(0.0), 900.0)
    assert exc.value.code == "out_of_order" and "900.0" in str(exc.value)
    step = grid.push(frame(1.0), 1000.0 + 5 * 60_000)  # minutes later: a new stream, not 9000 instants
    assert step.restarted and len(step.frames) == 1


def test_an_empty_frame_is_never_blended_into_a_person() -> None:
    grid = TimeGrid(fps=30.0, max_gap_ms=1000)
    grid.push(frame(0.0), 0.0)
    out = grid.push(NOBODY, 100.0).frames
    # The nearer real frame wins: a person until half-way, then nobody.
    assert [bool(np.isnan(g[0, 0])) for g in out] == [False, True, True]


def test_each_grid_frame_says_whether_it_shows_a_person_as_the_gate_would_find() -> None:
    # The gate takes presence from the grid step instead of testing every grid frame again.
    rng = np.random.default_rng(7)
    grid, t = TimeGrid(fps=30.0, max_gap_ms=400), 0.0
    left, right = frame(0.2), frame(0.4)
    left[17:, :3] = np.nan  # two people with no joint seen in both: their blend shows nobody
    right[:17, :3] = np.nan
    choices = [frame(0.1), frame(0.5, visibility=0.2), NOBODY, left, right]
    seen = set()
    for _ in range(600):
        t += float(rng.choice([11.0, 33.3, 50.0, 100.0, 500.0]))
        step = grid.push(choices[int(rng.integers(len(choices)))], t)
        assert step.present is not None and len(step.present) == len(step.frames)
        for g, present in zip(step.frames, step.present):
            assert present == (not bool(np.isnan(g[:, 0]).all()))
            seen.add(present)
    assert seen == {True, False}


def test_gate_statuses() -> None:
    gate = Gate(GateConfig(), window=10)
    for _ in range(5):
        gate.push(frame(0.5))
    assert gate.status(None, 5.0) == "warming_up"
    for _ in range(5):
        gate.push(frame(0.5))
    assert gate.status(30.0, 5.0) == "ok"
    assert gate.status(3.0, 5.0) == "too_slow"  # below 0.7 x the lowest supported rate
    for _ in range(4):
        gate.push(NOBODY)
    assert gate.status(30.0, 5.0) == "no_person"  # 4 of 10 > 30% of the window without a person
    gate.reset()
    for _ in range(10):
        gate.push(frame(0.5, visibility=0.1))  # hips and shoulders barely visible
    assert gate.status(30.0, 5.0) == "low_visibility"
    assert Gate(GateConfig(enabled=False), 2).status(None, 5.0) == "warming_up"


def test_nobody_from_the_start_is_no_person_before_the_window_fills() -> None:
    gate = Gate(GateConfig(), window=10)
    statuses = []
    for _ in range(6):
        gate.push(NOBODY)
        statuses.append(gate.status(None, 5.0))
    assert statuses == ["warming_up"] * 3 + ["no_person"] * 3


def test_gate_config_names_unknown_joints() -> None:
    with pytest.raises(ValueError, match="left_hipp"):
        GateConfig(joints=["left_hipp"])


def test_timing_rule() -> None:
    t = Timing.at(30.0, 10)
    assert t.window_ms == pytest.approx(333.33, abs=0.01) and t.min_input_fps == min_input_fps(30.0) == 5.0


def test_one_euro_smooths_still_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(60) * 1000 / 30
    still = np.stack([frame(0.5) for _ in t])
    still[:, :, :2] += rng.normal(0, 0.002, still[:, :, :2].shape)
    still[:, 11:25, 0] += np.linspace(0, 0, 14)  # a person of some size: spread the joints
    still[:, :, 1] += np.linspace(0, 0.5, 33)[None, :]
    out = smooth_sequence(still, t)
    assert np.std(np.diff(out[:, :, 0], axis=0)) < 0.5 * np.std(np.diff(still[:, :, 0], axis=0))
    moving = np.stack([frame(0.0) for _ in t])
    moving[:, :, 1] += np.linspace(0, 0.5, 33)[None, :]
    moving[:, :, 0] += (t / 1000.0)[:, None]  # 1 frame width per second: fast
    lag = np.abs(smooth_sequence(moving, t)[-1, :, 0] - moving[-1, :, 0]).max()
    assert lag < 0.02
    np.testing.assert_array_equal(out[:, :, 3], still[:, :, 3])  # visibility passes through


def test_one_euro_restarts_when_the_person_is_lost_or_time_jumps() -> None:
    f = OneEuroFilter()
    f(frame(0.0), 0.0)
    f(frame(0.1), 33.0)
    assert np.isnan(f(NOBODY, 66.0)).all()
    np.testing.assert_array_equal(f(frame(0.9), 100.0), frame(0.9))  # found again: starts afresh
    f(frame(0.9), 133.0)
    np.testing.assert_array_equal(f(frame(0.2), 5000.0), frame(0.2))  # after a long gap
    np.testing.assert_array_equal(OneEuroFilter(SmoothingOptions(enabled=False))(frame(0.3), 0), frame(0.3))


def test_offline_window_gate_agrees_with_the_live_rule() -> None:
    import pandas as pd

    from spml_core.features.timegrid import window_gate_mask
    from spml_core.keypoints.skeleton import landmark_columns

    n = 40
    xyzv = np.stack([frame(0.5) for _ in range(n)])
    xyzv[5:7] = np.nan  # nobody in frames 5..6: within the allowed 30%
    xyzv[30:34] = np.nan  # nobody in frames 30..33: too long
    xyzv[14:18, 23, 3] = 0.1  # the left hip out of view in frames 14..17
    df = pd.DataFrame(xyzv.reshape(n, -1), columns=landmark_columns())
    df.insert(0, "frame", np.arange(n))
    df.insert(0, "video", "v")
    start = np.arange(0, n - 9)
    keep = window_gate_mask(df, np.array(["v"] * len(start)), start, start + 9, GateConfig())
    gate = Gate(GateConfig(), window=10)
    live = []
    for i in range(n):
        gate.push(xyzv[i])
        if i >= 9:
            live.append(gate.status(30.0, 5.0) == "ok")
    assert keep.tolist() == live
    assert not keep.all() and keep.any()


def test_videos_of_different_rates_are_resampled_onto_one_grid() -> None:
    import pandas as pd

    from spml_core.features.timegrid import grid_fps, resample_frames_table
    from spml_core.keypoints.skeleton import landmark_columns

    def video(name: str, fps: float, n: int) -> pd.DataFrame:
        t = np.arange(n) * 1000.0 / fps
        xyzv = np.stack([frame(0.0) for _ in t])
        xyzv[:, :, 0] = (t / 1000.0)[:, None]  # x moves 1 frame width per second
        df = pd.DataFrame(xyzv.reshape(n, -1), columns=landmark_columns())
        df.insert(0, "timestamp_ms", t)
        df.insert(0, "frame", np.arange(n))
        df.insert(0, "video", name)
        df["step"] = np.where(t < 500, "a", "b")
        return df

    df = pd.concat([video("fast", 30.0, 60), video("slow", 15.0, 15)], ignore_index=True)
    assert grid_fps({"fast": 30.0, "slow": 15.0}, {"fast": 60, "slow": 15}) == 30.0
    out = resample_frames_table(df, 30.0, {"slow"})
    slow = out[out["video"] == "slow"]
    assert len(slow) == 29 and slow["frame"].tolist() == list(range(29))
    np.testing.assert_allclose(slow["timestamp_ms"], np.arange(29) * 1000 / 30)
    np.testing.assert_allclose(slow["nose_x"], slow["timestamp_ms"] / 1000.0, atol=1e-12)  # linear in time
    assert (slow["step"] == np.where(slow["timestamp_ms"] < 500, "a", "b")).sum() >= 28  # nearest frame's label
    pd.testing.assert_frame_equal(out[out["video"] == "fast"].reset_index(drop=True), video("fast", 30.0, 60))
