"""The feature pipeline: spec, offline formatting, and the live paths agreeing with it bit for bit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spml_core.features import compute, offline
from spml_core.errors import ConfigError, SpmlError, UnknownComponentError
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.offline import format_dataset_frames, format_frames
from spml_core.features.compute import pool_windows
from spml_core.registry import Registry
from spml_core.keypoints.skeleton import landmark_columns

W, H = 1280, 720


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().load()


def synthetic_frames(seed: int, lengths: list[int], nan_frames: float = 0.1, sizes=None) -> pd.DataFrame:
    """A per-frame table shaped like `spml dataset`'s: smooth random motion, some frames without a person."""
    rng = np.random.default_rng(seed)
    parts = []
    for v, n in enumerate(lengths):
        base = rng.uniform(0.3, 0.7, (1, 33, 4))
        walk = np.cumsum(rng.normal(0, 0.004, (n, 33, 4)), axis=0)
        xyzv = (base + walk).astype(np.float32)
        xyzv[..., 3] = rng.uniform(0, 1, (n, 33))
        xyzv[rng.uniform(size=n) < nan_frames] = np.nan
        w, h = (sizes or {}).get(v, (W, H))
        df = pd.DataFrame(xyzv.reshape(n, -1), columns=landmark_columns())
        df.insert(0, "video", f"video{v}")
        df.insert(1, "frame", np.arange(n))
        df.insert(2, "timestamp_ms", np.arange(n) * 33.3)
        df.insert(3, "width", w)
        df.insert(4, "height", h)
        phase = (np.arange(n) // 7) % 3
        df["step"] = np.where(phase == 0, None, np.where(phase == 1, "L", "R"))
        df["quality"] = np.where(np.arange(n) % 5 == 0, None, "good")
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out["video"] = pd.Categorical(out["video"])
    for c in ("step", "quality"):
        out[c] = pd.Categorical(out[c])
    return out


def xyzv_of(frames: pd.DataFrame) -> np.ndarray:
    return frames[landmark_columns()].to_numpy().reshape(-1, 33, 4)


def spec_for(strategy: str, features=("angles", "distances", "normalized"), decimals=4, **options) -> FeaturePipelineSpec:
    return FeaturePipelineSpec.from_options(list(features), None, strategy, options, decimals)


# -- batch == incremental -----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(12, 60), window=st.integers(1, 10), stride=st.integers(1, 4),
       layout=st.sampled_from(["flatten", "pool"]), pool=st.sets(st.sampled_from(["mean", "max", "std"]), min_size=1),
       velocities=st.booleans(), decimals=st.sampled_from([None, 0, 4]), nan_frames=st.sampled_from([0.0, 0.3]))
def test_live_buffer_and_transform_window_equal_the_offline_rows(
    seed, n, window, stride, layout, pool, velocities, decimals, nan_frames
):
    frames = synthetic_frames(seed, [n], nan_frames)
    feats = ["angles", "distances", "normalized"] + (["velocities"] if velocities else [])
    if layout == "flatten":
        spec = spec_for("flatten_into_columns", feats, decimals, segmentation_window=window,
                        segmentation_window_label="quality", stride=stride)
    else:
        spec = spec_for("window", feats, decimals, segmentation_window=window, segmentation_window_label="quality",
                        stride=stride, pool=sorted(pool))
    try:
        result = format_dataset_frames(frames, spec)
    except SpmlError as exc:  # every window happened to lack a label or a person: a clear error
        assert "no examples" in str(exc) or "only NaN" in str(exc)
        return
    batch = result.frame[result.spec.columns].to_numpy()
    ends = result.frame["end_frame"].to_numpy()
    xyzv = xyzv_of(frames)
    buf = LiveFeatureBuffer(result.spec, W, H)
    live = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN frames must not spam RuntimeWarnings
        for i in range(n):
            row = buf.push(xyzv[i])
            assert (row is None) == (i < window - 1)
            if row is not None:
                live[i] = row
    for k, end in enumerate(ends):
        assert live[end].dtype == np.float32
        assert live[end].tobytes() == batch[k].astype(np.float32).tobytes()
        one = result.spec.transform_window(xyzv[: end + 1], W, H)
        assert one.tobytes() == batch[k].astype(np.float32).tobytes()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 40), length=st.integers(1, 40), f=st.integers(1, 20),
       stats=st.permutations(["mean", "max", "std"]), nan=st.booleans())
