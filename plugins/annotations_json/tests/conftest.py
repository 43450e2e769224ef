"""Fixtures for the JSON annotation parser's tests: the shared example annotations (read, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

# plugins/annotations_json/tests/conftest.py -> repository root is parents[3]; shared data sits beside it.
EXAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "streamposeml_example"


@pytest.fixture(scope="session")
def example_annotations() -> Path:
    """The example video's Dataloop-style annotation file."""
    path = EXAMPLE.resolve() / "example_video.json"
    if not path.exists():
        pytest.skip(f"shared test data not found at {path.parent} (clone the project with ../shared beside it)")
    return path
