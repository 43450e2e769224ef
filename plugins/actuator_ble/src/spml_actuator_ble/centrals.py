"""BLE centrals behind one small async interface: bleak (the OS stack) or bumble (an HCI transport).

Each runs on the actuator's own asyncio loop. ``connect`` finds the device, connects and
resolves the characteristic; ``write`` sends one value and fails fast, with a clear message,
when the device disconnects mid-write. Errors are :class:`BleError`; ``retry`` says whether
trying again later can help (an absent device can come back; a missing Bluetooth stack cannot).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

NO_BLUEZ = (
    "no BlueZ/D-Bus system bus: bleak needs BlueZ on Linux (or macOS/Windows). Use transport 'bumble' "
    "with a USB Bluetooth dongle (hci_transport 'usb:0'), or run the BLE actuator in the page "
    "(run_in: browser, Web Bluetooth in Chrome/Edge)"
)


class BleError(Exception):
    """A BLE failure with a message for the user; ``retry`` is False when waiting cannot fix it."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Central(ABC):
    """One connection to one peripheral's writable characteristic."""

    def __init__(
        self,
        *,
        device_name: str | None,
        device_address: str | None,
        service_uuid: str,
        characteristic_uuid: str,
        scan_timeout_s: float,
        connect_timeout_s: float,
        write_timeout_s: float,
        on_disconnect: Callable[[str], None],
    ) -> None:
        self.device_name = device_name
        self.device_address = device_address
        self.service_uuid = service_uuid
        self.characteristic_uuid = characteristic_uuid
        self.scan_timeout_s = scan_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.on_disconnect = on_disconnect
        self.connected = False
        self._lost: asyncio.Future[str] | None = None

    @property
    def wanted(self) -> str:
        """How the device is named in messages."""
        if self.device_address and self.device_name:
            return f"{self.device_name!r} ({self.device_address})"
        return repr(self.device_name) if self.device_name else self.device_address or "?"

    def _connection_lost(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        if was:
            self.on_disconnect(reason)

    async def _race_disconnect(self, op: Any, what: str) -> Any:
        """Await ``op`` unless the link drops or it times out first."""
        assert self._lost is not None
        task = asyncio.ensure_future(op)
        done, _ = await asyncio.wait({task, self._lost}, timeout=self.write_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            # bumble cancels pending GATT requests when the link drops.
            if task.cancelled() or isinstance(task.exception(), asyncio.CancelledError):
                reason = self._lost.result() if self._lost.done() else "link lost"
                raise BleError(f"{self.wanted} disconnected during {what} ({reason})")
            return task.result()
        task.cancel()
        if self._lost in done:
            raise BleError(f"{self.wanted} disconnected during {what} ({self._lost.result()})")
        raise BleError(f"{what} to {self.wanted} timed out after {self.write_timeout_s:g} s")

    @abstractmethod
    async def connect(self) -> str:
        """Find, connect, resolve the characteristic; returns a description of the device."""

    @abstractmethod
    async def write(self, data: bytes, with_response: bool) -> None:
        """Write one value to the characteristic."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect and release the stack."""


def _uuid_text(u: Any) -> str:
    """A bumble UUID in the same spelling as the options (lower-case 128-bit)."""
    import uuid as _uuid

    return str(_uuid.UUID(bytes=u.to_bytes(force_128=True)[::-1]))


def _missing_service(service: str, offered: list[str], device: str) -> BleError:
    listing = ", ".join(offered) or "none"
    return BleError(f"service {service} not found on {device}; it offers: {listing}", retry=False)


def _missing_characteristic(char: str, service: str, offered: list[str], device: str) -> BleError:
    listing = ", ".join(offered) or "none"
    return BleError(
        f"characteristic {char} not found in service {service} on {device}; it has: {listing}", retry=False
    )


class BumbleCentral(Central):
    """bumble's pure-Python host over an HCI transport (USB dongle, serial, TCP virtual link)."""

    OWN_ADDRESS = "C0:53:50:4D:4C:01"  # a random static address (two top bits set)

    def __init__(self, hci_transport: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hci_transport = hci_transport
        self._transport: Any = None
        self._device: Any = None
        self._connection: Any = None
        self._peer: Any = None
        self._characteristic: Any = None

    async def _open_stack(self) -> None:
        if self._device is not None:
            return
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.transport import open_transport

        try:
            self._transport = await asyncio.wait_for(open_transport(self.hci_transport), self.connect_timeout_s)
        except Exception as exc:
            raise BleError(
                f"cannot open bumble HCI transport {self.hci_transport!r}: {type(exc).__name__}: {exc} "
                "(for a USB dongle use 'usb:0' and check that the dongle is plugged in and readable by this user)"
            ) from exc
        device = Device.with_hci("spml", Address(self.OWN_ADDRESS), self._transport.source, self._transport.sink)
        try:
            await asyncio.wait_for(device.power_on(), self.connect_timeout_s)
        except Exception as exc:
            await self._close_stack()
            raise BleError(f"Bluetooth controller on {self.hci_transport!r} did not start: {exc}") from exc
        self._device = device

    async def _close_stack(self) -> None:
        if self._transport is not None:
            try:
                await self._transport.close()
            except Exception:
                pass
        self._transport = self._device = None

    async def _scan(self) -> Any:
        from bumble.core import AdvertisingData

        device = self._device
        loop = asyncio.get_running_loop()
        found: asyncio.Future[Any] = loop.create_future()
        seen: dict[str, str] = {}
        want_addr = (self.device_address or "").upper()

        def on_advertisement(adv: Any) -> None:
            name = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or adv.data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            addr = str(adv.address).split("/")[0].upper()
            seen[addr] = name or ""
            if found.done() or not adv.is_connectable:
                return
            if (want_addr and addr == want_addr) or (not want_addr and self.device_name and name == self.device_name):
                found.set_result(adv.address)

        device.on("advertisement", on_advertisement)
        try:
            await device.start_scanning(filter_duplicates=True)
            try:
                return await asyncio.wait_for(found, self.scan_timeout_s)
            except asyncio.TimeoutError:
                saw = ", ".join(f"{n or '(no name)'} [{a}]" for a, n in sorted(seen.items())) or "no devices"
                raise BleError(
                    f"no BLE device {self.wanted} found in a {self.scan_timeout_s:g} s scan on "
                    f"{self.hci_transport!r}; saw: {saw}"
                ) from None
        finally:
            device.remove_listener("advertisement", on_advertisement)
            try:
                await device.stop_scanning()
            except Exception:
                pass

    async def connect(self) -> str:
        """Scan for the device, connect, discover the service and characteristic."""
        from bumble.core import UUID
        from bumble.device import Peer

        await self._open_stack()
        address = await self._scan()
        try:
            connection = await self._device.connect(address, timeout=self.connect_timeout_s)
        except Exception as exc:
            raise BleError(f"cannot connect to {self.wanted} [{address}]: {type(exc).__name__}: {exc}") from exc
        self._lost = asyncio.get_running_loop().create_future()
        self._connection = connection
        connection.on("disconnection", lambda reason: self._connection_lost(f"HCI reason {reason}"))
        self.connected = True
        desc = f"{self.wanted} [{str(address).split('/')[0]}] via bumble {self.hci_transport}"
        try:
            peer = Peer(connection)
            services = await self._race_disconnect(peer.discover_services([UUID(self.service_uuid)]), "service discovery")
            if not services:
                everything = await self._race_disconnect(peer.discover_services(), "service discovery")
                raise _missing_service(self.service_uuid, [_uuid_text(s.uuid) for s in everything], desc)
            chars = await self._race_disconnect(
                peer.discover_characteristics(service=services[0]), "characteristic discovery"
            )
            match = [c for c in chars if _uuid_text(c.uuid) == self.characteristic_uuid]
            if not match:
                offered = [_uuid_text(c.uuid) for c in chars]
                raise _missing_characteristic(self.characteristic_uuid, self.service_uuid, offered, desc)
        except BaseException:
            await self._disconnect()
            raise
        self._peer, self._characteristic = peer, match[0]
        return desc

    def _check_props(self, with_response: bool) -> None:
        from bumble.gatt import Characteristic

        props = self._characteristic.properties
        need = Characteristic.Properties.WRITE if with_response else Characteristic.Properties.WRITE_WITHOUT_RESPONSE
        if not props & need:
            mode = "with response" if with_response else "without response"
            raise BleError(
                f"characteristic {self.characteristic_uuid} on {self.wanted} does not allow writes {mode} "
                f"(properties: {props!s}); set with_response: {str(not with_response).lower()}",
                retry=False,
            )

    async def write(self, data: bytes, with_response: bool) -> None:
        """Write with or without response; raises BleError on disconnect, timeout or ATT error."""
        if not self.connected or self._peer is None:
            raise BleError(f"not connected to {self.wanted}")
        self._check_props(with_response)
        try:
            await self._race_disconnect(self._peer.write_value(self._characteristic, data, with_response), "write")
        except BleError:
            raise
        except Exception as exc:
            raise BleError(f"write to {self.wanted} failed: {type(exc).__name__}: {exc}") from exc

    async def _disconnect(self) -> None:
        conn, self._connection = self._connection, None
        self._peer = self._characteristic = None
        was = self.connected
        self.connected = False
        if conn is not None and was:
            try:
                await asyncio.wait_for(conn.disconnect(), 2.0)
            except Exception:
                pass

    async def close(self) -> None:
        """Disconnect, then close the HCI transport."""
        await self._disconnect()
        await self._close_stack()


class BleakCentral(Central):
    """The operating system's Bluetooth stack through bleak (BlueZ over D-Bus, CoreBluetooth, WinRT)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: Any = None
        self._characteristic: Any = None

    async def connect(self) -> str:
        """Find the device with BleakScanner, connect with BleakClient, resolve the characteristic."""
        from bleak import BleakClient, BleakScanner
        from bleak.exc import BleakError

        try:
            if self.device_address:
                device = await BleakScanner.find_device_by_address(self.device_address, timeout=self.scan_timeout_s)
            else:
                device = await BleakScanner.find_device_by_name(self.device_name or "", timeout=self.scan_timeout_s)
        except FileNotFoundError:
            raise BleError(NO_BLUEZ, retry=False) from None
        except BleakError as exc:
            text = str(exc)
            if "adapter" in text.lower() or "bluez" in text.lower():
                raise BleError(f"no Bluetooth adapter: {text}. {NO_BLUEZ}", retry=False) from exc
            raise BleError(f"scan for {self.wanted} failed: {text}") from exc
        if device is None:
            raise BleError(f"no BLE device {self.wanted} found in a {self.scan_timeout_s:g} s scan (bleak)")
        self._lost = asyncio.get_running_loop().create_future()
        client = BleakClient(
            device,
            disconnected_callback=lambda _c: self._connection_lost("peer disconnected"),
            timeout=self.connect_timeout_s,
        )
        try:
            await client.connect()
        except Exception as exc:
            raise BleError(f"cannot connect to {self.wanted} [{device.address}]: {type(exc).__name__}: {exc}") from exc
        self._client = client
        self.connected = True
        desc = f"{self.wanted} [{device.address}] via bleak"
        try:
            service = client.services.get_service(self.service_uuid)
            if service is None:
                raise _missing_service(self.service_uuid, [s.uuid for s in client.services], desc)
            char = service.get_characteristic(self.characteristic_uuid)
            if char is None:
                raise _missing_characteristic(
                    self.characteristic_uuid, self.service_uuid, [c.uuid for c in service.characteristics], desc
                )
        except BaseException:
            await self.close()
            raise
        self._characteristic = char
        return desc

    async def write(self, data: bytes, with_response: bool) -> None:
        """write_gatt_char with an explicit response mode."""
        if not self.connected or self._client is None:
            raise BleError(f"not connected to {self.wanted}")
        props = set(self._characteristic.properties)
        need = "write" if with_response else "write-without-response"
        if need not in props:
            raise BleError(
                f"characteristic {self.characteristic_uuid} does not allow {need} (properties: {sorted(props)}); "
                f"set with_response: {str(not with_response).lower()}",
                retry=False,
            )
        try:
            await self._race_disconnect(
                self._client.write_gatt_char(self._characteristic, data, response=with_response), "write"
            )
        except BleError:
            raise
        except Exception as exc:
            raise BleError(f"write to {self.wanted} failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Disconnect the client."""
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 5.0)
            except Exception:
                pass