def test_pooling_one_window_equals_pooling_it_among_many(seed, n, length, f, stats, nan):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 100, (n, length, f))
    if nan:
        x[rng.uniform(size=x.shape) < 0.2] = np.nan
    many = pool_windows(x, stats)
    for i in range(n):
        assert pool_windows(x[i:i + 1], stats)[0].tobytes() == many[i].tobytes()


def test_pooling_is_real_std_unfloored_max_and_ignores_missing_frames():
    x = np.array([[[-4.0, 1.0], [-2.0, np.nan], [-6.0, 3.0]]])
    out = pool_windows(x, ["mean", "max", "std"])[0]
    assert out[:2].tolist() == [-4.0, 2.0]                 # mean of present values
    assert out[2:4].tolist() == [-2.0, 3.0]                # max, not floored at 0 (StreamPoseML B11)
    assert out[4:].tolist() == pytest.approx([np.std([-4, -2, -6]), 1.0])  # std, not variance
    empty = pool_windows(np.full((1, 3, 2), np.nan), ["mean", "max", "std"])
    assert np.isnan(empty).all()


def test_incremental_buffer_handles_missing_people_reset_and_velocity_history(registry):
    frames = synthetic_frames(5, [30], nan_frames=0.0)
    spec = spec_for("flatten_into_columns", ["normalized", "velocities"], 4, segmentation_window=3,
                    segmentation_window_label="quality").resolve(registry)
    xyzv = xyzv_of(frames)
    buf = spec.live_buffer(W, H)
    assert buf.push(xyzv[0]) is None and buf.push(None) is None
    row = buf.push(xyzv[2])
    assert row.shape == (len(spec.columns),)
    per_frame = len(spec.frame_columns)
    assert np.isnan(row[per_frame:2 * per_frame]).all()  # frame 2 of the window had no person
    assert buf.frames_seen == 3
    buf.reset()
    assert buf.frames_seen == 0 and buf.push(xyzv[3]) is None
    # transform_window needs window + history frames to match; with exactly the window, frame 1's velocity is NaN.
    assert spec.context_frames == 4
    short = spec.transform_window(xyzv[10:13], W, H)
    assert np.isnan(short[66:132]).all() and not np.isnan(spec.transform_window(xyzv[9:13], W, H)[66:132]).any()


# -- the spec ----------------------------------------------------------------------------------------------
def test_spec_round_trips_through_json_and_rebuilds_the_same_rows(registry):
    frames = synthetic_frames(7, [50], nan_frames=0.1)
    spec = spec_for("window", ["angles", "velocities"], 3, segmentation_window=5, segmentation_window_label="quality",
                    stride=2, pool="mean,std")
    result = format_dataset_frames(frames, spec, registry)
    dumped = json.loads(json.dumps(result.spec.model_dump()))
    assert dumped["columns"][:2] == ["mean-nose_neck_to_plumb_line_angle_2d_degrees",
                                     "mean-neck_left_shoulder_to_plumb_line_angle_2d_degrees"]
    assert dumped["layout"] == "pool" and dumped["window"] == 5 and dumped["history"] == 1
    assert dumped["label_columns"] == ["step", "quality"]
    loaded = FeaturePipelineSpec.model_validate(dumped)
    xyzv = xyzv_of(frames)
    end = int(result.frame["end_frame"].iloc[-1])
    assert loaded.transform_window(xyzv[: end + 1], W, H).tobytes() == \
        result.frame[result.spec.columns].to_numpy()[-1].tobytes()
    # The same spec formats another table identically (what training and evaluation rely on).
    assert format_frames(frames, loaded).equals(result.frame)


