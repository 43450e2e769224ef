"""The interchange parsers on small files written here (ELAN, CVAT for video, BORIS, Label Studio), their
bad-input messages, and discovery plus stem matching through `spml dataset`'s plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError
from spml_core.registry import Registry

SCHEMA = AnnotationSchema(label_class_mapping={"walk": "gait", "run": "gait", "jump": "event"})


@pytest.fixture(scope="module")
def registry():
    return Registry().load()


def _parser(registry, name, **options):
    return registry.create("annotation_parser", name, options)


def _spans(va):
    return [(a.label, a.cls, a.start_frame, a.end_frame, a.start_time, a.end_time) for a in va.annotations]


def eaf(media: str, tiers: dict[str, list[tuple[int, int, str]]]) -> str:
    slots, body, k = [], [], 0
    for tier, anns in tiers.items():
        body.append(f'<TIER LINGUISTIC_TYPE_REF="lt" TIER_ID="{tier}">')
        for start, end, value in anns:
            k += 1
            slots += [f'<TIME_SLOT TIME_SLOT_ID="t{k}a" TIME_VALUE="{start}"/>',
                      f'<TIME_SLOT TIME_SLOT_ID="t{k}b" TIME_VALUE="{end}"/>']
            body.append(f'<ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a{k}" TIME_SLOT_REF1="t{k}a" '
                        f'TIME_SLOT_REF2="t{k}b"><ANNOTATION_VALUE>{value}</ANNOTATION_VALUE>'
                        '</ALIGNABLE_ANNOTATION></ANNOTATION>')
        body.append("</TIER>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><ANNOTATION_DOCUMENT FORMAT="3.0" VERSION="3.0"><HEADER '
            f'TIME_UNITS="milliseconds"><MEDIA_DESCRIPTOR MEDIA_URL="file:///videos/{media}"/></HEADER>'
            f'<TIME_ORDER>{"".join(slots)}</TIME_ORDER>{"".join(body)}</ANNOTATION_DOCUMENT>')


def test_elan_tiers_times_and_media(tmp_path, registry) -> None:
    path = tmp_path / "clip.mp4.eaf"
    path.write_text(eaf("clip.mp4", {"gait": [(1000, 2000, "walk"), (2000, 3500, "run")],
                                     "notes": [(500, 600, "jump"), (700, 800, "")]}))
    va = _parser(registry, "elan").parse(path, SCHEMA)
    assert _spans(va) == [("walk", "gait", None, None, 1.0, 2.0), ("run", "gait", None, None, 2.0, 3.5),
                          ("jump", "event", None, None, 0.5, 0.6)]
    assert va.video_name == "clip.mp4"
    assert va.match_names == ["clip.mp4", "clip"]
    only = _parser(registry, "elan", tiers=["notes"]).parse(path, SCHEMA)
    assert [a.label for a in only.annotations] == ["jump"]


def test_elan_bad_inputs_name_file_and_field(tmp_path, registry) -> None:
    p = _parser(registry, "elan")
    path = tmp_path / "clip.eaf"
    path.write_text(eaf("clip.mp4", {"gait": [(1000, 2000, "walk"), (1500, 2500, "run")]}))
    with pytest.raises(SpmlError, match=r"clip.eaf: tier 'gait': annotations a1 \(1000-2000 ms, 'walk'\) and a2 "
                                        r"\(1500-2500 ms, 'run'\) overlap"):
        p.parse(path, SCHEMA)
    path.write_text(eaf("clip.mp4", {"event": [(0, 100, "walk")]}))
    with pytest.raises(SpmlError, match="puts 'walk' in class 'gait', but the tier is class 'event'"):
        p.parse(path, SCHEMA)
    path.write_text("<ANNOTATION_DOCUMENT><TIER")
    with pytest.raises(SpmlError, match="clip.eaf: invalid XML at line 1"):
        p.parse(path, SCHEMA)
    path.write_text("<annotations/>")
    with pytest.raises(SpmlError, match="not an ELAN file"):
        p.parse(path, SCHEMA)
    path.write_text(eaf("clip.mp4", {"gait": [(0, 100, "walk")]}).replace('TIME_VALUE="100"', ""))
    with pytest.raises(SpmlError, match="time slot t1b has no TIME_VALUE"):
        p.parse(path, SCHEMA)
    with pytest.raises(SpmlError, match="no tier 'nope'"):
        _parser(registry, "elan", tiers=["nope"]).parse(path, SCHEMA)


CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
  <meta><task><id>7</id><name>t</name><size>100</size><start_frame>{start}</start_frame><stop_frame>99</stop_frame>
  <frame_filter>{ff}</frame_filter><source>{source}</source></task></meta>
  <track id="0" label="walk" source="manual">
    <box frame="10" outside="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2" occluded="0"/>
    <box frame="15" outside="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2" occluded="0"/>
    <box frame="21" outside="1" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2" occluded="0"/>
    <box frame="30" outside="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2" occluded="0"/>
  </track>
  <tag label="jump" frame="5" source="manual"/><tag label="jump" frame="6" source="manual"/>
  <tag label="jump" frame="9" source="manual"/>
</annotations>"""


