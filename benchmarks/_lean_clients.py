"""A lean load generator: many simulated cameras on one asyncio loop, speaking Socket.IO over raw WebSockets.

python-socketio's threaded client costs about 2.4 ms of CPU per frame sent and prediction received
on this 2-core machine (three threads per client, packet objects, JSON of every payload): 20 of
them at 30 Hz took more than one core away from the server under test. Browsers run on other
machines, so here the load generator is made as cheap as it can be: one event loop, payloads
encoded once as the text frames a browser sends (`42["keypoints",{...}]`, JSON.stringify's compact
separators), and replies parsed only for the prediction's frame number and server latency.

Protocol: Engine.IO 4 over a WebSocket (`/socket.io/?EIO=4&transport=websocket`): the server
opens with `0{...}`, the client joins the main namespace with `40`, pings (`2`) are answered
with pongs (`3`), events are `42[name, data]`, and `41` is a disconnect from the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

EVENT = "42"


def encode_event(name: str, data: Any) -> str:
    """A Socket.IO event as the text frame a browser sends."""
    return EVENT + json.dumps([name, data], separators=(",", ":"))


class LeanCamera:
    """One simulated camera: sends its frames on a fixed 30 Hz schedule, records every prediction."""

    def __init__(self, url: str, frames: list[tuple[int, str]], fps: float) -> None:
        self.url = url.replace("http://", "ws://", 1).rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        self.frames, self.fps = frames, fps
        self.sent: dict[int, float] = {}
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.late = 0
        # What the server said of frames it did not classify: shed as late, dropped by the rate limit, errors.
        self.shed = self.rate_limited = self.errors = 0
        self.shed_at: list[float] = []  # when each `late` notice came (perf_counter s): a stall or a trickle?
        self.dropped = False  # the server ended the session before this camera was done
        self.finished = False
        self.ws: ClientConnection | None = None
        self._joined = asyncio.Event()

    async def open(self) -> None:
        """Connect and join the main namespace (the server's hello arrives as an ordinary event)."""
        self.ws = await connect(self.url, compression=None, max_size=None, open_timeout=60, ping_interval=None,
                                close_timeout=2)
        first = await self.ws.recv()
        if not isinstance(first, str) or not first.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open packet: {first!r:.80}")
        await self.ws.send("40")
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._joined.wait(), 60)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if not isinstance(msg, str):
                    continue
                if msg == "2":
                    await self.ws.send("3")
                elif msg.startswith('42["prediction",'):
                    self.got.append((time.perf_counter(), json.loads(msg[16:-1])))
                elif msg.startswith('42["late",'):
                    self.shed += int(json.loads(msg[10:-1])["count"])
                    self.shed_at.append(time.perf_counter())
                elif msg.startswith('42["rate_limited",'):
                    self.rate_limited += int(json.loads(msg[18:-1])["dropped"])
                elif msg.startswith('42["error",'):
                    self.errors += 1
                elif msg.startswith("40"):
                    self._joined.set()
                elif msg.startswith("41") or msg.startswith("44"):
                    break
        except Exception:  # noqa: BLE001 - a reset connection counts as a dropped session below
            pass
        if not self.finished:
            self.dropped = True
        self._joined.set()

    async def stream(self, start_at: float, expected: int) -> None:
        """Send every frame at its due time, then wait up to 3 s for the outstanding predictions."""
        assert self.ws is not None
        for k, (frame, text) in enumerate(self.frames):
            delay = start_at + k / self.fps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5 / self.fps:
                self.late += 1
            if self.dropped:
                break
            self.sent[frame] = time.perf_counter()
            try:
                await self.ws.send(text)
            except Exception:  # noqa: BLE001 - the connection is gone
                self.dropped = True
                break
        deadline = time.perf_counter() + 3
        while len(self.got) < expected and time.perf_counter() < deadline and not self.dropped:
            await asyncio.sleep(0.01)
        self.finished = True
        await self.ws.close()


async def _run(url: str, frames: list[tuple[int, str]], n: int, fps: float, expected: int,
               together: bool) -> list[LeanCamera]:
    cameras = [LeanCamera(url, frames, fps) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in cameras))
    start = time.perf_counter() + 1.0
    # Starts spread over one frame interval, as independent cameras would be (or all at once).
    spread = 0.0 if together else 1.0 / (fps * n)
    await asyncio.gather(*(c.stream(start + i * spread, expected) for i, c in enumerate(cameras)))
    return cameras


def stream_cameras(url: str, payloads: list[dict[str, Any]], n: int, fps: float, expected: int,
                   event: str = "keypoints", together: bool = False) -> list[LeanCamera]:
    """Run n cameras streaming ``payloads`` at ``fps`` to the server at ``url``; the finished cameras.

    ``together``: every camera sends at the same instant (the best case for batching), not spread out."""
    frames = [(int(p["frame"]), encode_event(event, p)) for p in payloads]
    return asyncio.run(_run(url, frames, n, fps, expected, together))
