"""The ``osc`` actuator: each action becomes one OSC message sent by UDP.

A payload value from config.yml is the message's arguments: a number, a string, a boolean,
or a list of them (``[1, "step", 0.5]``); ``null`` sends a message without arguments. The
address may contain ``{label}`` (the class, or ``off`` for the off action). Messages are
built once when the configuration loads, so the payload bytes in the action log are the
exact datagram sent.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from pydantic import Field, field_validator

from spml_core.components import Actuator, ActuatorStatus, Options
from spml_core.payloads import PayloadError


class OscOptions(Options):
    """Options of the ``osc`` actuator."""

    host: str = Field("127.0.0.1", description="Host of the OSC receiver (TouchDesigner, Max/MSP, ...)")
    port: int = Field(9000, ge=1, le=65535, description="UDP port of the OSC receiver")
    address: str = Field("/spml/{label}", description="OSC address pattern; {label} is the class (or 'off')")

    @field_validator("address")
    @classmethod
    def _osc_address(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError(f"{value!r} is not an OSC address: it starts with '/' and has no spaces")
        return value


class OscActuator(Actuator):
    """Sends one OSC message per action to host:port over UDP (no acknowledgement)."""

    name = "osc"
    description = "Open Sound Control messages over UDP (TouchDesigner, Max/MSP, SuperCollider)"
    Options = OscOptions
    options: OscOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._sock: socket.socket | None = None
        self._target: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._state = ActuatorStatus("idle", "not started")

    def encode(self, value: Any, label: str) -> bytes:
        """Build the OSC datagram for this value (its arguments) and label (in the address)."""
        from pythonosc.osc_message_builder import OscMessageBuilder

        args = [] if value is None else value if isinstance(value, list) else [value]
        for arg in args:
            if not isinstance(arg, (int, float, str, bool)):
                raise PayloadError(f"cannot encode {value!r} as OSC arguments: use numbers, strings or booleans")
        builder = OscMessageBuilder(address=self.options.address.replace("{label}", label.replace(" ", "_")))
        for arg in args:
            builder.add_arg(arg)
        try:
            return builder.build().dgram
        except Exception as exc:
            raise PayloadError(f"cannot encode {value!r} as OSC arguments: {exc}") from None

    def open(self) -> None:
        """Resolve the receiver's address and open the UDP socket."""
        o = self.options
        try:
            family, _, _, _, addr = socket.getaddrinfo(o.host, o.port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            self._set("error", f"cannot resolve OSC host {o.host!r}: {exc}")
            raise
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._target = addr[:2]
        self._set("connected", f"sending OSC to {o.host}:{o.port} (UDP: delivery is not acknowledged)")

    def send(self, payload: bytes, decision: Any) -> None:
        """Send the datagram; raises OSError with the host when the network refuses it."""
        if self._sock is None:
            self.open()
        assert self._sock is not None and self._target is not None
        try:
            self._sock.sendto(payload, self._target)
        except OSError as exc:
            self._set("error", f"OSC send to {self.options.host}:{self.options.port} failed: {exc}")
            raise

    def status(self) -> ActuatorStatus:
        """connected (socket open) or error with the reason."""
        with self._lock:
            return self._state

    def _set(self, state: str, message: str) -> None:
        with self._lock:
            self._state = ActuatorStatus(state, message)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._set("idle", "closed")