def test_cvat_tracks_tags_offsets(tmp_path, registry) -> None:
    p = _parser(registry, "cvat_video")
    path = tmp_path / "annotations.xml"
    path.write_text(CVAT.format(start=0, ff="", source="clip.mp4"))
    va = p.parse(path, SCHEMA)
    assert [(a.label, a.start_frame, a.end_frame) for a in va.annotations] == [
        ("walk", 10, 20), ("walk", 30, 99), ("jump", 5, 6), ("jump", 9, 9)]
    assert va.video_name == "clip.mp4"
    path.write_text(CVAT.format(start=100, ff="step=2", source="clip.mp4"))
    assert [(a.start_frame, a.end_frame) for a in p.parse(path, SCHEMA).annotations][0] == (120, 140)
    path.write_text(CVAT.format(start=0, ff="", source="x").replace('frame="15"', 'frame="x"'))
    with pytest.raises(SpmlError, match=r"annotations.xml: track 0 \('walk'\) frame 'x' is not a whole frame"):
        p.parse(path, SCHEMA)
    two = CVAT.format(start=0, ff="", source="a").replace("</meta>", "<task><id>8</id></task></meta>")
    path.write_text(two)
    with pytest.raises(SpmlError, match="holds 2 tasks"):
        p.parse(path, SCHEMA)


BORIS_V8 = ("Observation id\tObservation date\tDescription\tObservation type\tSource\tMedia duration (s)\tFPS\t"
            "Subject\tBehavior\tBehavioral category\tBehavior type\tTime\tMedia file name\tImage index\t"
            "Image file path\tComment\n")


def _boris_row(behavior, kind, t, media="clip.mp4", fps="30", subject=""):
    return (f"obs1\t2024-01-01\t\tMedia file\tplayer #1:/v/{media}\t10\t{fps}\t{subject}\t{behavior}\t\t{kind}\t"
            f"{t}\t{media}\t{int(float(t) * 30)}\t\t\n")


def test_boris_state_and_point_events(tmp_path, registry) -> None:
    p = _parser(registry, "boris")
    path = tmp_path / "clip.tsv"
    path.write_text(BORIS_V8 + _boris_row("walk", "START", "1.0") + _boris_row("jump", "POINT", "1.5")
                    + _boris_row("walk", "STOP", "2.5"))
    va = p.parse(path, SCHEMA)
    assert _spans(va) == [("jump", "event", None, None, 1.5, 1.5), ("walk", "gait", None, None, 1.0, 2.5)]
    assert (va.video_name, va.fps) == ("clip.mp4", 30.0)
    # The older export: a Status column and comma separated.
    old = tmp_path / "old.csv"
    old.write_text("Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status\n"
                   "0.5,/v/clip.mp4,10,25,,run,,,START\n0.9,/v/clip.mp4,10,25,,run,,,STOP\n")
    va = p.parse(old, SCHEMA)
    assert _spans(va) == [("run", "gait", None, None, 0.5, 0.9)] and va.fps == 25.0


def test_boris_bad_inputs(tmp_path, registry) -> None:
    p = _parser(registry, "boris")
    path = tmp_path / "clip.tsv"
    path.write_text(BORIS_V8 + _boris_row("walk", "START", "1.0") + _boris_row("walk", "STOP", "2", media="other.mp4"))
    with pytest.raises(SpmlError, match=r"clip.tsv: events of two media files, 'clip.mp4' \(row 2\) and "
                                        r"'other.mp4' \(row 3\)"):
        p.parse(path, SCHEMA)
    path.write_text(BORIS_V8 + _boris_row("jump", "POINT", "1.0") + _boris_row("jump", "POINT", "2", fps="25"))
    with pytest.raises(SpmlError, match=r"FPS 30 \(row 2\) and 25 \(row 3\) in one file"):
        p.parse(path, SCHEMA)
    path.write_text(BORIS_V8 + _boris_row("walk", "STOP", "1.0"))
    with pytest.raises(SpmlError, match="row 2: STOP of 'walk' without a START"):
        p.parse(path, SCHEMA)
    path.write_text(BORIS_V8 + _boris_row("walk", "START", "1.0"))
    with pytest.raises(SpmlError, match="row 2: 'walk' starts but never stops"):
        p.parse(path, SCHEMA)
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(SpmlError, match="not a BORIS tabular events export"):
        p.parse(path, SCHEMA)


