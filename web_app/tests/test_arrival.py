"""Arrival records (arrival.py): each connection's shed frames stay its own."""

from __future__ import annotations

import threading

import gevent

from spml_web.arrival import current


def _shed_then_take(frame: int, other_runs: object) -> int | None:
    """Shed one frame, let another connection run (as a handler yields while shedding), take the record."""
    current().shed.add(f'42["keypoints",{{"frame":{frame},"t_ms":{frame}.0,"landmarks":""}}]', 300.0)
    other_runs()  # type: ignore[operator]
    shed = current().take_shed()
    return None if shed is None else (shed.count, shed.first_frame)  # type: ignore[return-value]


def test_each_greenlet_keeps_its_own_shed_frames() -> None:
    # gevent mode: every connection's handler is a greenlet on the hub's one thread.
    jobs = [gevent.spawn(_shed_then_take, frame, lambda: gevent.sleep(0.01)) for frame in (7, 8)]
    gevent.joinall(jobs, raise_error=True)
    assert [j.value for j in jobs] == [(1, 7), (1, 8)]


def test_each_thread_keeps_its_own_shed_frames() -> None:
    # threading mode: one handler thread per connection.
    both = threading.Barrier(2)
    out: dict[int, object] = {}

    def run(frame: int) -> None:
        out[frame] = _shed_then_take(frame, both.wait)

    threads = [threading.Thread(target=run, args=(f,)) for f in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {3: (1, 3), 4: (1, 4)}
