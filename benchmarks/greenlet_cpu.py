"""Benchmark: where `spml serve` spends its CPU per frame, by greenlet (gevent mode).

`spml serve --workers 1` runs in a child process with a greenlet switch hook that charges the thread CPU
time between two switches to the greenlet that ran: the batcher (features and models for every session's
frames, and the emits), each connection's handler (reading its WebSocket, `parse_keypoints`), Engine.IO's
writer (what is not written straight to the socket), WebSocket helpers (reading for a busy handler), and
the hub. The same lean cameras as benchmarks/live.py
stream to it; at the end it prints the CPU per received frame of each, `push_many` and the emit inside
the batcher, and the mean batch size. Sampling profilers count a greenlet preempted in a system call
as busy (py-spy put up to 37% of its samples in the prediction's `send`, which /proc shows is not CPU);
this counts CPU time only. The hook itself costs some CPU, so the total is a little above
benchmarks/live.py's figure.

Run: .venv/bin/python benchmarks/greenlet_cpu.py [--clients 20] [--seconds 15] [--batch-wait-ms 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live  # noqa: E402  (benchmarks/ is not a package)

REPORT = "greenlet CPU:"


def _kind(g: Any) -> str:
    """A readable name for what a greenlet runs."""
    if type(g).__name__ == "Hub":
        return "hub"
    run = getattr(g, "_run", None) or getattr(g, "run", None)
    name = getattr(run, "__qualname__", None) or getattr(getattr(run, "func", None), "__qualname__", None)
    names = {"Batcher._run": "batcher", "_handle_and_close_when_done": "connection_handler",
             "Socket._websocket_handler.<locals>.writer": "engineio_writer",
             "DirectWebSocket._read_while_busy": "websocket_helper"}
    return names.get(name or "", name or type(g).__name__)


def serve_traced(argv: list[str]) -> int:
    """`spml serve ARGV` with the switch hook; prints the report when it stops."""
    import atexit

    import greenlet

    cpu: Counter[str] = Counter()
    inner: Counter[str] = Counter()
    last = [time.thread_time()]

    def hook(event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            now = time.thread_time()
            cpu[_kind(args[0])] += now - last[0]
            last[0] = now

    greenlet.settrace(hook)
    import spml_web.batcher as batcher
    import spml_web.socket_events as events

    push_many = batcher.StreamPredictor.push_many
    emit = events._emit_prediction

    def timed_push_many(pushes: Any) -> Any:
        if not inner["batches"]:
            cpu.clear()  # start-up (imports, the bundle) is not per frame
        t = time.thread_time()
        out = push_many(pushes)
        inner["push_many"] += time.thread_time() - t
        inner["frames"] += len(pushes)
        inner["batches"] += 1
        return out

    def timed_emit(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        out = emit(*args, **kwargs)
        inner["emit"] += time.thread_time() - t
        return out

    batcher.StreamPredictor.push_many = staticmethod(timed_push_many)  # type: ignore[method-assign]
    events._emit_prediction = timed_emit  # read when each session's batcher is made: before any connects

    def report() -> None:
        frames = max(inner["frames"], 1)
        parts = [f"{k}={v / frames * 1000:.3f}" for k, v in cpu.most_common() if v / frames > 5e-6]
        print(f"{REPORT} frames={inner['frames']} batches={inner['batches']} total={sum(cpu.values()) / frames * 1000:.3f} "
              + " ".join(parts) + f" | push_many={inner['push_many'] / frames * 1000:.3f} "
              f"emit={inner['emit'] / frames * 1000:.3f}", flush=True)

    atexit.register(report)
    from spml_core.cli.main import main

    sys.argv = ["spml", "serve", *argv]
    return int(main() or 0)


def traced_server(model: Path, config: Path) -> live.Server:
    """The traced server as a child process, with live.Server's readings."""
    return live.Server(model, cmd=[sys.executable, __file__, "--serve", "--model", str(model), "--port", "0",
                                   "--workers", "1", "--config", str(config)])


def main(argv: list[str] | None = None) -> int:
    """Stream the cameras to the traced server; print its CPU per frame by greenlet."""
    if argv is None and sys.argv[1:2] == ["--serve"]:
        return serve_traced(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="cameras at 30 Hz (default 20)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of streaming (default 15)")
    parser.add_argument("--batch-wait-ms", type=float, default=3.0, help="serve's batch_wait_ms (default 3)")
    args = parser.parse_args(argv)
    inputs = live.camera_inputs(args.seconds, "greenlet CPU")
    if inputs is None:
        return 1
    model, payloads = inputs
    frames = len(payloads)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "serve.yml"
        config.write_text(f"serve:\n  batch_wait_ms: {args.batch_wait_ms}\n")
        server = traced_server(model, config)
        try:
            cpu0 = server.cpu_s()
            r = live.run_clients(server.url, payloads, args.clients, server=server)
            cpu = (server.cpu_s() - cpu0) / max(r["predictions"], 1) * 1000.0
        finally:
            server.stop()
        tail = server.proc.stdout.read() if server.proc.stdout else ""  # type: ignore[union-attr]
    line = next((x for x in tail.splitlines() if x.startswith(REPORT)), None)
    print(f"greenlet CPU: {args.clients} cameras x 30 Hz, {frames} frames each, batch wait {args.batch_wait_ms:g} ms, "
          f"one traced worker; load average {live._loadavg()}")
    print(f"  /proc: {cpu:.3f} ms of server CPU per prediction; round trip p50 {r['rtt_p50']:.1f} / p99 "
          f"{r['rtt_p99']:.1f} ms; {r['predictions']}/{r['expected']} delivered")
    if line is None:
        print("  the server printed no report")
        return 1
    fields = dict(x.split("=", 1) for x in line[len(REPORT):].replace("|", " ").split())
    print(f"  per frame ({fields.pop('frames')} frames in {fields.pop('batches')} batches), ms of thread CPU:")
    for key, value in fields.items():
        print(f"    {key:<22}{float(value):8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
