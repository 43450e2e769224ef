"""Turn payload values written in config.yml into the bytes an actuator sends.

One encoding per actuator: ``bytes`` (an int 0..255 or a list of them), ``hex`` (a string such
as ``"01 ff"``), ``utf-8`` (a string) or ``struct`` (numbers packed with a ``struct`` format).
Values are encoded once, when the configuration is loaded, so a payload that does not encode
is a configuration error, never a failure in the middle of a session.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

Encoding = Literal["bytes", "hex", "utf-8", "struct"]


class PayloadError(ValueError):
    """A payload value that cannot be encoded with the configured encoding."""


def encode_payload(value: Any, encoding: Encoding, struct_format: str | None = None) -> bytes:
    """Encode one payload value; raises PayloadError naming the value and the encoding."""
    if encoding == "hex":
        if not isinstance(value, str):
            raise PayloadError(f"cannot encode {value!r} as hex: expected a string such as '01 ff'")
        text = value.replace(":", " ").replace("0x", " ")
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise PayloadError(f"cannot encode {value!r} as hex: {exc}") from None
    if encoding == "utf-8":
        if not isinstance(value, str):
            raise PayloadError(f"cannot encode {value!r} as utf-8: expected a string")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PayloadError(f"cannot encode {value!r} as utf-8: {exc.reason}") from None
    if encoding == "bytes":
        items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in items
        ):
            raise PayloadError(f"cannot encode {value!r} as bytes: expected an integer 0..255 or a list of them")
        return bytes(items)
    if encoding == "struct":
        if not struct_format:
            raise PayloadError("encoding 'struct' needs struct_format (for example '<BH')")
        args = value if isinstance(value, list) else [value]
        try:
            return struct.pack(struct_format, *args)
        except struct.error as exc:
            raise PayloadError(f"cannot encode {value!r} with struct format {struct_format!r}: {exc}") from None
    raise PayloadError(f"unknown payload encoding {encoding!r}; use bytes, hex, utf-8 or struct")
