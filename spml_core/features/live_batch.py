"""Live features of many streams at once (the live server's batches, docs/web_app.md "Capacity").

Each stream keeps its own LiveFeatureBuffer; what is shared is the arithmetic. The new frames of every
stream that uses the same feature spec and frame size go through each per-frame extractor in one numpy
call, and their windows become rows in one call, instead of dozens of small calls per stream: a frame
costs a fraction of what it costs alone once a few streams are ready together. Results equal
``LiveFeatureBuffer.push`` frame by frame, since a per-frame extractor's output for a frame depends on
that frame alone; extractors with history (velocities) are computed per frame, exactly as in push.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spml_core.features.compute import _finish, build_rows_fixed
from spml_core.features.geometry import pixel_points
from spml_core.features.live import LiveFeatureBuffer


def push_frames(frames: Sequence[tuple[LiveFeatureBuffer, np.ndarray | None]]) -> None:
    """``buffer.push(frame, row=False)`` for each pair in order, with per-frame features computed together."""
    # (spec, width, height, extractor) -> [(buffer, slot, points, raw)]
    batched: dict[tuple[int, float, float, int], list[tuple[LiveFeatureBuffer, int, np.ndarray, np.ndarray]]] = {}
    for buf, seen, points in _with_points([(buf, buf.masked(frame)) for buf, frame in frames]):
        buf.store(seen, points)
        slot_row = buf._ring[buf._pos]
        for j, (ext, sl, hist, fast, view) in enumerate(buf._plan):
            _, raw, pts = buf._views[view]
            if fast and hist == 0:
                batched.setdefault((id(buf.spec), buf.width, buf.height, j), []).append(
                    (buf, buf._pos, pts[-1].copy(), raw[-1].copy()))
                continue
            slot_row[sl] = buf.newest(ext, hist, fast, view)
        buf.advance()
    for (_, width, height, j), jobs in batched.items():
        ext, sl = jobs[0][0]._plan[j][0], jobs[0][0]._plan[j][1]
        out = ext.transform_points(np.array([p for _, _, p, _ in jobs]), np.array([r for _, _, _, r in jobs]),
                                   width, height)
        for k, (buf, slot, _, _) in enumerate(jobs):
            buf._ring[slot, sl] = out[k]


def _with_points(staged: list[tuple[LiveFeatureBuffer, list[np.ndarray]]]
                 ) -> list[tuple[LiveFeatureBuffer, list[np.ndarray], list[np.ndarray]]]:
    """Each staged frame with its pixel points per view, computed in one call per frame size."""
    sizes: dict[tuple[float, float], list[tuple[int, int]]] = {}
    for i, (buf, seen) in enumerate(staged):
        for v in range(len(seen)):
            sizes.setdefault((buf.width, buf.height), []).append((i, v))
    points: list[list[Any]] = [[None] * len(seen) for _, seen in staged]
    for (width, height), members in sizes.items():
        pts = pixel_points(np.concatenate([staged[i][1][v] for i, v in members]), width, height)
        for k, (i, v) in enumerate(members):
            points[i][v] = pts[k]
    return [(buf, seen, p) for (buf, seen), p in zip(staged, points)]


def current_rows(buffers: Sequence[LiveFeatureBuffer]) -> list[np.ndarray]:
    """``buffer.current_row()`` of each buffer, built together for the buffers that share a feature spec."""
    groups: dict[int, list[int]] = {}
    for i, buf in enumerate(buffers):
        groups.setdefault(id(buf.spec), []).append(i)
    rows: list[Any] = [None] * len(buffers)
    for members in groups.values():
        first = buffers[members[0]]
        windows = np.array([_ordered(buffers[i]) for i in members])
        built = _finish(build_rows_fixed(windows, first.layout), first._decimals)
        for k, i in enumerate(members):
            rows[i] = built[k]
    return rows


def _ordered(buf: LiveFeatureBuffer) -> np.ndarray:
    ring, pos = buf._ring, buf._pos
    return ring if pos == 0 else np.concatenate((ring[pos:], ring[:pos]))
