"""Low-visibility joints (features' low_visibility option): ignore and impute, the same offline and live,
recorded in the spec and in bundles, which predict with it; specs without it behave as before."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spml_core.errors import ConfigError, SpmlError
from spml_core.features.live import LiveFeatureBuffer
from spml_core.features.offline import format_dataset_frames
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.features.visibility import LiveMask, VisibilityPolicy, mask_frames
from spml_core.keypoints.skeleton import INDEX, landmark_columns

W, H = 1280, 720
TORSO = [INDEX[j] for j in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]


def frames_table(seed: int, lengths: list[int], hidden: float = 0.4, nobody: float = 0.1) -> pd.DataFrame:
    """A per-frame table: smooth motion, a share of joints below visibility 0.5, some frames without a person."""
    rng = np.random.default_rng(seed)
    parts = []
    for v, n in enumerate(lengths):
        xyzv = rng.uniform(0.3, 0.7, (1, 33, 4)) + np.cumsum(rng.normal(0, 0.004, (n, 33, 4)), axis=0)
        xyzv[..., 3] = np.where(rng.uniform(size=(n, 33)) < hidden, rng.uniform(0, 0.49, (n, 33)),
                                rng.uniform(0.5, 1, (n, 33)))
        xyzv[rng.uniform(size=n) < nobody] = np.nan
        df = pd.DataFrame(xyzv.reshape(n, -1), columns=landmark_columns())
        df.insert(0, "video", f"video{v}")
        df.insert(1, "frame", np.arange(n))
        df.insert(2, "timestamp_ms", np.arange(n) * 33.3)
        df.insert(3, "width", W)
        df.insert(4, "height", H)
        df["quality"] = pd.Categorical(np.where(np.arange(n) % 5 == 0, None, "good"))
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out["video"] = pd.Categorical(out["video"])
    return out


def xyzv_of(frames: pd.DataFrame) -> np.ndarray:
    return frames[landmark_columns()].to_numpy().reshape(-1, 33, 4)


def windowed(features: list[str], options: dict, window: int, pool: list[str] | None = None) -> FeaturePipelineSpec:
    opts = {"segmentation_window": window, "segmentation_window_label": "quality"}
    if pool:
        opts["pool"] = pool
    return FeaturePipelineSpec.from_options(features, options, "window" if pool else "flatten_into_columns", opts, 4)


policies = st.fixed_dictionaries({}, optional={
    name: st.fixed_dictionaries({"low_visibility": st.sampled_from(["keep", "ignore", "impute"])},
                                optional={"min_visibility": st.sampled_from([0.3, 0.5, 0.8]),
                                          "impute_frames": st.integers(1, 6)})
    for name in ("angles", "distances", "normalized", "joints", "velocities")
})


# -- offline == live ------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), lengths=st.lists(st.integers(8, 40), min_size=1, max_size=3),
       window=st.integers(1, 8), options=policies, pool=st.sampled_from([None, ["mean", "std"]]),
       velocities=st.booleans())
def test_live_rows_equal_offline_rows_with_every_policy(seed, lengths, window, options, pool, velocities):
    features = ["angles", "distances", "normalized", "joints"] + (["velocities"] if velocities else [])
    options = {k: v for k, v in options.items() if k in features}
    frames = frames_table(seed, lengths)
    try:
        result = format_dataset_frames(frames, windowed(features, options, window, pool))
    except SpmlError as exc:  # every window happened to lack a label or a person
        assert "no examples" in str(exc) or "only NaN" in str(exc)
        return
    spec = result.spec
    batch = result.frame[spec.columns].to_numpy(np.float32)
    xyzv = xyzv_of(frames)
    videos = frames["video"].astype(str).to_numpy()
    for name in sorted(set(videos)):
        sel = np.flatnonzero(videos == name)
        buf = LiveFeatureBuffer(spec, W, H)  # a new stream per video, as offline runs restart per video
        live = {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # hidden joints must not spam RuntimeWarnings
            for i, r in enumerate(sel):
                row = buf.push(xyzv[r])
                if row is not None:
                    live[i] = row
        mine = np.flatnonzero(result.frame["video"].astype(str).to_numpy() == name)
        for k in mine:
            end = int(result.frame["end_frame"].iloc[k])
            assert live[end].tobytes() == batch[k].tobytes(), (name, end)
            assert spec.transform_window(xyzv[sel][: end + 1], W, H).tobytes() == batch[k].tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 50), mode=st.sampled_from(["ignore", "impute"]),
       carry=st.integers(1, 8), threshold=st.sampled_from([0.2, 0.5, 0.9]),
       cuts=st.lists(st.integers(1, 49), max_size=3))
def test_live_mask_equals_the_vectorised_mask_run_by_run(seed, n, mode, carry, threshold, cuts):
    rng = np.random.default_rng(seed)
    xyzv = rng.uniform(0, 1, (n, 33, 4))
    xyzv[rng.uniform(size=n) < 0.2] = np.nan
    xyzv[rng.uniform(size=(n, 33)) < 0.05, 3] = np.nan  # a missing score counts as low visibility
    starts = sorted({0, *[c for c in cuts if c < n]})
    policy = VisibilityPolicy(mode, threshold, carry)
    batch = mask_frames(xyzv, policy, starts)
    live = LiveMask(policy)
    for i in range(n):
        if i in starts:
            live.reset()
        np.testing.assert_array_equal(live.apply(xyzv[i]), batch[i])
    np.testing.assert_array_equal(batch[..., 3], xyzv[..., 3])  # the score itself is never changed


def test_impute_carries_the_last_visible_position_within_its_reach_and_run():
    xyzv = np.full((8, 33, 4), 0.9)
    xyzv[:, :, 0] = np.arange(8)[:, None] / 10  # x moves every frame
    xyzv[2:, 5, 3] = 0.1  # joint 5 hidden from frame 2 on
    xyzv[4] = np.nan  # nobody in frame 4
    out = mask_frames(xyzv, VisibilityPolicy("impute", 0.5, 3), [0, 6])
    assert out[2:4, 5, 0].tolist() == [0.1, 0.1]  # frame 1's position, carried
    assert np.isnan(out[4]).all()  # a frame without a person stays empty
    assert np.isnan(out[5, 5, :3]).all()  # 4 frames after the last visible one: beyond the reach
    assert np.isnan(out[6:, 5, :3]).all()  # a new run never takes positions from the previous one
    assert out[6, 4, 0] == pytest.approx(0.6)  # visible joints are untouched
    ignored = mask_frames(xyzv, VisibilityPolicy("ignore", 0.5, 3))
    assert np.isnan(ignored[2:, 5, :3]).all() and not np.isnan(ignored[2:4, 4]).any()


def test_ignore_a_hidden_joint_does_not_move_the_features_keep_does():
    frames = frames_table(7, [30], hidden=0.0, nobody=0.0)
    xyzv = xyzv_of(frames)
    wrist = INDEX["left_wrist"]
    moved = xyzv.copy()
    moved[:, wrist, 3] = 0.2  # the wrist is hardly visible ...
    jumped = moved.copy()
    jumped[:, wrist, :2] += 0.3  # ... and where the model put it jumps around
    feats = ["angles", "distances", "normalized", "velocities"]
    for mode in ("ignore", "impute"):
        spec = windowed(feats, {f: {"low_visibility": mode} for f in feats}, 4).resolve()
        a = [spec.transform_window(moved[: e + 1], W, H) for e in range(5, 30)]
        b = [spec.transform_window(jumped[: e + 1], W, H) for e in range(5, 30)]
        np.testing.assert_array_equal(np.array(a), np.array(b))
        wrist_cols = [i for i, c in enumerate(spec.columns) if "left_wrist" in c]
        assert wrist_cols and np.isnan(np.array(a)[:, wrist_cols]).all()  # nothing visible to impute from
    keep = windowed(feats, {}, 4).resolve()
    assert not np.array_equal(keep.transform_window(moved, W, H), keep.transform_window(jumped, W, H))


def test_specs_record_the_policy_and_old_specs_keep_todays_features():
    spec = windowed(["angles", "normalized"], {"angles": {"low_visibility": "impute"}}, 3).resolve()
    assert spec.features[0].options == {"low_visibility": "impute", "min_visibility": 0.5, "impute_frames": 10}
    assert spec.features[1].options == {}
    again = FeaturePipelineSpec.model_validate_json(spec.model_dump_json())
    assert again.features == spec.features and again.context_frames == 3 + 10
    frames = frames_table(3, [25])
    old = windowed(["angles", "normalized"], {}, 3).resolve()
    explicit = windowed(["angles", "normalized"], {"angles": {"low_visibility": "keep"}}, 3)
    a = format_dataset_frames(frames, old).frame[old.columns].to_numpy()
    b = format_dataset_frames(frames, explicit).frame[old.columns].to_numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises((ConfigError, SpmlError, ValueError), match="low_visibility"):
        windowed(["angles"], {"angles": {"low_visibility": "drop"}}, 3).resolve()
    with pytest.raises((ConfigError, SpmlError, ValueError), match="set low_visibility options on velocities"):
        windowed(["velocities"], {"velocities": {"of": {"angles": {"low_visibility": "ignore"}}}}, 3).resolve()


# -- a bundle trained with it ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_bundle_trained_with_ignore_records_it_and_predicts_with_it(example_keypoints_dir: Path,
                                                                      example_annotations: Path, tmp_path: Path):
    import spml_core
    from spml_core.cli.main import main
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.models.examples import load_examples

    frames, _ = build_dataset(example_keypoints_dir, example_annotations)
    ds = write_dataset(frames, tmp_path / "example.parquet")
    feats = ["angles", "distances", "normalized"]
    flags = [a for f in feats for a in ("-F", f"{f}.low_visibility=ignore", "-F", f"{f}.min_visibility=0.6")]
    rc = main(["train", str(ds), "--target", "step_type", "--out", str(tmp_path / "bundle"), "--model",
               "xgboost", "-o", "n_estimators=30", "--folds", "3", "--quiet", *flags])
    assert rc == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    recorded = {f["use"]: f["options"] for f in manifest["features"]["spec"]["features"]}
    assert recorded == {f: {"low_visibility": "ignore", "min_visibility": 0.6} for f in feats}

    predictor = spml_core.load_bundle(tmp_path / "bundle")
    xyzv = frames[landmark_columns()].to_numpy().reshape(-1, 33, 4)
    hidden = np.nanmean(xyzv[..., 3] < 0.6)
    assert hidden > 0.05, "the example needs joints below the threshold for this test to mean anything"
    t = frames["timestamp_ms"].to_numpy(np.float64)
    w, h = int(frames["width"].iloc[0]), int(frames["height"].iloc[0])

    # The rows the model learned from (offline) are the rows the bundle computes live for the same frames.
    ex = load_examples(ds, "step_type", predictor._require_spec())
    stream = predictor.new_stream(w, h)
    rows = {}
    for i in range(len(xyzv)):
        step = stream.advance(xyzv[i], t[i])
        if step is not None and step[0] is not None:
            rows[int(frames["frame"].iloc[i])] = step[0]
    matched = [k for k, end in enumerate(ex.end) if int(end) in rows]
    assert len(matched) > 100
    for k in matched:
        assert rows[int(ex.end[k])].tobytes() == ex.X[k].tobytes()
    assert np.isnan(ex.X).any()  # hidden joints made some features NaN; XGBoost took them as missing

    # Moving joints below the threshold does not change a single prediction.
    jumped = xyzv.copy()
    low = jumped[..., 3] < 0.6
    jumped[..., 0] = np.where(low, jumped[..., 0] + 0.25, jumped[..., 0])
    before = predictor.predict_stream(xyzv, t, w, h)
    after = predictor.predict_stream(jumped, t, w, h)
    assert [r and (r["status"], r["label"]) for r in before] == [r and (r["status"], r["label"]) for r in after]
    ok = [i for i, r in enumerate(before) if r and r["status"] == "ok"]
    assert len(ok) > 100
    for i in ok:
        assert before[i]["probabilities"] == after[i]["probabilities"]
