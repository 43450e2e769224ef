"""Bluetooth UUID spelling: 16-bit short forms expand onto the Bluetooth base UUID."""

from __future__ import annotations

import re
import uuid

BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
# HM-10 BLE-UART defaults, the ones StreamPoseML's page used.
DEFAULT_SERVICE = "0000ffe0" + BASE_SUFFIX
DEFAULT_CHARACTERISTIC = "0000ffe1" + BASE_SUFFIX


def normalize_uuid(value: str) -> str:
    """Lower-case 128-bit form of a UUID given as 4 or 8 hex digits or a full UUID; ValueError otherwise."""
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if re.fullmatch(r"[0-9a-f]{4}", text):
        return f"0000{text}{BASE_SUFFIX}"
    if re.fullmatch(r"[0-9a-f]{8}", text):
        return f"{text}{BASE_SUFFIX}"
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"{value!r} is not a Bluetooth UUID (use 4 hex digits such as 'ffe1' or a full UUID)") from None
