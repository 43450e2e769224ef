"""A virtual BLE peripheral for tests, the demo and the benchmark (bumble, no hardware).

The peripheral runs on its own thread and asyncio loop: a bumble ``Device`` advertising a
GATT service with one writable characteristic that records every value it receives with a
``time.perf_counter_ns()`` timestamp. Its controller shares a bumble ``LocalLink`` with a
second, host-facing virtual controller served over HCI on a TCP port of 127.0.0.1, so the
actuator connects to it exactly as it would to a USB dongle: ``transport: bumble`` with
``hci_transport:`` set to :attr:`VirtualPeripheral.hci_transport`.

Run one by hand (it prints what it receives)::

    python -m spml_actuator_ble.virtual --name SPML-Virtual
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from spml_actuator_ble.uuids import (
    DEFAULT_CHARACTERISTIC,
    DEFAULT_SERVICE,
    normalize_uuid,
)


@dataclass(frozen=True)
class Received:
    """One value written to the characteristic."""

    t_ns: int  # time.perf_counter_ns() when the peripheral's GATT server got it
    data: bytes


class VirtualPeripheral:
    """A bumble peripheral with a writable characteristic, reachable over a virtual HCI link."""

    def __init__(
        self,
        name: str = "SPML-Virtual",
        service_uuid: str = DEFAULT_SERVICE,
        characteristic_uuid: str = DEFAULT_CHARACTERISTIC,
        address: str = "F0:F0:F0:F0:F0:F0",
        response_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        on_receive: Any = None,
    ) -> None:
        self.name = name
        self.service_uuid = normalize_uuid(service_uuid)
        self.characteristic_uuid = normalize_uuid(characteristic_uuid)
        self.address = address
        self.response_delay_s = response_delay_s
        self.on_receive = on_receive
        self.received: list[Received] = []
        self._host, self._port = host, port
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._device: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def hci_transport(self) -> str:
        """The bumble transport spec a central uses to reach this peripheral's link."""
        return f"tcp-client:{self._host}:{self.port}"

    def start(self, timeout: float = 10.0) -> VirtualPeripheral:
        """Start the peripheral thread; returns once it advertises."""
        self._thread = threading.Thread(target=self._thread_main, name=f"spml-virtual-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("virtual BLE peripheral did not start in time")
        if self._error is not None:
            raise RuntimeError(f"virtual BLE peripheral failed to start: {self._error}") from self._error
        return self

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from bumble import gatt
        from bumble.controller import Controller
        from bumble.core import AdvertisingData
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host
        from bumble.link import LocalLink
        from bumble.transport.common import AsyncPipeSink
        from bumble.transport.tcp_server import open_tcp_server_transport

        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        link = LocalLink()
        controller = Controller("peripheral", link=link, public_address=self.address)
        device = Device(name=self.name, address=Address(self.address), host=Host(controller, AsyncPipeSink(controller)))

        async def on_write(connection: Any, value: bytes) -> None:
            t = time.perf_counter_ns()
            item = Received(t, bytes(value))
            with self._cond:
                self.received.append(item)
                self._cond.notify_all()
            if self.on_receive is not None:
                self.on_receive(item)
            if self.response_delay_s:
                await asyncio.sleep(self.response_delay_s)

        props = gatt.Characteristic.Properties
        characteristic = gatt.Characteristic(
            self.characteristic_uuid,
            props.WRITE | props.WRITE_WITHOUT_RESPONSE | props.READ,
            gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(read=lambda connection: self._last_value(), write=on_write),
        )
        device.add_service(gatt.Service(self.service_uuid, [characteristic]))
        device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode("utf-8")),
                ]
            )
        )
        await device.power_on()
        await device.start_advertising(auto_restart=True, advertising_interval_min=20)
        self._device = device
        # The host-facing controller: a central reaches the link over HCI on this TCP port.
        transport = await open_tcp_server_transport(f"{self._host}:{self._port}")
        self.port = transport.server.sockets[0].getsockname()[1]
        Controller("hci", host_source=transport.source, host_sink=transport.sink, link=link)
        self._ready.set()
        try:
            await self._stop
        finally:
            await transport.close()

    def _last_value(self) -> bytes:
        with self._cond:
            return self.received[-1].data if self.received else b""

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``count`` values have arrived in total; returns them all (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"virtual peripheral got {len(self.received)} of {count} writes in {timeout} s")
                self._cond.wait(left)
            return list(self.received)

    def connection_count(self) -> int:
        """Number of centrals connected now."""
        return len(self._device.connections) if self._device is not None else 0

    def disconnect(self, timeout: float = 5.0) -> int:
        """Drop every connection from the peripheral side (a device going out of range); returns how many."""

        async def _disconnect() -> int:
            conns = list(self._device.connections.values())
            for c in conns:
                await c.disconnect()
            return len(conns)

        return self._call(_disconnect(), timeout)

    def _call(self, coro: Any, timeout: float) -> Any:
        if self._loop is None:
            raise RuntimeError("virtual peripheral is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        """Stop the peripheral and its link."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> VirtualPeripheral:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """Run a virtual peripheral until Ctrl-C, printing each value it receives."""
    parser = argparse.ArgumentParser(prog="python -m spml_actuator_ble.virtual", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="SPML-Virtual")
    parser.add_argument("--service-uuid", default=DEFAULT_SERVICE)
    parser.add_argument("--characteristic-uuid", default=DEFAULT_CHARACTERISTIC)
    parser.add_argument("--port", type=int, default=0, help="TCP port for the HCI link (default: any free port)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter_ns()
    peripheral = VirtualPeripheral(
        args.name,
        args.service_uuid,
        args.characteristic_uuid,
        port=args.port,
        on_receive=lambda r: print(f"{(r.t_ns - t0) / 1e6:10.1f} ms  received {r.data.hex(' ') or '(empty)'}", flush=True),
    ).start()
    print(
        f"virtual peripheral {args.name!r} advertising; in config.yml use\n"
        f"  transport: bumble\n  hci_transport: {peripheral.hci_transport}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        peripheral.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
