"""A Bluetooth LE peripheral emulated by headless Chromium (DevTools BluetoothEmulation), for driving the
page's Web Bluetooth panel in the browser tests and benchmarks/e2e.py without a radio.

It uses only the Playwright objects it is given (no import of Playwright here).
"""

from __future__ import annotations

import base64
from typing import Any


class EmulatedBleDevice:
    """A BLE peripheral emulated by Chromium (DevTools BluetoothEmulation) that records the bytes written to it."""

    ADDRESS = "09:09:09:09:09:09"

    def __init__(self, browser: Any, page: Any, name: str, service: str, characteristic: str) -> None:
        self.writes: list[str] = []
        self.cdp = browser.new_browser_cdp_session()
        self.cdp.send("BluetoothEmulation.enable", {"state": "powered-on", "leSupported": True})
        self.cdp.send("BluetoothEmulation.simulatePreconnectedPeripheral", {
            "address": self.ADDRESS, "name": name, "manufacturerData": [], "knownServiceUuids": [service]})
        svc = self.cdp.send("BluetoothEmulation.addService", {"address": self.ADDRESS, "serviceUuid": service})
        self.cdp.send("BluetoothEmulation.addCharacteristic", {
            "serviceId": svc["serviceId"], "characteristicUuid": characteristic,
            "properties": {"write": True, "writeWithoutResponse": True}})
        self.cdp.on("BluetoothEmulation.gattOperationReceived", self._gatt)
        self.cdp.on("BluetoothEmulation.characteristicOperationReceived", self._characteristic)
        # The device chooser requestDevice() opens: pick the emulated device (once per prompt).
        self.page_cdp = page.context.new_cdp_session(page)
        self.page_cdp.send("DeviceAccess.enable")
        self.page_cdp.on("DeviceAccess.deviceRequestPrompted", self._prompt)
        self._prompts: set[str] = set()

    def _prompt(self, event: dict[str, Any]) -> None:
        if event["devices"] and event["id"] not in self._prompts:
            self._prompts.add(event["id"])
            self.page_cdp.send("DeviceAccess.selectPrompt", {"id": event["id"], "deviceId": event["devices"][0]["id"]})

    def _gatt(self, event: dict[str, Any]) -> None:  # connection and service discovery succeed
        self.cdp.send("BluetoothEmulation.simulateGATTOperationResponse",
                      {"address": event["address"], "type": event["type"], "code": 0})

    def _characteristic(self, event: dict[str, Any]) -> None:
        if event["type"] != "write":
            return
        self.writes.append(base64.b64decode(event.get("data", "")).hex())
        if event.get("writeType") == "write-with-response":
            self.cdp.send("BluetoothEmulation.simulateCharacteristicOperationResponse",
                          {"characteristicId": event["characteristicId"], "type": "write", "code": 0})

    def close(self) -> None:
        self.cdp.send("BluetoothEmulation.disable")
        self.cdp.detach()
        self.page_cdp.detach()
