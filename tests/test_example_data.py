"""The StreamPoseML example lookup: ../shared when present, else the copy extracted from the pinned sdist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spml_core.errors import SpmlError
from spml_core.util import example_data


def test_extract_from_the_cached_sdist_is_checked_and_idempotent(tmp_path: Path) -> None:
    sdist = example_data.fetch_sdist()  # make setup downloaded it; offline from the cache here
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(sdist, cache / example_data.SDIST_NAME)
    folder = example_data.ensure_fetched(cache)
    assert folder == cache / "streamposeml_example"
    for name, (_member, digest) in example_data.MEMBERS.items():
        assert example_data.sha256_of(folder / name) == digest
    assert "MIT License" in (folder / "LICENSE").read_text()
    stamp = (folder / "example_video.webm").stat().st_mtime_ns
    assert example_data.ensure_fetched(cache) == folder
    assert (folder / "example_video.webm").stat().st_mtime_ns == stamp


def test_lookup_prefers_shared_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in example_data.MEMBERS:
        (shared / name).write_bytes(b"x")
    monkeypatch.setattr(example_data, "SHARED_EXAMPLE", shared)
    cache = tmp_path / "cache"
    monkeypatch.delenv(example_data.NO_SHARED_ENV, raising=False)
    assert example_data.example_dir(cache, fetch=False) == shared
    monkeypatch.setenv(example_data.NO_SHARED_ENV, "1")
    with pytest.raises(SpmlError, match="make setup"):
        example_data.example_dir(cache, fetch=False)


def test_corrupt_sdist_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / example_data.SDIST_NAME
    bad.write_bytes(b"not a tarball")
    with pytest.raises(SpmlError, match=example_data.SDIST_NAME):
        example_data.extract_example(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "example_video.webm").exists()