def _ls_task(video, ranges, key="annotations"):
    return {"id": 3, "data": {"video": video}, key: [{"result": [
        {"type": "timelinelabels", "from_name": "label", "to_name": "video",
         "value": {"ranges": [{"start": s, "end": e}], "timelinelabels": [lab]}} for s, e, lab in ranges]}]}


def test_labelstudio_tasks(tmp_path, registry) -> None:
    p = _parser(registry, "labelstudio_video")
    path = tmp_path / "export.json"
    path.write_text(json.dumps([_ls_task("/data/upload/1/3f2a1b2c-clip.mp4", [(1, 10, "walk"), (12, 12, "jump")]),
                                _ls_task("s3://b/other.webm", [(5, 6, "run")], key="predictions")]))
    a, b = p.parse(path, SCHEMA)
    assert [(x.label, x.start_frame, x.end_frame) for x in a.annotations] == [("walk", 0, 9), ("jump", 11, 11)]
    assert a.video_name == "clip.mp4" and b.video_name == "other.webm"
    assert [(x.label, x.start_frame) for x in b.annotations] == [("run", 4)]
    path.write_text(json.dumps([_ls_task("clip.mp4", [(0, 3, "walk")])]))
    with pytest.raises(SpmlError, match=r"export.json: task 3, result 0: start_frame -1|greater than or equal to 0"):
        p.parse(path, SCHEMA)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(SpmlError, match="not a Label Studio export"):
        p.parse(path, SCHEMA)


def _keypoints(folder: Path, stem: str, n: int = 120, fps: float = 30.0) -> None:
    from spml_core.keypoints.sequence import PoseSequence

    xyzv = np.full((n, 33, 4), 0.5, dtype=np.float32)
    PoseSequence(xyzv=xyzv, frame_index=np.arange(n), timestamps_ms=np.arange(n) * 1000.0 / fps, fps=fps,
                 width=640, height=480, source={"path": f"{stem}.mp4", "sha256": "0" * 64}).save(folder / f"{stem}.parquet")


def test_discovery_by_patterns_and_stem_matching(tmp_path, registry) -> None:
    from spml_core.datasets.plan import plan_dataset

    kp, ann = tmp_path / "kp", tmp_path / "ann"
    kp.mkdir(), ann.mkdir()
    for stem in ("clip", "other"):
        _keypoints(kp, stem)
    (ann / "clip.mp4.eaf").write_text(eaf("clip.mp4", {"gait": [(1000, 2000, "walk")]}))
    (ann / "other.eaf").write_text(eaf("", {"gait": [(0, 500, "run")]}).replace('MEDIA_URL="file:///videos/"', ""))
    (ann / "ignored.json").write_text("{}")  # not an ELAN file: the elan parser's patterns never pick it
    plan = plan_dataset(kp, ann, SCHEMA, parser="elan", registry=registry)
    assert sorted(plan.matched) == ["clip", "other"]
    # A file naming another video than the one it matched by name, or another frame rate, is refused.
    (ann / "other.eaf").write_text(eaf("elsewhere.mp4", {"gait": [(0, 500, "run")]}))
    with pytest.raises(SpmlError, match=r"other.eaf: refers to video 'elsewhere.mp4' .* matched the keypoints of "
                                        r"'other'"):
        plan_dataset(kp, ann, SCHEMA, parser="elan", registry=registry)
    (ann / "other.eaf").unlink()
    b = tmp_path / "boris"
    b.mkdir()
    (b / "clip.tsv").write_text(BORIS_V8 + _boris_row("jump", "POINT", "1.0", fps="25"))
    with pytest.raises(SpmlError, match=r"clip.tsv: FPS 25 differs from the keypoints of 'clip' .*30 fps"):
        plan_dataset(kp, b, SCHEMA, parser="boris", registry=registry)
    (b / "clip.tsv").write_text(BORIS_V8 + _boris_row("jump", "POINT", "1.0"))
    (b / "nothing.tsv").write_text(BORIS_V8 + _boris_row("jump", "POINT", "1.0", media="nothing.mp4"))
    with pytest.raises(SpmlError, match=r"nothing.tsv: matches no keypoint file \(looked for 'nothing.mp4' or "
                                        r"'nothing'"):
        plan_dataset(kp, b, SCHEMA, parser="boris", strict=True, registry=registry)
