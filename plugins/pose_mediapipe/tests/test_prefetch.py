"""The background-thread prefetcher used to decode frames while the model runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from spml_pose_mediapipe.prefetch import prefetch


def test_order_and_completeness() -> None:
    assert list(prefetch(range(1000), depth=3)) == list(range(1000))


def test_producer_error_reaches_the_consumer_after_earlier_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("decoder broke at frame 3")

    got = []
    with pytest.raises(ValueError, match="frame 3"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_closing_early_stops_and_joins_the_thread() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    with contextlib.closing(prefetch(endless(), depth=2)) as items:
        assert next(items) == 0
    assert threading.active_count() == before
    assert len(produced) <= 5  # bounded read-ahead, not the whole (endless) input
