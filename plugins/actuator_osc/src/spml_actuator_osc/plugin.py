"""Entry point ``spml:actuator_osc``: registers the ``osc`` actuator (imports stay lazy)."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_actuators() -> list[type]:
    """The OSC-over-UDP actuator."""
    from spml_actuator_osc.actuator import OscActuator

    return [OscActuator]
