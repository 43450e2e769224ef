"""Entry point ``spml:actuator_ble``: registers the ``ble`` actuator (imports stay lazy)."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_actuators() -> list[type]:
    """The Bluetooth LE actuator."""
    from spml_actuator_ble.actuator import BleActuator

    return [BleActuator]
