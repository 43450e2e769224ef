"""Models users can trust: quality warnings, the "unknown" answer, calibration, importances, augmentation.

Datasets are built here frame by frame (a fixed standing pose with small noise; class "up" raises the
left arm), so each warning can be made to fire, or not, on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spml_core
from spml_core.actuation.decisions import DecisionConfig, DecisionEngine
from spml_core.datasets.io import write_dataset
from spml_core.keypoints.skeleton import INDEX, landmark_columns
from spml_core.models.augment import AugmentSettings, mirror_frames, parse_label_map, warp_frames
from spml_core.models.calibration import apply_temperature, calibrate_cv, expected_calibration_error
from spml_core.models.evaluation import cross_validate, evaluate_bundle
from spml_core.models.examples import ExampleSet, default_spec, load_examples
from spml_core.models.importance import PermutationImportance, native_importance, readable_name
from spml_core.models.quality import cv_warnings
from spml_core.models.splits import plan_splits
from spml_core.models.training import train
from spml_core.payloads import encode_payload
from spml_core.registry import Registry

TARGET = "pose"
SMALL = {"n_estimators": 30}
FAST = {"features": ["normalized"], "window": 3}


def base_pose(seed: int = 0) -> np.ndarray:
    """A plausible standing pose (33, 2) in normalised image coordinates."""
    rng = np.random.default_rng(seed)
    xy = np.column_stack([0.5 + rng.normal(0, 0.04, 33), np.linspace(0.2, 0.9, 33)])
    return xy


def video(name: str, labels: list[str | None], up: tuple[str, ...] = ("up",), seed: int = 0) -> pd.DataFrame:
    """Frames of one video: ``labels[i]`` is frame i's label; frames whose label is in ``up`` raise the left arm."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32 + seed)
    n = len(labels)
    xy = np.repeat(base_pose()[None], n, axis=0) + rng.normal(0, 0.004, (n, 33, 2))
    raised = np.array([lab in up for lab in labels])
    for joint, dy in (("left_wrist", 0.25), ("left_elbow", 0.12), ("left_index", 0.27), ("left_pinky", 0.27)):
        xy[raised, INDEX[joint], 1] -= dy
    xyzv = np.concatenate([xy, np.zeros((n, 33, 1)), np.ones((n, 33, 1))], axis=2)
    df = pd.DataFrame(xyzv.reshape(n, -1), columns=landmark_columns())
    df.insert(0, "video", name)
    df.insert(1, "frame", np.arange(n))
    df.insert(2, "timestamp_ms", np.arange(n) * 1000.0 / 30)
    df.insert(3, "width", 640)
    df.insert(4, "height", 480)
    df[TARGET] = pd.Series(labels, dtype=object)
    return df


