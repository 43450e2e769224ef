"""Metrics agree with scikit-learn's definitions; onset latency counts frames to the first correct prediction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spml_core.models.metrics import classification_metrics, confusion_matrix, label_runs, onset_latency

CLASSES = ["a", "b", "c"]


@given(st.lists(st.tuples(st.sampled_from(CLASSES), st.sampled_from(CLASSES)), min_size=1, max_size=80))
@settings(max_examples=80, deadline=None)
def test_matches_scikit_learn(pairs) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    y_true = [t for t, _ in pairs]
    y_pred = [p for _, p in pairs]
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    present = sorted(set(y_true))
    assert m["balanced_accuracy"] == pytest.approx(
        np.mean(sk.recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    for i, c in enumerate(CLASSES):
        assert m["per_class"][c]["precision"] == pytest.approx(p[i])
        assert m["per_class"][c]["recall"] == pytest.approx(r[i])
        assert m["per_class"][c]["f1"] == pytest.approx(f[i])
        assert m["per_class"][c]["support"] == s[i]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, CLASSES),
                                  sk.confusion_matrix(y_true, y_pred, labels=CLASSES))


def test_single_class_test_set_does_not_crash() -> None:
    m = classification_metrics(["a", "a", "a"], ["a", "b", "a"], CLASSES)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_label_runs_split_on_change_gap_and_missing() -> None:
    frames = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9])
    labels = np.array(["L", "L", None, "R", "R", "R", "R", "L", float("nan")], dtype=object)
    assert label_runs(frames, labels) == [("L", 0, 1), ("R", 3, 5), ("R", 7, 7), ("L", 8, 8)]
    # Examples every 2 frames (a formatted table with stride 2): a step of 2 is still consecutive.
    assert label_runs(np.array([9, 11, 13, 15, 19]), np.array(["L", "L", "R", "R", "R"], dtype=object)) == [
        ("L", 9, 11), ("R", 13, 15), ("R", 19, 19)]


def test_onset_latency() -> None:
    frames = np.arange(30)
    labels = np.array([None] * 5 + ["step"] * 10 + [None] * 5 + ["step"] * 10, dtype=object)
    # Predictions at every frame: the first event is recognised 3 frames late, the second never.
    pred = np.array(["idle"] * 30, dtype=object)
    pred[8:15] = "step"
    out = onset_latency({"v": (frames, labels)}, {"v": (frames, pred)}, fps={"v": 30.0})
    s = out["per_class"]["step"]
    assert (s["events"], s["detected"], s["missed"], s["median_frames"]) == (2, 1, 1, 3.0)
    assert s["median_ms"] == pytest.approx(100.0)
    assert [e["latency_frames"] for e in out["events"]] == [3, None]
