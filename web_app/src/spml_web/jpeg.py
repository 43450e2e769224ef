"""JPEG frames from clients: check the header's size before decoding, then decode to RGB."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from spml_web.protocol import ProtocolError

if TYPE_CHECKING:
    import numpy as np

# Start-of-frame markers carry the image size; all other segments are skipped by length.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment, without decoding the pixels."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ProtocolError("frame.image is not a JPEG (missing the FF D8 start marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ProtocolError(f"frame.image is a corrupt JPEG (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            break
        pos += 2 + length
    raise ProtocolError("frame.image is a truncated or corrupt JPEG (no start-of-frame segment)")


def decode_jpeg(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG to an RGB uint8 array, refusing images larger than max_pixels per side."""
    import cv2
    import numpy as np

    width, height = jpeg_size(data)
    if not (0 < width <= max_pixels and 0 < height <= max_pixels):
        raise ProtocolError(
            f"frame.image is {width}x{height}; the limit is {max_pixels} pixels per side", code="too_large"
        )
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ProtocolError("frame.image could not be decoded as a JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
