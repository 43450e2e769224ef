"""Validation of Socket.IO payloads (see docs/protocol.md). Each error names the field at fault.

Parsing is vectorised: a keypoints payload becomes one numpy array in a single conversion,
and its type and finiteness are checked on the whole array, never value by value.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spml_core import N_LANDMARKS

MAX_FRAME_NUMBER = 2**53  # JavaScript's largest exact integer
MAX_DIMENSION = 16384
KEYPOINT_FIELDS = frozenset({"frame", "t_ms", "landmarks", "width", "height"})
FRAME_FIELDS = frozenset({"frame", "t_ms", "image"})
SELECT_FIELDS = frozenset({"name", "every"})
RECORD_FIELDS = frozenset({"on", "source", "pose_model", "pose_where"})


class ProtocolError(ValueError):
    """A payload the server refuses; ``code`` is a stable machine-readable reason."""

    def __init__(self, message: str, code: str = "bad_payload") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeypointsMsg:
    """One frame of landmarks from a client (x, y normalised 0..1; NaN rows when no person)."""

    frame: int
    t_ms: float
    xyzv: np.ndarray  # (33, 4) float32
    width: int | None
    height: int | None


@dataclass(frozen=True)
class FrameMsg:
    """One JPEG frame for server-side pose estimation."""

    frame: int
    t_ms: float
    image: bytes


def _require_dict(payload: Any, event: str, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ProtocolError(f"{event}: payload must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - fields)
    if unknown:
        raise ProtocolError(f"{event}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    return payload


def _frame_number(payload: dict[str, Any], event: str) -> int:
    frame = payload.get("frame")
    if isinstance(frame, float) and frame.is_integer():
        frame = int(frame)
    if not isinstance(frame, int) or isinstance(frame, bool) or not 0 <= frame < MAX_FRAME_NUMBER:
        raise ProtocolError(f"{event}.frame must be a non-negative integer, got {frame!r}")
    return frame


def _time_ms(payload: dict[str, Any], event: str) -> float:
    t = payload.get("t_ms")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ProtocolError(f"{event}.t_ms must be a finite non-negative number of milliseconds, got {t!r}")
    return float(t)


def _dimension(payload: dict[str, Any], key: str, event: str) -> int | None:
    v = payload.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= MAX_DIMENSION:
        raise ProtocolError(f"{event}.{key} must be an integer pixel count in 1..{MAX_DIMENSION}, got {v!r}")
    return v


def parse_keypoints(payload: Any) -> KeypointsMsg:
    """Validate a `keypoints` payload; `landmarks: null` means no person in this frame."""
    data = _require_dict(payload, "keypoints", KEYPOINT_FIELDS)
    frame = _frame_number(data, "keypoints")
    t_ms = _time_ms(data, "keypoints")
    width = _dimension(data, "width", "keypoints")
    height = _dimension(data, "height", "keypoints")
    if "landmarks" not in data:
        raise ProtocolError("keypoints.landmarks is missing (33 rows of [x, y, z, visibility], or null for no person)")
    raw = data["landmarks"]
    if raw is None:
        return KeypointsMsg(frame, t_ms, np.full((N_LANDMARKS, 4), np.nan, np.float32), width, height)
    if isinstance(raw, str):
        arr = _compact_landmarks(raw)
    elif not isinstance(raw, list):
        raise ProtocolError(f"keypoints.landmarks must be a list of {N_LANDMARKS} [x, y, z, visibility] rows "
                            "(or their compact form, a base64 string of little-endian float32)")
    else:
        arr = _nested_landmarks(raw)
    return KeypointsMsg(frame, t_ms, _checked(arr), width, height)


# The compact form: the 33 x 4 values as little-endian float32, base64-encoded (704 characters).
# One JSON string instead of 132 numbers: about 780 bytes instead of 1,200 per event, and decoded
# in ~45 us instead of ~180 us (docs/protocol.md).
COMPACT_BYTES = N_LANDMARKS * 4 * 4


def _compact_landmarks(raw: str) -> np.ndarray:
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("keypoints.landmarks as a string must be base64 (the compact form)") from None
    if len(data) != COMPACT_BYTES:
        raise ProtocolError(f"keypoints.landmarks (compact) must decode to {COMPACT_BYTES} bytes "
                            f"({N_LANDMARKS} x 4 float32), got {len(data)}")
    return np.frombuffer(data, dtype="<f4").reshape(N_LANDMARKS, 4)


def _nested_landmarks(raw: list[Any]) -> np.ndarray:
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError):
        raise ProtocolError(
            f"keypoints.landmarks must be {N_LANDMARKS} rows of 4 numbers; rows have different lengths"
        ) from None
    if arr.shape != (N_LANDMARKS, 4):
        raise ProtocolError(
            f"keypoints.landmarks must have shape ({N_LANDMARKS}, 4) [x, y, z, visibility], got {arr.shape}"
        )
    # Strings, booleans and nulls give non-numeric dtypes: refuse them rather than coerce.
    if arr.dtype.kind not in "iuf":
        raise ProtocolError("keypoints.landmarks must hold only numbers (no strings, booleans or nulls)")
    return arr


def _checked(arr: np.ndarray) -> np.ndarray:
    xyzv = arr.astype(np.float32)
    if not np.isfinite(xyzv).all():
        bad = np.argwhere(~np.isfinite(xyzv))[0]
        raise ProtocolError(
            f"keypoints.landmarks[{bad[0]}][{bad[1]}] is not finite (NaN or infinity); "
            "send landmarks: null for a frame without a person"
        )
    if np.abs(xyzv).max() > 1e4:
        raise ProtocolError("keypoints.landmarks values are out of range (|value| > 10000); send normalised x, y")
    return xyzv


def parse_frame(payload: Any, max_bytes: int) -> FrameMsg:
    """Validate a `frame` payload {frame, t_ms, image: JPEG bytes}."""
    data = _require_dict(payload, "frame", FRAME_FIELDS)
    frame = _frame_number(data, "frame")
    t_ms = _time_ms(data, "frame")
    image = data.get("image")
    if not isinstance(image, (bytes, bytearray)):
        raise ProtocolError(f"frame.image must be JPEG bytes (a binary attachment), got {type(image).__name__}")
    if len(image) > max_bytes:
        raise ProtocolError(f"frame.image is {len(image)} bytes; the limit is {max_bytes}", code="too_large")
    return FrameMsg(frame, t_ms, bytes(image))


def parse_select(payload: Any) -> tuple[str | None, int | None]:
    """Validate a `select_model` payload {name, every?}; name null (or "") means no model: stop classifying."""
    data = _require_dict(payload, "select_model", SELECT_FIELDS)
    if "name" not in data:
        raise ProtocolError("select_model.name is missing (a bundle name, or null for no model)")
    name = data["name"]
    if name == "":
        name = None
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise ProtocolError(f"select_model.name must be a bundle name string or null, got {name!r}")
    every = data.get("every")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or not 1 <= every <= 1000):
        raise ProtocolError(f"select_model.every must be an integer in 1..1000, got {every!r}")
    return name, every


@dataclass(frozen=True)
class RecordMsg:
    """Start or stop recording this session, with what the page knows of its source and pose."""

    on: bool
    source: str | None
    pose_model: str | None
    pose_where: str | None


def parse_record(payload: Any) -> RecordMsg:
    """Validate a `record` payload {on, source?, pose_model?, pose_where?}."""
    data = _require_dict(payload, "record", RECORD_FIELDS)
    on = data.get("on")
    if not isinstance(on, bool):
        raise ProtocolError(f"record.on must be true or false, got {on!r}")
    texts = []
    for key in ("source", "pose_model", "pose_where"):
        v = data.get(key)
        if v is not None and (not isinstance(v, str) or len(v) > 200):
            raise ProtocolError(f"record.{key} must be a string of at most 200 characters, got {v!r}")
        texts.append(v)
    if texts[2] not in (None, "browser", "server"):
        raise ProtocolError(f"record.pose_where must be 'browser' or 'server', got {texts[2]!r}")
    return RecordMsg(on, *texts)
