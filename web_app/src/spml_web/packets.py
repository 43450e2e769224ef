"""Socket.IO packets that survive malformed input.

python-socketio decodes each message before any handler runs; a message that is not valid
Socket.IO JSON (truncated, nested thousands deep, a bad attachment count) raises inside the
library, which only logs it, so the client would never learn why nothing happened. This packet
class turns such a message into a ``malformed_packet`` event, which the app answers with an
``error`` event like any other bad payload.
"""

from __future__ import annotations

from typing import Any

from socketio import packet

MALFORMED_EVENT = "malformed_packet"


class TolerantPacket(packet.Packet):
    """A Socket.IO packet whose decoding failures become a ``malformed_packet`` event."""

    def __init__(self, packet_type: int = packet.EVENT, data: Any = None, namespace: str | None = None,
                 id: int | None = None, binary: bool | None = None, encoded_packet: Any = None) -> None:
        self._json: str | None = None
        if binary is None and encoded_packet is None and isinstance(data, (list, dict)):
            # An outgoing packet (a prediction): one JSON encoding, in C, both tells that it holds no bytes and
            # is reused by encode(); python-socketio's own check walks every value in Python, which cost
            # more than the encoding.
            try:
                self._json = self.json.dumps(data, separators=(",", ":"))
                binary = False
            except (TypeError, ValueError):  # bytes to send as attachments: python-socketio's way
                self._json = None
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)
        # Engine.IO hands over JSON-looking messages already parsed; an empty one ({}, [], 0, "")
        # would skip decode() and reach the dispatcher as an event without data.
        if encoded_packet is not None and not encoded_packet:
            self.attachment_count = self._malformed("empty message")

    def encode(self) -> Any:
        """The packet as sent: python-socketio's format, with the JSON made in __init__ when there is one."""
        if self._json is None or self.packet_type not in (packet.EVENT, packet.ACK):
            return super().encode()
        out = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            out += self.namespace + ","
        if self.id is not None:
            out += str(self.id)
        return out + self._json

    def decode(self, encoded_packet: Any) -> int:
        """Decode normally; on failure become EVENT ``malformed_packet`` {message} on the main namespace."""
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, TypeError, RecursionError, IndexError, AttributeError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            return self._malformed(f"not valid Socket.IO JSON ({reason})")
        problem = self._shape_problem()
        return self._malformed(problem) if problem else attachments

    def _shape_problem(self) -> str | None:
        # What python-socketio would otherwise trip over after decoding (and only log).
        if self.packet_type in (packet.EVENT, packet.BINARY_EVENT):
            if not (isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
                return "an event must be a JSON array starting with the event name"
        elif self.packet_type in (packet.ACK, packet.BINARY_ACK):
            if not isinstance(self.data, list):
                return "an acknowledgement must be a JSON array"
        elif self.packet_type == packet.CONNECT:
            if self.data is not None and not isinstance(self.data, dict):
                return "connect data must be a JSON object"
        elif self.packet_type != packet.DISCONNECT:
            return f"packet type {self.packet_type!r} is not one a client sends"
        return None

    def _malformed(self, reason: str) -> int:
        self.packet_type = packet.EVENT
        self.namespace = "/"
        self.id = None
        self.data = [MALFORMED_EVENT, {"message": f"malformed Socket.IO message: {reason}"}]
        return 0
