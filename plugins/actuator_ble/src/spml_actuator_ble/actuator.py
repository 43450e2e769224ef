"""The ``ble`` actuator: a server-side BLE central writing payloads to one characteristic.

The central runs on the actuator's own thread and asyncio loop. ``open`` connects (blocking
its caller, the runner thread, never the classification loop); a disconnect or a failed
connection starts a reconnect task with exponential backoff, and ``send`` fails fast with the
current status while disconnected. Status messages name the device, the UUIDs and the stack.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from spml_actuator_ble.uuids import (
    DEFAULT_CHARACTERISTIC,
    DEFAULT_SERVICE,
    normalize_uuid,
)
from spml_core.components import Actuator, ActuatorStatus, Options
from spml_core.payloads import Encoding, encode_payload

VIRTUAL = "virtual"


class BleOptions(Options):
    """Options of the ``ble`` actuator."""

    device_name: str | None = Field(None, description="Advertised local name of the peripheral (e.g. HMSoft)")
    device_address: str | None = Field(None, description="Bluetooth address (or macOS UUID); wins over the name")
    service_uuid: str = Field(DEFAULT_SERVICE, description="GATT service UUID (4 hex digits or full form)")
    characteristic_uuid: str = Field(DEFAULT_CHARACTERISTIC, description="Writable characteristic UUID")
    with_response: bool = Field(False, description="Write with response (acknowledged) or without (faster)")
    encoding: Encoding = Field("hex", description="How payloads in decisions are written: bytes, hex, utf-8 or struct")
    struct_format: str | None = Field(None, description="struct format for encoding 'struct', e.g. '<BH'")
    transport: Literal["bleak", "bumble"] = Field(
        "bleak", description="bleak: the OS Bluetooth stack; bumble: spml's own host over an HCI transport"
    )
    hci_transport: str = Field(
        "usb:0",
        description="bumble HCI transport spec (usb:0, serial:/dev/ttyACM0,1000000, tcp-client:host:port), "
        "or 'virtual' for an in-process virtual peripheral (demo only)",
    )
    scan_timeout_s: float = Field(5.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    write_timeout_s: float = Field(2.0, gt=0, description="A write not acknowledged in this time fails")
    backoff_initial_s: float = Field(0.5, gt=0, description="First reconnect delay; doubles after each failure")
    backoff_max_s: float = Field(10.0, gt=0)

    @field_validator("service_uuid", "characteristic_uuid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return normalize_uuid(value)

    @model_validator(mode="after")
    def _check(self) -> BleOptions:
        if not self.device_name and not self.device_address and not (
            self.transport == "bumble" and self.hci_transport == VIRTUAL
        ):
            raise ValueError("set device_name or device_address to choose the peripheral")
        if self.encoding == "struct" and not self.struct_format:
            raise ValueError("encoding 'struct' needs struct_format (for example '<BH')")
        return self


class BleActuator(Actuator):
    """Bluetooth LE central: find the device, connect, write each action's payload."""

    name = "ble"
    description = "Bluetooth LE peripheral (bleak or bumble): writes payloads to a GATT characteristic"
    Options = BleOptions
    options: BleOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._state = ActuatorStatus("idle", "not started")
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._central: Any = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closing = False
        self.virtual: Any = None  # the in-process peripheral when hci_transport is 'virtual'

    # -- Actuator API -----------------------------------------------------------------------
    def encode(self, value: Any, label: str) -> bytes:
        """Encode a payload with this actuator's ``encoding``."""
        return encode_payload(value, self.options.encoding, self.options.struct_format)

    def status(self) -> ActuatorStatus:
        """connecting / connected / disconnected / error, with a message."""
        with self._lock:
            return self._state

    def open(self) -> None:
        """Start the BLE thread and connect once (errors go to status; reconnects continue)."""
        if self._thread is None:
            self._start_loop()
        self._set("connecting", f"looking for {self._central.wanted}")
        fut = asyncio.run_coroutine_threadsafe(self._connect_once(), self._loop)  # type: ignore[arg-type]
        o = self.options
        fut.result(o.scan_timeout_s + 3 * o.connect_timeout_s + 2 * o.write_timeout_s + 5)

    def send(self, payload: bytes, decision: Any) -> None:
        """Write one payload; raises with the status message when not connected or on failure."""
        from spml_actuator_ble.centrals import BleError

        if self._thread is None:
            self.open()
        central = self._central
        if not central.connected:
            raise BleError(self.status().message or "not connected")
        fut = asyncio.run_coroutine_threadsafe(central.write(payload, self.options.with_response), self._loop)  # type: ignore[arg-type]
        try:
            fut.result(self.options.write_timeout_s + 1.0)
        except BleError as exc:
            if not exc.retry:
                self._set("error", str(exc))
            raise

    def close(self) -> None:
        """Disconnect, stop reconnecting, stop the BLE thread."""
        self._closing = True
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10.0)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(5.0)
        if self.virtual is not None:
            self.virtual.close()
            self.virtual = None
        self._set("idle", "closed")

    # -- internals ------------------------------------------------------------------------
    def _set(self, state: str, message: str) -> None:
        with self._lock:
            self._state = ActuatorStatus(state, message)

    def _start_loop(self) -> None:
        from spml_actuator_ble.centrals import BleakCentral, BumbleCentral

        o = self.options
        common: dict[str, Any] = dict(
            device_name=o.device_name,
            device_address=o.device_address,
            service_uuid=o.service_uuid,
            characteristic_uuid=o.characteristic_uuid,
            scan_timeout_s=o.scan_timeout_s,
            connect_timeout_s=o.connect_timeout_s,
            write_timeout_s=o.write_timeout_s,
            on_disconnect=self._on_disconnect,
        )
        if o.transport == "bleak":
            self._central = BleakCentral(**common)
        else:
            spec = o.hci_transport
            if spec == VIRTUAL:
                from spml_actuator_ble.virtual import VirtualPeripheral

                self.virtual = VirtualPeripheral(
                    o.device_name or "SPML-Virtual", o.service_uuid, o.characteristic_uuid
                ).start()
                common["device_name"] = self.virtual.name
                spec = self.virtual.hci_transport
            self._central = BumbleCentral(spec, **common)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)  # type: ignore[union-attr]
            self._loop.run_forever()  # type: ignore[union-attr]
            self._loop.close()  # type: ignore[union-attr]

        self._thread = threading.Thread(target=run, name=f"spml-ble-{self._central.wanted}", daemon=True)
        self._thread.start()
        ready.wait(5.0)

    async def _connect_once(self) -> bool:
        from spml_actuator_ble.centrals import BleError

        try:
            desc = await self._central.connect()
        except BleError as exc:
            if exc.retry:
                self._set("error", str(exc))
                self._schedule_reconnect(self.options.backoff_initial_s)
            else:
                self._set("error", str(exc))
            return False
        except Exception as exc:
            self._set("error", f"{type(exc).__name__}: {exc}")
            self._schedule_reconnect(self.options.backoff_initial_s)
            return False
        self._set("connected", f"connected to {desc}")
        return True

    def _on_disconnect(self, reason: str) -> None:
        # Called on the BLE loop by the central when the link drops.
        if self._closing:
            return
        self._set("disconnected", f"{self._central.wanted} disconnected ({reason}); reconnecting")
        self._schedule_reconnect(self.options.backoff_initial_s)

    def _schedule_reconnect(self, delay: float) -> None:
        if self._closing or (self._reconnect is not None and not self._reconnect.done()):
            return
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop(delay))

    async def _reconnect_loop(self, delay: float) -> None:
        from spml_actuator_ble.centrals import BleError

        o = self.options
        while not self._closing:
            with self._lock:
                previous = self._state.message.split("; retrying in")[0]
            self._set(self.status().state, f"{previous}; retrying in {delay:.1f} s")
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                desc = await self._central.connect()
            except BleError as exc:
                self._set("error", str(exc))
                if not exc.retry:
                    return
            except Exception as exc:
                self._set("error", f"{type(exc).__name__}: {exc}")
            else:
                self._set("connected", f"connected to {desc} (reconnected)")
                return
            delay = min(delay * 2, o.backoff_max_s)

    async def _shutdown(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._central is not None:
            await self._central.close()
