"""Benchmark: what the live server's transport costs, against a floor with the same classification.

Issue 13 asks for at most 0.6 ms of server CPU per prediction (20 cameras at 30 Hz on 2 cores). This
splits the figure. The same lean cameras as benchmarks/live.py stream to two servers in turn:

* `spml serve --workers 1` (gevent: simple-websocket, Engine.IO, Socket.IO, the batcher);
* a floor: one gevent process that speaks just enough of the same protocol over a raw WebSocket
  (handshake, Engine.IO open packet, namespace join, `keypoints` in, `prediction` out; no pings,
  limits, fairness, recording or actuators) around exactly the server's classification:
  ``parse_keypoints``, ``LiveSession.begin``/``finish`` and ``StreamPredictor.push_many`` over the
  frames of one batch wait.

For each batch wait (the `serve:` block's ``batch_wait_ms``) it prints both servers' CPU time per
prediction and round trip, and the floor's share. ``--together`` makes every camera send at the same
instant (the best case for batching) instead of spread over the frame interval as independent cameras
are. The floor is not a server to use: it has none of the limits that make `spml serve` safe.

Run: .venv/bin/python benchmarks/transport_floor.py [--clients 20] [--seconds 15] [--batch-wait-ms 3,10]
     [--together] [--repeat 2]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live  # noqa: E402  (benchmarks/ is not a package)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the floor server (a child process: --serve) ------------------------------------------------------

def _ws_text(text: str) -> bytes:
    """One unmasked server-to-client text frame."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + data


