"""JsonAnnotationParser: the Dataloop example with the seed schema, and every bad-input message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spml_core.config import AnnotationFields, AnnotationSchema
from spml_core.errors import ConfigError, SpmlError
from spml_core.registry import Registry


@pytest.fixture(scope="module")
def parser():
    """The parser as users get it: through the registry, from the installed entry point."""
    return Registry().load().create("annotation_parser", "json")


def _write(tmp_path: Path, data: object, name: str = "clip.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def _ann(label: str, start: int, end: int) -> dict:
    return {"label": label, "metadata": {"system": {"frame": start, "endFrame": end,
                                                   "startTime": start / 30, "endTime": end / 30}}}


def test_registered_under_json_from_its_distribution() -> None:
    registry = Registry().load()
    assert "json" in registry.names("annotation_parser")
    assert registry.provider("annotation_parser", "json").distribution == "spml-annotations-json"


def test_unknown_option_is_an_error() -> None:
    from spml_core.registry import validate_options

    cls = Registry().load().get("annotation_parser", "json")
    with pytest.raises(ConfigError, match=r"parser.options.nme_key: unknown option \(valid: name_key, encoding\)"):
        validate_options(cls, {"nme_key": "video"}, "parser.options")


def test_example_annotations_with_the_seed_schema(parser, example_annotations: Path) -> None:
    video = parser.parse(example_annotations, AnnotationSchema())
    assert video.video_name == "example_video"
    assert video.match_names == ["example_video"]
    assert len(video.annotations) == 12
    first = video.annotations[0]
    assert (first.label, first.cls, first.start_frame, first.end_frame, first.index) == (
        "Right Step", "step_type", 7, 49, 0)
    assert {a.cls for a in video.annotations} == {"step_type", "weight_transfer_type"}
    assert [a.index for a in video.annotations] == list(range(12))


def test_times_schema_reads_seconds(parser, example_annotations: Path) -> None:
    schema = AnnotationSchema(annotation_fields=AnnotationFields(
        label="label", start_time="metadata.system.startTime", end_time="metadata.system.endTime"))
    video = parser.parse(example_annotations, schema)
    first = video.annotations[0]
    assert first.in_time and first.start_frame is None
    assert first.start_time == pytest.approx(7 * 1001 / 30000) and first.end_time == pytest.approx(49 * 1001 / 30000)


def test_name_field_and_file_stem_both_match(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "videos\\session 1.MP4", "annotations": [_ann("Left Step", 1, 2)]},
                  "labels_for_session.json")
    video = parser.parse(path, AnnotationSchema())
    assert video.match_names == ["session 1", "labels_for_session"]
    without_name = parser.parse(_write(tmp_path, {"annotations": []}, "other.json"), AnnotationSchema())
    assert without_name.video_name is None and without_name.match_names == ["other"]


def test_invalid_json_names_line_and_column(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "annotations": [\n    {"label": "Left Step",}\n  ]\n}\n')
    with pytest.raises(SpmlError, match=rf"{path}: invalid JSON at line 3, column 27: Expecting property name"):
        parser.parse(path, AnnotationSchema())


def test_missing_key_along_dot_path_names_path_index_and_file(parser, tmp_path: Path) -> None:
    bad = _ann("Left Step", 3, 9)
    del bad["metadata"]["system"]["endFrame"]
    path = _write(tmp_path, {"annotations": [_ann("Right Step", 0, 2), bad]})
    with pytest.raises(SpmlError) as err:
        parser.parse(path, AnnotationSchema())
    assert str(err.value) == (f"{path}: annotation 1 ('Left Step'): missing key 'metadata.system.endFrame' "
                              "(annotation_fields.end_frame)")


def test_missing_label_key(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [{"metadata": {"system": {"frame": 1, "endFrame": 2}}}]})
    with pytest.raises(SpmlError, match=r"annotation 0: missing key 'label' \(annotation_fields.label\)"):
        parser.parse(path, AnnotationSchema())


def test_start_after_end(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [_ann("Left Step", 60, 50)]})
    with pytest.raises(SpmlError) as err:
        parser.parse(path, AnnotationSchema())
    assert str(err.value) == (f"{path}: annotation 0 ('Left Step'): start 60 ('metadata.system.frame') "
                              "is after end 50 ('metadata.system.endFrame')")


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "must not be negative, got -1"), ("7", "must be a number, got '7'"), (7.5, "must be a whole frame number"),
     (True, "must be a number, got True"), (None, "must be a number, got None")],
)
def test_bad_frame_values(parser, tmp_path: Path, value: object, message: str) -> None:
    ann = _ann("Left Step", 0, 10)
    ann["metadata"]["system"]["frame"] = value
    path = _write(tmp_path, {"annotations": [ann]})
    with pytest.raises(SpmlError, match=rf"annotation 0 \('Left Step'\): start_frame 'metadata.system.frame' {message}"):
        parser.parse(path, AnnotationSchema())


def test_annotations_key_missing_or_not_a_list(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"items": []})
    with pytest.raises(SpmlError, match=r"missing key 'annotations' \(annotation_schema.annotations_key\)"):
        parser.parse(path, AnnotationSchema())
    path = _write(tmp_path, {"annotations": {"label": "x"}})
    with pytest.raises(SpmlError, match=r"'annotations' \(annotation_schema.annotations_key\) must be a list "
                                        r"of annotations, got dict"):
        parser.parse(path, AnnotationSchema())
    path = _write(tmp_path, [1, 2])
    with pytest.raises(SpmlError, match=r"expected a JSON object holding 'annotations', got list"):
        parser.parse(path, AnnotationSchema())


def test_annotations_key_may_be_a_dot_path(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"export": {"items": [_ann("Left Step", 4, 8)]}})
    video = parser.parse(path, AnnotationSchema(annotations_key="export.items"))
    assert [(a.label, a.start_frame, a.end_frame) for a in video.annotations] == [("Left Step", 4, 8)]


def test_unknown_label_is_kept_without_class(parser, tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [_ann("Jump", 0, 3)]})
    (ann,) = parser.parse(path, AnnotationSchema()).annotations
    assert ann.label == "Jump" and ann.cls is None


def test_non_utf8_file(parser, tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"annotations": [], "name": "caf\xe9"}')
    with pytest.raises(SpmlError, match=r"latin.json: not utf-8 text \(byte 32\)"):
        parser.parse(path, AnnotationSchema())
    video = Registry().load().create("annotation_parser", "json", {"encoding": "latin-1"}).parse(
        path, AnnotationSchema())
    assert video.video_name == "café"