def alternating(n_events: int, length: int = 15, classes: tuple[str, ...] = ("up", "down")) -> list[str]:
    """Events of ``length`` frames cycling through the classes."""
    return [classes[(i // length) % len(classes)] for i in range(n_events * length)]


def dataset(tmp_path: Path, parts: list[pd.DataFrame], name: str = "ds.parquet") -> Path:
    df = pd.concat(parts, ignore_index=True)
    df["video"] = df["video"].astype("category")
    return write_dataset(df, tmp_path / name)


def codes(report: dict) -> set[str]:
    return {w["code"] for w in report["warnings"]}


def fit(path: Path, out: Path, **kw) -> dict:
    kw.setdefault("split", "auto")
    return train(path, TARGET, out, "xgboost", SMALL, quiet=True, n_splits=3, **FAST, **kw).report


# -- warnings -------------------------------------------------------------------------------
def test_clean_dataset_has_no_warnings_and_reports_calibration_and_importance(tmp_path) -> None:
    ds = dataset(tmp_path, [video(f"v{i}", alternating(8)) for i in range(3)])
    report = fit(ds, tmp_path / "b")
    assert report["warnings"] == []
    assert report["baseline"]["beats_baseline"] and report["overall"]["balanced_accuracy"] > 0.9
    cal = report["calibration"]
    assert 0 <= cal["ece_after"] <= 1 and cal["temperature"] > 0 and 0 < cal["rejection"]["threshold"] < 1
    # The raised arm is the whole signal: its joints lead the held-out permutation importance.
    top = report["importance"]["permutation"]["features"][0]["feature"]
    assert top.startswith(("left_wrist", "left_elbow", "left_index", "left_pinky")), top
    assert report["importance"]["native"]["features"][0]["feature"].split(" @ t-")[0].startswith("left_")
    for png in ("reliability.png", "importance.png", "confusion_matrix.png"):
        assert (tmp_path / "b" / png).read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["calibration"]["temperature"] == cal["temperature"]
    assert manifest["metrics"]["warnings"] == [] and manifest["metrics"]["cv_settings"]["n_folds"] == 3
    # evaluate re-uses the recorded folds: the same numbers, no folds_differ warning.
    ev = evaluate_bundle(tmp_path / "b", ds, tmp_path / "ev", quiet=True)
    assert ev["split"]["n_folds"] == 3 and "folds_differ" not in codes(ev)
    assert ev["overall"]["balanced_accuracy"] == pytest.approx(report["overall"]["balanced_accuracy"])
    ev5 = evaluate_bundle(tmp_path / "b", ds, tmp_path / "ev5", n_splits=2, quiet=True)
    assert "folds_differ" in codes(ev5)
    # On new data the fitted bundle predicts: calibration and unknown share are measured there too.
    other = dataset(tmp_path, [video("new", alternating(4), seed=5)], "new.parquet")
    ho = evaluate_bundle(tmp_path / "b", other, tmp_path / "ho", quiet=True)
    assert ho["evaluation"].startswith("held-out") and ho["calibration"]["temperature"] == cal["temperature"]
    assert 0 <= ho["calibration"]["rejection"]["rejected_share"] < 0.5 and ho["overall"]["balanced_accuracy"] > 0.9
    assert ho["baseline"]["beats_baseline"] and "at_or_below_baseline" not in codes(ho)
    # Held out where the raised arm means the opposite: the bundle is worse than the majority, and says so.
    flipped = dataset(tmp_path, [video("flip", alternating(4), up=("down",))], "flip.parquet")
    bad = evaluate_bundle(tmp_path / "b", flipped, tmp_path / "bad", quiet=True)
    assert "at_or_below_baseline" in codes(bad) and not bad["baseline"]["beats_baseline"]


def test_single_video_warns_single_group(tmp_path) -> None:
    report = fit(dataset(tmp_path, [video("only", alternating(12))]), tmp_path / "b")
    assert "single_group" in codes(report)
    assert report["baseline"]["beats_baseline"]


def test_a_model_worse_than_the_majority_warns_at_or_below_baseline(tmp_path) -> None:
    # The raised arm means "up" in one video and "down" in the other: each fold learns the opposite.
    parts = [video("a", alternating(8)), video("b", alternating(8), up=("down",))]
    report = fit(dataset(tmp_path, parts), tmp_path / "b")
    assert "at_or_below_baseline" in codes(report)
    assert not report["baseline"]["beats_baseline"]


def test_a_class_seen_once_warns_missing_from_training_few_events_and_few_examples(tmp_path) -> None:
    rare = alternating(6) + ["wave"] * 12
    parts = [video("a", rare), video("b", alternating(6)), video("c", alternating(6))]
    report = fit(dataset(tmp_path, parts), tmp_path / "b")
    found = codes(report)
    assert {"class_missing_from_training_fold", "few_events", "few_examples"} <= found
    msgs = " ".join(w["message"] for w in report["warnings"])
    assert "'wave'" in msgs
    lenient = fit(dataset(tmp_path, parts), tmp_path / "c", min_examples=5, min_events=1)
    assert not {"few_events", "few_examples"} & codes(lenient)


def test_a_class_in_no_test_fold_warns_class_never_tested(tmp_path) -> None:
    ds = dataset(tmp_path, [video(f"v{i}", alternating(4)) for i in range(3)])
    ex = load_examples(ds, TARGET, default_spec(TARGET, ["normalized"], 3))
    plan = plan_splits("group", groups=ex.groups, group_column="video", sequences=ex.video, start=ex.start,
                       end=ex.end, window=3, n_splits=3)
    cv = cross_validate(ex, "xgboost", SMALL, plan, Registry().load(), show_progress=False)
    assert "class_never_tested" not in {w["code"] for w in cv_warnings(ex, cv)}
    cv.tested[ex.y == "up"] = False
    assert [w["message"] for w in cv_warnings(ex, cv) if w["code"] == "class_never_tested"] == [
        "class 'up' is in no test fold: the scores say nothing about it"]


def test_fail_on_warning_exits_nonzero_but_writes_the_bundle(tmp_path) -> None:
    ds = dataset(tmp_path, [video("only", alternating(10))])
    cmd = [sys.executable, "-m", "spml_core", "train", str(ds), "--target", TARGET, "--out", str(tmp_path / "b"),
           "--features", "normalized", "--window", "3", "--folds", "3", "-o", "n_estimators=20", "-q"]
    proc = subprocess.run(cmd + ["--fail-on-warning"], capture_output=True, text=True)
    assert proc.returncode != 0 and "single_group" in proc.stderr
    assert (tmp_path / "b" / "manifest.json").is_file()
    proc = subprocess.run(cmd[:-1] + ["--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("warning [single_group]") for line in lines)
    assert lines[-1].startswith("cross-validated balanced accuracy") and lines[-1].endswith("above baseline")


# -- unknown ---------------------------------------------------------------------------------
def shuffled_joints(frames: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """(n, 33, 4) keypoints with the joints of each frame put in a random order: no body looks like it."""
    rng = np.random.default_rng(seed)
    xyzv = frames[landmark_columns()].to_numpy(np.float32).reshape(len(frames), 33, 4)
    return np.stack([f[rng.permutation(33)] for f in xyzv])


def test_background_and_rejection_answer_unknown_on_frames_unlike_any_class_and_the_device_stays_off(tmp_path) -> None:
    labels: list[str | None] = []
    for _ in range(6):
        labels += ["up"] * 15 + [None] * 10 + ["down"] * 15
    # Unlabelled frames: the arm half raised and the right arm out (neither class).
    parts = []
    for i in range(3):
        v = video(f"v{i}", labels)
        idle = v[TARGET].isna().to_numpy()
        for joint in ("right_wrist", "right_index", "right_pinky"):
            v.loc[idle, f"{joint}_x"] -= 0.2
        parts.append(v)
    ds = dataset(tmp_path, parts)
    report = fit(ds, tmp_path / "b", background="idle")
    assert set(report["overall"]["per_class"]) == {"down", "idle", "up"}
    predictor = spml_core.load_bundle(tmp_path / "b")
    assert predictor.manifest.calibration.background == "idle" and predictor.threshold > 0
    odd = shuffled_joints(parts[0])
    results = predictor.predict_stream(odd, np.arange(len(odd)) * 1000.0 / 30, 640, 480)
    answered = [r for r in results if r is not None and r["status"] in ("ok", "unknown")]
    assert answered
    none_of_these = [r for r in answered if r["label"] in (None, "idle")]
    assert len(none_of_these) / len(answered) >= 0.9
    assert all(r["label"] is None for r in answered if r["status"] == "unknown")
    # The decision layer never switches the device on for them.
    config = DecisionConfig(actions={"up": "01", "down": "02"}, off="00", threshold=0.0, min_bout=1)
    engine = DecisionEngine.from_config(config, lambda v, _: encode_payload(v, "hex"), "dev")
    ons = 0
    for i, r in enumerate(answered):
        for a in engine.update(i * 33.0, r["label"], r["probabilities"], i, r["status"]):
            if a.action == "on":  # only ever on a confident, known answer of that class
                assert r["status"] == "ok" and r["label"] == a.label, (a, r)
                ons += 1
            if r["status"] == "unknown":
                assert a.action == "off"
        if r["status"] == "unknown":
            assert not engine.is_on
    assert ons <= len(answered) - len(none_of_these)


def test_rejection_stores_a_threshold_and_offline_results_carry_unknown(tmp_path) -> None:
    ds = dataset(tmp_path, [video(f"v{i}", alternating(8)) for i in range(3)])
    fit(ds, tmp_path / "b", reject_keep=0.5)  # a high threshold: half the right answers go
    p = spml_core.load_bundle(tmp_path / "b")
    proba = np.array([[0.5, 0.5], [0.999, 0.001]])
    assert p.unknown(proba).tolist() == [True, False]
    assert p._result(proba[0]) == {"label": None, "probabilities": {"down": 0.5, "up": 0.5}, "status": "unknown"}
    assert p._result(proba[1])["label"] == "down" and "status" not in p._result(proba[1])


def test_decision_layer_treats_unknown_as_off_even_with_high_probabilities() -> None:
    config = DecisionConfig(actions={"up": "01"}, off="00", threshold=0.5, min_bout=1)
    engine = DecisionEngine.from_config(config, lambda v, _: encode_payload(v, "hex"), "dev")
    assert [d.action for d in engine.update(0, "up", {"up": 0.9}, 0, "ok")] == ["on"]
    # An unknown answer still carries probabilities; the bout ends anyway.
    assert [d.action for d in engine.update(33, None, {"up": 0.9}, 1, "unknown")] == ["off"]
    assert engine.update(66, "up", {"up": 0.9}, 2, "no_person") == []
    assert not engine.is_on


# -- calibration -----------------------------------------------------------------------------
def test_calibration_improves_ece_of_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    n, k = 3000, 3
    y = rng.integers(0, k, n)
    right = rng.random(n) < 0.7  # 70 % correct ...
    pred = np.where(right, y, (y + rng.integers(1, k, n)) % k)
    proba = np.full((n, k), 0.005)
    proba[np.arange(n), pred] = 0.99  # ... at 99 % confidence
    result = calibrate_cv(proba, y, np.arange(n) % 5)
    assert result["ece_before"] > 0.25
    assert result["ece_after"] < 0.05 and result["brier_after"] < result["brier_before"]
    assert result["temperature"] > 1  # softened
    calibrated = apply_temperature(proba, result["temperature"])
    assert (calibrated.argmax(axis=1) == pred).all()  # the answers never change
    assert expected_calibration_error(calibrated, y) < 0.05


# -- importance ------------------------------------------------------------------------------
def test_importances_rank_a_planted_informative_feature_first() -> None:
    rng = np.random.default_rng(0)
    n, cols = 600, [f"noise_{i}" for i in range(8)]
    X = rng.normal(size=(n, 9)).astype(np.float32)
    y = np.where(X[:, 5] > 0, "b", "a").astype(object)
    columns = cols[:5] + ["planted"] + cols[5:]
    video = np.asarray([f"v{i % 4}" for i in range(n)], dtype=object)
    idx = np.arange(n)
    ex = ExampleSet(X=X, y=y, video=video, groups=video, group_column="video", start=idx, end=idx, spec=None,
                    columns=columns, window=1, frame_features=None, frame_size=None)
    plan = plan_splits("group", groups=video, group_column="video", sequences=video, start=idx, end=idx,
                       window=1, n_splits=4)
    for model in ("xgboost", "logistic_regression"):
        perm = PermutationImportance(columns)
        cv = cross_validate(ex, model, SMALL if model == "xgboost" else {}, plan, Registry().load(),
                            show_progress=False, on_model=perm)
        ranked = perm.report()["features"]
        assert ranked[0]["feature"] == "planted" and ranked[0]["importance"] > 0.3
        assert cv.tested.all()
    final = Registry().load().create("model", "xgboost", SMALL)
    final.fit(X, y)
    native = native_importance(final, columns, 1)
    assert native["features"][0]["column"] == "planted"
    assert readable_name("frame-8-left_knee_angle", 10) == "left_knee_angle @ t-2"


# -- augmentation ----------------------------------------------------------------------------
def test_mirror_swaps_left_and_right_and_the_mapped_labels() -> None:
    frames = video("v", ["Left Step"] * 5 + ["Right Step"] * 5 + ["Jump"] * 5, up=("Left Step",))
    frames = frames.rename(columns={TARGET: "step"})
    m = mirror_frames(frames, "step", parse_label_map(["Left Step<->Right Step"]))
    assert m["step"].tolist() == ["Right Step"] * 5 + ["Left Step"] * 5 + ["Jump"] * 5
    np.testing.assert_allclose(m["left_wrist_x"], 1.0 - frames["right_wrist_x"])
    np.testing.assert_allclose(m["right_wrist_y"], frames["left_wrist_y"])
    np.testing.assert_allclose(m["nose_x"], 1.0 - frames["nose_x"])
    assert parse_label_map(["A->B"]) == {"A": "B"}
    with pytest.raises(spml_core.SpmlError, match="expected 'LABEL<->LABEL'"):
        parse_label_map(["A=B"])
    warped = warp_frames(frames.assign(video="v"), "step", 2.0)
    assert len(warped) == 8 and warped["frame"].tolist() == list(range(8))


def test_augmentation_is_used_on_training_folds_only_and_recorded(tmp_path) -> None:
    ds = dataset(tmp_path, [video(f"v{i}", alternating(6)) for i in range(3)])
    aug = AugmentSettings(mirror={}, time_warp=[0.9], jitter=0.003)
    report = fit(ds, tmp_path / "b", augment=aug)
    plain = fit(ds, tmp_path / "c")
    # Same test rows, scored once each: the copies only ever train.
    assert report["examples"]["evaluated"] == plain["examples"]["evaluated"] == report["examples"]["n"]
    assert [f["n_train"] for f in report["folds"]] == [f["n_train"] for f in plain["folds"]]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["augmentation"]["mirror"] == {} and manifest["augmentation"]["time_warp"] == [0.9]
    assert manifest["augmentation"]["rows_added"] > report["examples"]["n"]
    # evaluate re-applies the recorded augmentation, so the recipe scores the same.
    ev = evaluate_bundle(tmp_path / "b", ds, tmp_path / "ev", quiet=True)
    assert ev["overall"]["balanced_accuracy"] == pytest.approx(report["overall"]["balanced_accuracy"])


def test_model_builder_importances_through_the_facade(tmp_path) -> None:
    from stream_pose_ml.learning.model_builder import ModelBuilder

    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"noise_{i}" for i in range(6)])
    df.insert(3, "planted", rng.normal(size=n))
    df.insert(0, "step_type", np.where(df["planted"] > 0, "Left Step", "Right Step"))  # target first, as in the seed
    df.insert(0, "video_id", [f"v{i % 4}" for i in range(n)])
    df.to_csv(tmp_path / "ds.csv", index=False)
    mb = ModelBuilder()
    mb.load_and_prep_dataset_from_csv(path=str(tmp_path / "ds.csv"), target="step_type")
    mb.set_train_test_split(test_size=0.25, random_state=0)
    mb.train_gradient_boost(n_estimators=30)
    assert mb.feature_importances[0][0] == "planted"  # names line up (the seed's were shifted by the target)
    assert sum(v for _, v in mb.feature_importances) == pytest.approx(1.0)
    ranked = mb.permutation_importances()
    assert ranked[0][0] == "planted" and ranked[0][1] > 0.3
    mb.train_logistic_regression()
    assert mb.feature_importances == []  # no native importances: permutation works for any model
    assert mb.permutation_importances()[0][0] == "planted"
    assert mb.sort_and_format_feature_importances(np.arange(7))[0] == ("noise_5", 6.0)
