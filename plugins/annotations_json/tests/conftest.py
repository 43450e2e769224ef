"""Fixtures for the JSON annotation parser's tests: the example annotations (read, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def example_annotations(example_dir: Path) -> Path:
    """The example video's Dataloop-style annotation file (example_dir: the root conftest's lookup)."""
    return example_dir / "example_video.json"