def test_loaded_spec_whose_columns_no_longer_match_fails_loudly():
    spec = spec_for("flatten_into_columns", ["angles"], segmentation_window=2).resolve()
    data = spec.model_dump()
    data["frame_columns"] = data["frame_columns"][1:] + data["frame_columns"][:1]
    stale = FeaturePipelineSpec.model_validate(data)
    with pytest.raises(SpmlError, match="first difference at column 0"):
        LiveFeatureBuffer(stale, W, H)
    data = spec.model_dump()
    data["columns"] = data["columns"][:-1]
    with pytest.raises(SpmlError, match="rebuild the dataset and retrain"):
        FeaturePipelineSpec.model_validate(data).resolve()


def test_spec_errors_list_the_valid_names(registry):
    with pytest.raises(UnknownComponentError, match=r"unknown feature extractor 'angle'.*angles \(spml-core\).*"
                                                    r"Did you mean 'angles'"):
        spec_for("none", ["angle"]).resolve(registry)
    with pytest.raises(UnknownComponentError, match=r"unknown segmenter 'windows'.*flatten_into_columns.*"
                                                    r"Did you mean 'window'"):
        spec_for("windows").resolve(registry)
    with pytest.raises(ConfigError, match=r"features.angles.options.mode: Input should be '2d', '3d' or 'both'"):
        FeaturePipelineSpec.from_options(["angles"], {"angles": {"mode": "4d"}}).resolve(registry)
    with pytest.raises(ConfigError, match="feature_options for velocity, which are not among the features"):
        FeaturePipelineSpec.from_options(["angles"], {"velocity": {}})
    with pytest.raises(ValueError, match="listed twice: angles"):
        FeaturePipelineSpec(features=[{"use": "angles"}, {"use": "angles"}])
    pooled = spec_for("split_on_label", segmentation_splitter_label="step", pool="mean").resolve(registry)
    with pytest.raises(SpmlError, match="no fixed live window; set segmentation_window"):
        pooled.live_buffer(W, H)
    with pytest.raises(SpmlError, match=r"needs at least 4 frames"):
        spec_for("flatten_into_columns", segmentation_window=4).resolve(registry).transform_window(
            np.zeros((3, 33, 4)), W, H)


# -- offline formatting ----------------------------------------------------------------------------------
def test_windows_stay_within_videos_and_use_each_videos_frame_size(registry):
    frames = synthetic_frames(11, [23, 17], nan_frames=0.0, sizes={1: (640, 480)})
    spec = spec_for("flatten_into_columns", ["angles"], None, segmentation_window=5, segmentation_window_label="step",
                    stride=1)
    out = format_frames(frames, spec, registry)
    both = {v: format_frames(frames[frames["video"] == v].reset_index(drop=True), spec, registry)
            for v in ("video0", "video1")}
    assert len(out) == len(both["video0"]) + len(both["video1"])
    for v, part in both.items():
        mine = out[out["video"] == v].reset_index(drop=True)
        np.testing.assert_array_equal(mine[spec.resolve().columns].to_numpy(), part[spec.resolve().columns].to_numpy())
        assert (mine["end_frame"] - mine["start_frame"] == 4).all()
    # Video 1's angles are measured on a 640x480 frame: computing them as 1280x720 would differ.
    xyzv = xyzv_of(frames[frames["video"] == "video1"])
    s = spec.resolve(registry)
    e = int(both["video1"]["end_frame"].iloc[0])
    assert s.transform_window(xyzv[: e + 1], 640, 480).tobytes() == \
        both["video1"][s.columns].to_numpy()[0].tobytes()
    assert s.transform_window(xyzv[: e + 1], W, H).tobytes() != both["video1"][s.columns].to_numpy()[0].tobytes()


