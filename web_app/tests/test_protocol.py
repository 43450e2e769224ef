"""Payload validation of the live protocol: every malformed payload is a ProtocolError naming the field."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spml_web.jpeg import decode_jpeg, jpeg_size
from spml_web.protocol import ProtocolError, parse_frame, parse_keypoints, parse_select


def landmarks(n: int = 33, c: int = 4, value: float = 0.5) -> list[list[float]]:
    return [[value] * c for _ in range(n)]


def good(**over: object) -> dict[str, object]:
    payload: dict[str, object] = {"frame": 3, "t_ms": 100.0, "landmarks": landmarks(), "width": 640, "height": 360}
    payload.update(over)
    return payload


def test_valid_keypoints_become_one_float32_array() -> None:
    rows = [[i / 33, 1 - i / 33, -0.1 * i, 0.9] for i in range(33)]
    msg = parse_keypoints(good(landmarks=rows))
    assert msg.frame == 3 and msg.t_ms == 100.0 and (msg.width, msg.height) == (640, 360)
    assert msg.xyzv.dtype == np.float32 and msg.xyzv.shape == (33, 4)
    np.testing.assert_allclose(msg.xyzv, np.asarray(rows, dtype=np.float32))


def test_null_landmarks_mean_no_person() -> None:
    msg = parse_keypoints(good(landmarks=None))
    assert np.isnan(msg.xyzv).all() and msg.xyzv.shape == (33, 4)


def test_integers_and_optional_size_are_accepted() -> None:
    msg = parse_keypoints({"frame": 0, "t_ms": 0, "landmarks": [[0, 1, 0, 1]] * 33})
    assert msg.width is None and msg.height is None and msg.xyzv[0, 1] == 1.0


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("not a dict", "payload must be a JSON object"),
        ([1, 2, 3], "payload must be a JSON object"),
        (good(extra=1), "unknown field(s) ['extra']"),
        ({"t_ms": 1.0, "landmarks": landmarks()}, "keypoints.frame must be a non-negative integer"),
        (good(frame=-1), "keypoints.frame"),
        (good(frame=True), "keypoints.frame"),
        (good(frame=1.5), "keypoints.frame"),
        (good(frame="7"), "keypoints.frame"),
        (good(t_ms=float("nan")), "keypoints.t_ms must be a finite"),
        (good(t_ms=float("inf")), "keypoints.t_ms"),
        (good(t_ms=-5), "keypoints.t_ms"),
        (good(t_ms="12"), "keypoints.t_ms"),
        (good(width=0), "keypoints.width"),
        (good(height=100_000), "keypoints.height"),
        ({"frame": 1, "t_ms": 1.0}, "keypoints.landmarks is missing"),
        (good(landmarks="33 points"), "keypoints.landmarks as a string must be base64 (the compact form)"),
        (good(landmarks=33), "keypoints.landmarks must be a list"),
        (good(landmarks=landmarks(32)), "got (32, 4)"),
        (good(landmarks=landmarks(34)), "got (34, 4)"),
        (good(landmarks=landmarks(33, 3)), "got (33, 3)"),
        (good(landmarks=landmarks(33, 5)), "got (33, 5)"),
        (good(landmarks=[[0.1, 0.2, 0.3, 0.4]] * 32 + [[0.1, 0.2]]), "rows have different lengths"),
        (good(landmarks=[["0.1", "0.2", "0.3", "0.4"]] * 33), "only numbers"),
        (good(landmarks=[[True, False, True, True]] * 33), "only numbers"),
        (good(landmarks=[[0.1, None, 0.3, 0.4]] * 33), "only numbers"),
        (good(landmarks=[[0.1, {"x": 1}, 0.3, 0.4]] * 33), "only numbers"),
        (good(landmarks=[[0.1, 0.2, 0.3, 0.4]] * 32 + [[0.1, math.nan, 0.3, 0.4]]), "landmarks[32][1] is not finite"),
        (good(landmarks=[[math.inf, 0.2, 0.3, 0.4]] + [[0.1, 0.2, 0.3, 0.4]] * 32), "landmarks[0][0] is not finite"),
        (good(landmarks=[[1e9, 0.2, 0.3, 0.4]] * 33), "out of range"),
        (good(landmarks=[]), "got (0,)"),
    ],
)
def test_bad_keypoints_are_refused_with_the_field_named(payload: object, fragment: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_keypoints(payload)
    assert fragment in str(err.value)
    assert err.value.code == "bad_payload"


# Arbitrary JSON-like values: parsing either succeeds or raises ProtocolError, nothing else.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=40) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=200,
)


@settings(max_examples=100, deadline=None)
@given(
    frame=json_values,
    t_ms=json_values,
    marks=json_values | st.lists(st.lists(st.floats() | st.integers(), min_size=4, max_size=4), min_size=33, max_size=33),
)
def test_any_payload_is_parsed_or_refused_cleanly(frame: object, t_ms: object, marks: object) -> None:
    try:
        msg = parse_keypoints({"frame": frame, "t_ms": t_ms, "landmarks": marks})
    except ProtocolError:
        return
    assert msg.xyzv.shape == (33, 4) and (np.isfinite(msg.xyzv).all() or np.isnan(msg.xyzv).all())


def test_frame_payload_needs_bytes_within_the_limit() -> None:
    msg = parse_frame({"frame": 1, "t_ms": 5.0, "image": b"\xff\xd8abc"}, max_bytes=100)
    assert msg.image == b"\xff\xd8abc"
    with pytest.raises(ProtocolError, match="frame.image must be JPEG bytes"):
        parse_frame({"frame": 1, "t_ms": 5.0, "image": "base64..."}, max_bytes=100)
    with pytest.raises(ProtocolError, match="the limit is 100") as err:
        parse_frame({"frame": 1, "t_ms": 5.0, "image": b"x" * 101}, max_bytes=100)
    assert err.value.code == "too_large"
    with pytest.raises(ProtocolError, match="unknown field"):
        parse_frame({"frame": 1, "t_ms": 5.0, "image": b"", "jpeg": b""}, max_bytes=100)


def test_select_model_payload() -> None:
    assert parse_select({"name": "steps"}) == ("steps", None)
    assert parse_select({"name": "steps", "every": 5}) == ("steps", 5)
    # "(none)" in the page: no model, classification stops.
    assert parse_select({"name": None}) == (None, None)
    assert parse_select({"name": ""}) == (None, None)
    for bad in ({"name": 3}, {}, "steps", {"name": "x", "every": 0}, {"name": "x", "every": True}):
        with pytest.raises(ProtocolError, match="select_model"):
            parse_select(bad)


def _jpeg(width: int, height: int) -> bytes:
    import cv2

    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, : width // 2] = (0, 0, 255)  # BGR red on the left half
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def test_jpeg_size_and_decode_to_rgb() -> None:
    data = _jpeg(64, 48)
    assert jpeg_size(data) == (64, 48)
    rgb = decode_jpeg(data, max_pixels=4096)
    assert rgb.shape == (48, 64, 3)
    assert rgb[24, 5, 0] > 200 and rgb[24, 5, 2] < 50  # red stays red: decoded as RGB


def test_jpeg_bombs_and_garbage_are_refused_before_decoding() -> None:
    data = bytearray(_jpeg(64, 48))
    # Rewrite the start-of-frame size to 20000x20000: refused from the header alone.
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    with pytest.raises(ProtocolError, match="20000x20000; the limit is 4096") as err:
        decode_jpeg(bytes(data), max_pixels=4096)
    assert err.value.code == "too_large"
    with pytest.raises(ProtocolError, match="not a JPEG"):
        decode_jpeg(b"GIF89a....", max_pixels=4096)
    with pytest.raises(ProtocolError, match="truncated or corrupt"):
        decode_jpeg(_jpeg(64, 48)[:20], max_pixels=4096)
    with pytest.raises(ProtocolError, match="could not be decoded"):
        good_header = _jpeg(64, 48)
        decode_jpeg(good_header[: len(good_header) // 3], max_pixels=4096)
