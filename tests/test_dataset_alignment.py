"""Alignment of annotations to keypoint rows: property tests against a naive per-frame reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spml_core.datasets.annotations import Annotation, VideoAnnotations, align_annotations, assign_intervals
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError

MAPPING = {"L": "step", "R": "step", "S": "transfer", "F": "transfer"}
LABELS = [*MAPPING, "Jump"]  # "Jump" is not in the mapping


def _schema(on_conflict: str = "keep_later") -> AnnotationSchema:
    return AnnotationSchema(label_class_mapping=MAPPING, on_conflict=on_conflict)


def _video(anns: list[Annotation]) -> VideoAnnotations:
    return VideoAnnotations(file=Path("clip.json"), annotations=anns)


def _frames(specs: list[tuple[str, int, int]]) -> list[Annotation]:
    return [Annotation(label=lab, cls=MAPPING.get(lab), start_frame=s, end_frame=e, index=i)
            for i, (lab, s, e) in enumerate(specs)]


def naive_frames(frame_index, anns):
    """Per-frame reference: for each row and class, the later covering annotation wins; conflicts noted."""
    labels = {c: [None] * len(frame_index) for c in set(MAPPING.values())}
    conflict = False
    for row, f in enumerate(frame_index):
        for cls in labels:
            here = [a for a in anns if a.cls == cls and a.start_frame <= f <= a.end_frame]
            if len({a.label for a in here}) > 1:
                conflict = True
            labels[cls][row] = here[-1].label if here else None
    return labels, conflict


def naive_times(ts, anns):
    """Per-frame reference for times: start -> nearest row (ties later), end -> nearest row (ties earlier)."""
    labels = {c: [None] * len(ts) for c in set(MAPPING.values())}
    conflict = False
    spans = []
    for a in anns:
        s_ms, e_ms = a.start_time * 1000, a.end_time * 1000
        d_s = [abs(t - s_ms) for t in ts]
        d_e = [abs(t - e_ms) for t in ts]
        lo = max(i for i in range(len(ts)) if d_s[i] == min(d_s))
        hi = min(i for i in range(len(ts)) if d_e[i] == min(d_e))
        half = 0.5 * float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
        outside = e_ms < ts[0] - half or s_ms > ts[-1] + half
        spans.append((lo, hi, outside))
    for row in range(len(ts)):
        for cls in labels:
            here = [a for a, (lo, hi, out) in zip(anns, spans) if a.cls == cls and not out and lo <= row <= hi]
            if len({a.label for a in here}) > 1:
                conflict = True
            labels[cls][row] = here[-1].label if here else None
    return labels, conflict


def _decode(codes: dict[str, np.ndarray], schema: AnnotationSchema) -> dict[str, list]:
    from spml_core.datasets.annotations import class_categories

    cats = class_categories(schema)
    return {c: [cats[c][k] if k >= 0 else None for k in v] for c, v in codes.items()}


frame_sets = st.lists(st.integers(0, 80), min_size=1, max_size=60, unique=True).map(sorted)
intervals = st.lists(
    st.tuples(st.sampled_from(LABELS), st.integers(0, 90), st.integers(0, 30)).map(lambda t: (t[0], t[1], t[1] + t[2])),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(frame_sets, intervals)
def test_frames_keep_later_matches_naive_reference(frames, specs) -> None:
    anns = _frames(specs)
    fi = np.array(frames)
    codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema("keep_later"))
    expected, conflict = naive_frames(frames, anns)
    assert _decode(codes, _schema()) == expected
    assert bool(report.conflicts) == conflict
    assert report.unknown_labels == ({"Jump": sum(lab == "Jump" for lab, _, _ in specs)} if any(
        lab == "Jump" for lab, _, _ in specs) else {})
    for cls, n in report.labeled_frames.items():
        assert n == sum(v is not None for v in expected[cls])


@settings(max_examples=200, deadline=None)
@given(frame_sets, intervals)
def test_frames_on_conflict_error_iff_reference_conflicts(frames, specs) -> None:
    anns = _frames(specs)
    fi = np.array(frames)
    expected, conflict = naive_frames(frames, anns)
    if conflict:
        with pytest.raises(SpmlError, match=r"clip.json: conflicting labels for class '\w+' on frames \d+-\d+"):
            align_annotations(_video(anns), fi, fi * 33.3, _schema("error"))
    else:
        codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema("error"))
        assert _decode(codes, _schema()) == expected and report.conflicts == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5000), min_size=1, max_size=40, unique=True).map(sorted),  # whole ms, as decoders give
    st.lists(st.tuples(st.sampled_from(LABELS), st.floats(0, 5.5), st.floats(0, 2)), max_size=10),
)
def test_times_match_naive_nearest_row_reference(ts, specs) -> None:
    anns = [Annotation(label=lab, cls=MAPPING.get(lab), start_time=s, end_time=s + d, index=i)
            for i, (lab, s, d) in enumerate(specs)]
    codes, report = align_annotations(_video(anns), np.arange(len(ts)), np.array(ts), _schema("keep_later"))
    expected, conflict = naive_times(ts, anns)
    assert _decode(codes, _schema()) == expected
    assert bool(report.conflicts) == conflict


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.lists(st.tuples(st.integers(0, 1), st.integers(0, 60), st.integers(0, 60),
                                              st.integers(0, 3)), max_size=15))
def test_assign_intervals_is_latest_interval_per_group_and_row(n, raw) -> None:
    lo = np.array([min(a, b) for _, a, b, _ in raw], dtype=np.int64)
    hi = np.array([max(a, b) for _, a, b, _ in raw], dtype=np.int64)
    group = np.array([g for g, *_ in raw], dtype=np.int64)
    code = np.array([c for *_, c in raw], dtype=np.int64)
    codes, conflict = assign_intervals(n, np.minimum(lo, n), np.minimum(hi, n), group, code, 2)
    for g in range(2):
        for row in range(n):
            cover = [k for k in range(len(raw)) if group[k] == g and lo[k] <= row < min(hi[k], n)]
            assert codes[g, row] == (code[cover[-1]] if cover else -1)
            assert conflict[g, row] == (len({int(code[k]) for k in cover}) > 1)


def test_conflict_report_names_frames_labels_and_kept_label() -> None:
    anns = _frames([("R", 7, 49), ("L", 40, 60), ("S", 0, 100)])
    fi = np.arange(100)
    codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema("keep_later"))
    (c,) = report.conflicts
    assert (c.cls, c.first_frame, c.last_frame, c.frames, c.labels, c.annotations, c.kept) == (
        "step", 40, 49, 10, ["R", "L"], [0, 1], "L")
    labels = _decode(codes, _schema())["step"]
    assert labels[39] == "R" and labels[40] == "L" and labels[60] == "L" and labels[61] is None
    with pytest.raises(SpmlError) as err:
        align_annotations(_video(anns), fi, fi * 33.3, _schema("error"))
    assert str(err.value) == (
        "clip.json: conflicting labels for class 'step' on frames 40-49: 'R', 'L' (annotations 0, 1). "
        "Fix the annotations, or set annotation_schema.on_conflict: keep_later to keep the later one")


def test_same_label_overlap_is_not_a_conflict() -> None:
    anns = _frames([("R", 0, 10), ("R", 5, 20)])
    fi = np.arange(30)
    codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema("error"))
    assert report.conflicts == [] and report.labeled_frames["step"] == 21


def test_ranges_past_the_last_frame_are_clipped_and_reported_or_strict_errors() -> None:
    anns = _frames([("R", 5, 12), ("L", 8, 15), ("S", 20, 30)])
    fi = np.arange(10)  # frames 0..9
    codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema())
    assert [(o.annotation, o.kind, o.range) for o in report.outside] == [
        (0, "clipped", "frames 5-12"), (1, "clipped", "frames 8-15"), (2, "outside", "frames 20-30")]
    assert report.annotations_used == 2 and report.annotations_total == 3
    assert _decode(codes, _schema())["step"][5:] == ["R", "R", "R", "L", "L"]
    with pytest.raises(SpmlError) as err:
        align_annotations(_video(anns), fi, fi * 33.3, _schema(), strict=True)
    assert str(err.value).startswith(
        "clip.json: annotation ranges reach past the video's keypoints (last frame 9 (0.300 s)): "
        "frames 5-12 of annotation 0 ('R') is clipped; frames 8-15 of annotation 1 ('L') is clipped; "
        "frames 20-30 of annotation 2 ('S') is outside")


def test_strided_keypoints_do_not_clip_the_videos_last_frame() -> None:
    fi = np.arange(0, 20, 2)  # every other frame: 0..18 (the video's last frame is 19)
    codes, report = align_annotations(_video(_frames([("R", 15, 19)])), fi, fi * 33.3, _schema(), strict=True)
    assert report.outside == []
    assert _decode(codes, _schema())["step"][-3:] == [None, "R", "R"]  # frames 14, 16, 18


def test_unknown_labels_reported_ignored_or_strict_error() -> None:
    anns = _frames([("Jump", 0, 5), ("R", 0, 5), ("Jump", 6, 8), ("Spin", 1, 2)])
    fi = np.arange(10)
    codes, report = align_annotations(_video(anns), fi, fi * 33.3, _schema())
    assert report.unknown_labels == {"Jump": 2, "Spin": 1}
    assert report.annotations_used == 1
    with pytest.raises(SpmlError) as err:
        align_annotations(_video(anns), fi, fi * 33.3, _schema(), strict=True)
    assert str(err.value) == ("clip.json: labels not in annotation_schema.label_class_mapping: 'Jump' (2x), "
                              "'Spin' (1x) (add them to the mapping, or drop --strict to ignore them)")


def test_times_use_real_timestamps_not_nominal_fps() -> None:
    # A variable-frame-rate video: frames 0-4 at 10 fps, then 5-9 at 40 fps.
    ts = np.array([0, 100, 200, 300, 400, 425, 450, 475, 500, 525], dtype=float)
    anns = [Annotation(label="R", cls="step", start_time=0.19, end_time=0.44, index=0)]
    codes, _ = align_annotations(_video(anns), np.arange(10), ts, _schema())
    assert _decode(codes, _schema())["step"] == [None, None, "R", "R", "R", "R", "R", None, None, None]


def test_nominal_fps_timestamps_rounded_to_ms_still_align() -> None:
    # Dataloop writes start = frame / 29.97; the video's timestamps are whole milliseconds at 30 fps.
    ts = np.round(np.arange(382) * 1000 / 30.003)
    anns = [Annotation(label="R", cls="step", start_time=7 * 1001 / 30000, end_time=237 * 1001 / 30000, index=0)]
    codes, report = align_annotations(_video(anns), np.arange(382), ts, _schema(), strict=True)
    labeled = np.flatnonzero(codes["step"] >= 0)
    assert (labeled[0], labeled[-1]) == (7, 237) and report.outside == []


def test_frame_indices_must_increase() -> None:
    with pytest.raises(SpmlError, match="clip.json: keypoint frame indices are not increasing"):
        align_annotations(_video(_frames([("R", 0, 1)])), np.array([0, 2, 1]), np.zeros(3), _schema())


def test_times_past_the_last_frame_are_clipped_or_outside() -> None:
    ts = np.arange(10) * 100.0  # frames at 0..900 ms; the video ends half a frame later, at 950 ms
    anns = [Annotation(label="R", cls="step", start_time=0.8, end_time=0.94, index=0),
            Annotation(label="L", cls="step", start_time=0.85, end_time=1.2, index=1),
            Annotation(label="S", cls="transfer", start_time=1.0, end_time=1.5, index=2)]
    codes, report = align_annotations(_video(anns), np.arange(10), ts, _schema())
    assert [(o.annotation, o.kind, o.range) for o in report.outside] == [
        (1, "clipped", "0.85-1.2 s"), (2, "outside", "1-1.5 s")]
    assert _decode(codes, _schema())["step"][7:] == [None, "R", "L"]
    assert report.labeled_frames["transfer"] == 0 and report.annotations_used == 2