def test_chunked_feature_computation_equals_one_pass(registry, monkeypatch):
    frames = synthetic_frames(13, [40, 25, 31, 9], nan_frames=0.2)
    spec = spec_for("window", ["normalized", "velocities", "angles"], 4, segmentation_window=6,
                    segmentation_window_label="step", stride=3, pool=True)
    whole = format_frames(frames, spec, registry)
    monkeypatch.setattr(offline, "CHUNK_FRAMES", 30)
    monkeypatch.setattr(compute, "BLOCK_FRAMES", 7)
    assert format_frames(frames, spec, registry).equals(whole)


def test_rows_without_any_person_are_dropped_and_counted(registry):
    frames = synthetic_frames(17, [40], nan_frames=0.0)
    frames.loc[0:9, landmark_columns()] = np.nan  # no person in frames 0-9: the first window
    spec = spec_for("flatten_into_columns", ["angles"], segmentation_window=5, segmentation_window_label="quality")
    result = format_dataset_frames(frames, spec, registry)
    # 8 windows of 5 frames end on frames 4, 9, ..., 39; "quality" is unlabelled only on multiples of 5, so all
    # 8 are labelled. Windows [0-4] and [5-9] hold no person: dropped, 6 remain.
    assert result.frame["start_frame"].tolist() == [10, 15, 20, 25, 30, 35]
    assert "dropped 2 of 8 examples whose frames had no person detected" in result.notes[-1]
    frames.loc[:, landmark_columns()] = np.nan
    with pytest.raises(SpmlError, match="every one of the 8 examples .* has only NaN features"):
        format_frames(frames, spec, registry)


def test_bad_tables_give_clear_errors(registry):
    frames = synthetic_frames(19, [10], nan_frames=0.0)
    spec = spec_for("none")
    with pytest.raises(SpmlError, match="lacks column"):
        format_frames(frames.drop(columns=["width"]), spec, registry)
    dup = pd.concat([frames, frames.iloc[[3]]], ignore_index=True)
    with pytest.raises(SpmlError, match="video 'video0': frame 3 appears twice"):
        format_frames(dup, spec, registry)
    with pytest.raises(SpmlError, match="is empty"):
        format_frames(frames.iloc[:0], spec, registry)
    with pytest.raises(SpmlError, match="label column.* grade not in the table"):
        format_frames(frames, spec.model_copy(update={"label_columns": ["grade"]}), registry)


def test_unsorted_input_is_sorted_by_video_and_frame(registry):
    frames = synthetic_frames(23, [12, 12], nan_frames=0.0)
    shuffled = frames.sample(frac=1.0, random_state=1)
    spec = spec_for("none", ["distances"])
    a, b = format_frames(frames, spec, registry), format_frames(shuffled, spec, registry)
    assert a.equals(b)
    assert a["frame"].tolist() == list(range(12)) * 2


def test_config_names_the_bad_feature_before_anything_runs(tmp_path):
    from spml_core.pipeline import run_config

    base = "pipeline:\n  dataset:\n    keypoints: kp\n    annotations: ann\n    out: ds.parquet\n"
    cases = {
        "    features: [angles, speed]\n": "pipeline.dataset.features.1: unknown feature extractor 'speed'",
        "    feature_options: {distances: {mode: 4d}}\n":
            "pipeline.dataset.feature_options.distances.mode: Input should be '2d', '3d' or 'both'",
        "    features: [angles]\n    feature_options: {normalized: {}}\n":
            "pipeline.dataset.feature_options.normalized: not among the features (angles)",
        "    segmentation: {use: window, options: {segmentation_windows: 3}}\n":
            "pipeline.dataset.segmentation.options.segmentation_windows: unknown option (valid: pool, "
            "segmentation_window, segmentation_window_label, stride, label_rule)",
    }
    for extra, message in cases.items():
        cfg = tmp_path / "config.yml"
        cfg.write_text(base + extra)
        with pytest.raises(ConfigError) as err:
            run_config(cfg)
        assert f"{cfg}: {message}" in str(err.value)
    assert not (tmp_path / "ds.parquet").exists()