def _client_messages(sock: Any) -> Any:
    """The text payloads of a client's (masked, unfragmented) frames until it closes."""
    buf = bytearray()
    while True:
        while len(buf) >= 2:
            size, off = buf[1] & 0x7F, 2
            if size == 126:
                size, off = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                size, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + 4 + size:
                break
            opcode, mask = buf[0] & 0x0F, bytes(buf[off:off + 4])
            payload = np.frombuffer(bytes(buf[off + 4:off + 4 + size]), np.uint8)
            del buf[:off + 4 + size]
            if opcode == 8:
                return
            if opcode == 1:
                key = np.frombuffer((mask * (size // 4 + 1))[:size], np.uint8)
                yield (payload ^ key).tobytes().decode()
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk


def serve_floor(port: int, bundle: str, wait_ms: float) -> None:
    """The floor server: classification as `spml serve` does it, behind the least transport."""
    import gevent
    import gevent.event
    from gevent.server import StreamServer
    from spml_core import StreamPredictor
    from spml_core.models.predictor import load_bundle
    from spml_web.protocol import parse_keypoints
    from spml_web.sessions import LiveSession

    predictor = load_bundle(bundle)
    ready: dict[int, Any] = {}
    wake = gevent.event.Event()

    class Conn:
        def __init__(self, sock: Any) -> None:
            self.sock = sock
            self.session = LiveSession(str(id(self)), 1, 3, 0.6, 1000.0)
            self.session.set_model("bench", predictor)
            self.queue: list[tuple[Any, float]] = []
            self.open = True

        def send(self, text: str) -> None:
            try:
                self.sock.sendall(_ws_text(text))
            except OSError:
                self.open = False

    def handle(sock: Any, _addr: Any) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        conn = Conn(sock)
        conn.send('0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
        for text in _client_messages(sock):
            received = time.perf_counter()
            if text.startswith("40"):
                conn.send('40{"sid":"floor"}')
            elif text.startswith('42["keypoints",'):
                conn.queue.append((parse_keypoints(json.loads(text[2:])[1]), received))
                ready[id(conn)] = conn
                wake.set()
        conn.open = False

    def batcher() -> None:
        while True:
            wake.wait()
            gevent.sleep(wait_ms / 1000.0)
            wake.clear()
            conns = [c for c in ready.values() if c.open]
            ready.clear()
            batch = []
            for c in conns:
                msg, received = c.queue.pop(0)
                if c.queue:
                    ready[id(c)] = c
                    wake.set()
                batch.append((c, msg, received, c.session.begin(msg.frame, msg.t_ms, msg.width, msg.height)))
            results = StreamPredictor.push_many([(s, m.xyzv, m.t_ms) for _, m, _, s in batch])
            for (c, msg, received, _), result in zip(batch, results):
                payload = c.session.finish(msg.frame, msg.t_ms, result, received)
                if payload is not None:
                    payload["latency_ms"] = (time.perf_counter() - received) * 1000.0
                    c.send('42["prediction",' + json.dumps(payload, separators=(",", ":")) + "]")

    gevent.spawn(batcher)
    server = StreamServer(("127.0.0.1", port), handle)
    server.start()
    print(f"spml serve: http://127.0.0.1:{server.server_port}/", flush=True)
    server.serve_forever()


def floor_server(model: Path, wait_ms: float) -> live.Server:
    """The floor server as a child process, with live.Server's CPU and RSS readings."""
    return live.Server(model, cmd=[sys.executable, __file__, "--serve", str(model), str(wait_ms)])


# -- the driver --------------------------------------------------------------------------------------

def measure(server: live.Server, payloads: list[dict[str, Any]], n: int, together: bool) -> dict[str, Any]:
    """Stream n cameras to the server: CPU per prediction and round trip."""
    cpu0 = server.cpu_s()
    r = live.run_clients(server.url, payloads, n, server=server, together=together)
    r["cpu_ms_per_prediction"] = (server.cpu_s() - cpu0) / max(r["predictions"], 1) * 1000.0
    return r


def main(argv: list[str] | None = None) -> int:
    """Run both servers at each batch wait; print CPU per prediction, round trip and the floor's share."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="cameras at 30 Hz (default 20)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of streaming per run (default 15)")
    parser.add_argument("--batch-wait-ms", default="3,10", help="batch waits to compare (default 3,10; 3 is serve's)")
    parser.add_argument("--together", action="store_true", help="all cameras send at the same instant")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each server at each wait (default 2)")
    parser.add_argument("--serve", nargs=2, metavar=("BUNDLE", "WAIT_MS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_floor(0, args.serve[0], float(args.serve[1]))
        return 0
    inputs = live.camera_inputs(args.seconds, "transport floor")
    if inputs is None:
        return 1
    model, payloads = inputs
    frames = len(payloads)
    print(f"transport floor: {args.clients} cameras x 30 Hz, {frames} frames each, "
          f"{'all at the same instant' if args.together else 'spread over the frame interval'}; "
          f"one server process each; load average {live._loadavg()}")
    print(f"{'server':<22}{'wait':>6}{'CPU/prediction':>16}{'round trip p50 / p99':>24}{'delivered':>12}")
    for wait in [float(w) for w in args.batch_wait_ms.split(",") if w]:
        cpu: dict[str, list[float]] = {"spml serve": [], "floor": []}
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "serve.yml"
            config.write_text(f"serve:\n  batch_wait_ms: {wait}\n")
            for _ in range(args.repeat):
                for name in cpu:
                    server = (live.Server(model, extra=["--workers", "1", "--config", str(config)])
                              if name == "spml serve" else floor_server(model, wait))
                    try:
                        time.sleep(1.0)
                        r = measure(server, payloads, args.clients, args.together)
                    finally:
                        server.stop()
                    cpu[name].append(r["cpu_ms_per_prediction"])
                    print(f"{name:<22}{wait:>4.0f}ms{r['cpu_ms_per_prediction']:>13.3f} ms"
                          f"{r['rtt_p50']:>12.1f} / {r['rtt_p99']:5.1f} ms{r['predictions']:>8}/{r['expected']}")
        served, floor = float(np.median(cpu["spml serve"])), float(np.median(cpu["floor"]))
        print(f"  batch wait {wait:.0f} ms, medians: spml serve {served:.3f} ms, floor {floor:.3f} ms per prediction; "
              f"the transport above the floor costs {served - floor:.3f} ms ({(served - floor) / served:.0%}); "
              f"target 0.6 ms; load average {live._loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
