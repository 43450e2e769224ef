"""Benchmark: live classification latency of `spml serve` over Socket.IO on loopback.

N python-socketio clients stream the example video's keypoints (extracted once with spml, cached
under build/live-bench/) at 30 Hz to a real `spml serve` process with a window-10 XGBoost bundle
(trained once with spml on the example's annotations). For every prediction it records the
server latency (receipt of the keypoints event to the emit of its prediction, measured by the
server) and the round trip (client send to client receipt).
Targets on a 2-core machine: 1 client p50 <= 5 ms and p99 <= 20 ms; 20 clients p99 <= 50 ms.

StreamPoseML 0.3.1 side by side: its web server cannot classify keypoints (its fallback path
raises on every event), so its documented live client is timed in-process instead:
StreamPoseClient.run_keypoint_pipeline per frame, window 10, TenFrameFlatColumnAngleTransformer,
an XGBoost model trained on rows made by that same transformer from the same keypoints and
labels. It runs in its own venv (build/spml-ref-venv, created if absent).

With --actuator the same runs are repeated on a server started with `--config` holding a `ble`
actuator (bumble, to a virtual peripheral in this process) whose decisions act on every bout:
the server latency with and without actuation (target: no measurable increase).

Soak and capacity (issue 13): --duration S streams for S seconds per run (the video looped), and
every run reports the server's RSS (start, peak, end, summed over its worker processes), sessions
dropped by the server before their client finished, the age of delivered predictions (client send
of the frame to client receipt of its prediction), predictions per client-second, and the server's
CPU time per prediction. --workers N serves with `spml serve --workers N`; --config YML gives the server
a `serve:` block (e.g. batch_wait_ms). "Expected" is what the offline path (predict_stream) gives for the
same frames; the frames the server shed as late, rate-limited or refused are counted from its notices.
Targets on a 2-core machine with the load generator on it: 20 clients round trip p99 <= 50 ms and
no dropped session over 10 minutes with flat RSS; 40 clients all connected with every delivered
prediction younger than 150 ms; server CPU per prediction <= 0.6 ms.

Landmarks go in the compact base64 float32 form the page sends (docs/protocol.md); --nested sends the JSON
rows other clients may send.

Run: .venv/bin/python benchmarks/live.py [--clients 1,20] [--loops 1] [--duration S] [--workers N] [--config YML]
     [--no-ref] [--nested]
     [--frames-mode] [--nagle-compare] [--actuator]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _lean_clients import stream_cameras
from _reference import EXAMPLE, ROOT, log, ref_python

CACHE = ROOT / "build" / "live-bench"
FPS = 30.0
WINDOW = 10
TARGETS = {1: (5.0, 20.0)}  # clients -> (p50 ms, p99 ms) targets on server latency
RTT_P99_TARGET = {20: 50.0}  # clients -> round trip p99 target (issue 13)
AGE_TARGET_MS = 150.0  # 40 clients: every delivered prediction younger than this (issue 13)


# -- inputs (cached) ------------------------------------------------------------------------------

def keypoints() -> Path:
    """The example video's keypoints, extracted once with spml (MediaPipe full model)."""
    from spml_core.pipeline import run_extract

    out = CACHE / "keypoints"
    results = run_extract(EXAMPLE / "example_video.webm", out, "mediapipe", {"model": "full"}, quiet=True)
    if results[0].status == "failed":
        raise SystemExit(f"extraction failed: {results[0].message}")
    return out / "example_video.parquet"


def dataset(kp: Path) -> Path:
    """Per-frame labelled table of the example video (seed annotation schema)."""
    from spml_core.config import AnnotationSchema
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset

    target = CACHE / "dataset.parquet"
    if not target.exists() or target.stat().st_mtime < kp.stat().st_mtime:
        frames, _ = build_dataset(kp.parent, EXAMPLE, AnnotationSchema())
        write_dataset(frames, target)
    return target


def bundle(ds: Path) -> Path:
    """A window-10 XGBoost bundle for step_type, trained once with spml's default options."""
    from spml_core.models.training import train

    out = CACHE / "bundle-steps-w10"
    if not (out / "manifest.json").exists() or (out / "manifest.json").stat().st_mtime < ds.stat().st_mtime:
        log("training the window-10 XGBoost bundle (once; cached)")
        train(ds, "step_type", out, "xgboost", window=WINDOW, quiet=True)
    return out


# -- the server ------------------------------------------------------------------------------------

SERVER_SNIPPET = r"""
import sys
from werkzeug.serving import WSGIRequestHandler, make_server
from spml_web import create_app
from spml_web.server import NoDelayRequestHandler
app = create_app({"model": sys.argv[1]})
handler = NoDelayRequestHandler if sys.argv[2] == "nodelay" else WSGIRequestHandler
handler.log_request = lambda *a, **k: None
srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
print(f"spml serve: http://127.0.0.1:{srv.server_port}/", flush=True)
srv.serve_forever()
"""


class Server:
    """`spml serve` (or the same app with Nagle left on) as a child process."""

    def __init__(self, model: Path, variant: str = "spml-serve", extra: list[str] | None = None,
                 cmd: list[str] | None = None) -> None:
        """Start it and read its URL; ``cmd``: another server command that prints the same first line."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if cmd is None and variant == "spml-serve":
            cmd = [sys.executable, "-m", "spml_core", "serve", "--model", str(model), "--port", "0", *(extra or [])]
        elif cmd is None:
            cmd = [sys.executable, "-c", SERVER_SNIPPET, str(model), variant]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        deadline = time.monotonic() + 120
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if line.startswith("spml serve: http://"):
                self.url = line.split()[2].rstrip("/")
                break
            if not line and self.proc.poll() is not None:
                break
        if not self.url:
            self.stop()
            raise SystemExit("the server did not start")

    def pids(self) -> list[int]:
        """The server process and its worker processes (spml serve --workers)."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            children = []
        return pids + [int(c) for c in children]

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server processes have used so far (Linux /proc)."""
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_mib(self) -> float:
        """Resident memory of the server processes, MiB (Linux /proc)."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- clients ---------------------------------------------------------------------------------------

class StreamingClient(threading.Thread):
    """One camera: sends frames at 30 Hz on a fixed schedule and records every prediction."""

    def __init__(self, url: str, payloads: list[dict[str, Any]], start_at: float, event: str) -> None:
        super().__init__(daemon=True)
        import socketio

        self.url, self.payloads, self.start_at, self.event = url, payloads, start_at, event
        self.sent: dict[int, float] = {}
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.late = 0
        self.finished = False
        self.dropped = False  # the server ended the session before this client was done
        self.client = socketio.Client(reconnection=False)
        self.client.on("prediction", lambda d: self.got.append((time.perf_counter(), d)))
        self.client.on("disconnect", self._on_disconnect)
        self.client.connect(url, transports=["websocket"], wait_timeout=60)

    def _on_disconnect(self, *args: Any) -> None:
        if not self.finished:
            self.dropped = True

    def run(self) -> None:
        for k, payload in enumerate(self.payloads):
            due = self.start_at + k / FPS
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5 / FPS:
                self.late += 1
            if self.dropped:
                break
            self.sent[payload["frame"]] = time.perf_counter()
            try:
                self.client.emit(self.event, payload)
            except Exception:  # the connection is gone: counted as a dropped session
                self.dropped = True
                break
        deadline = time.perf_counter() + 3
        expected = len(self.payloads) - WINDOW + 1
        while len(self.got) < expected and time.perf_counter() < deadline and not self.dropped:
            time.sleep(0.01)
        self.finished = True
        if self.client.connected:
            self.client.disconnect()


def camera_inputs(seconds: float, who: str) -> tuple[Path, list[dict[str, Any]]] | None:
    """The window-10 bundle and `seconds` of 30 Hz compact keypoints events (the example's, cached under
    build/live-bench/), or None after saying the example is missing."""
    if not (EXAMPLE / "example_video.webm").exists():
        print(f"{who}: example video not found under {EXAMPLE}; run `make setup`")
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    from spml_core.keypoints.sequence import load_keypoints

    kp = keypoints()
    seq = load_keypoints(kp)
    frames = int(seconds * FPS)
    return bundle(dataset(kp)), keypoint_payloads(seq, 1 + frames // seq.n_frames, compact=True)[:frames]


def keypoint_payloads(seq: Any, loops: int, compact: bool = False) -> list[dict[str, Any]]:
    """The video's frames as the page's keypoints events (looped with increasing frame numbers and times)."""
    import base64

    n = seq.n_frames
    # Rounded to 5 decimals, as the page sends them (about 1.3 KB per message instead of 2.9 KB);
    # compact: base64 of float32 (docs/protocol.md), about 780 bytes.
    if compact:
        rows = [None if np.isnan(x).all() else base64.b64encode(x.astype("<f4").tobytes()).decode() for x in seq.xyzv]
    else:
        rows = [None if np.isnan(x).all() else np.round(x.astype(np.float64), 5).tolist() for x in seq.xyzv]
    period = float(seq.timestamps_ms[-1]) + 1000.0 / FPS
    return [{"frame": k, "t_ms": float(seq.timestamps_ms[k % n]) + (k // n) * period, "landmarks": rows[k % n],
             "width": seq.width, "height": seq.height} for k in range(n * loops)]


def jpeg_payloads(limit: int) -> list[dict[str, Any]]:
    """The video's frames as 640x360 JPEG frame events (server-side pose)."""
    import cv2

    cap = cv2.VideoCapture(str(EXAMPLE / "example_video.webm"))
    out = []
    while len(out) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        ok, buf = cv2.imencode(".jpg", cv2.resize(bgr, (640, 360)), [cv2.IMWRITE_JPEG_QUALITY, 80])
        out.append({"frame": len(out), "t_ms": len(out) * 1000.0 / FPS, "image": buf.tobytes()})
    cap.release()
    return out


class RssSampler(threading.Thread):
    """Samples the server's RSS once a second while clients stream."""

    def __init__(self, server: Server | None) -> None:
        super().__init__(daemon=True)
        self.server, self.samples, self.stop = server, [], threading.Event()

    def run(self) -> None:
        while self.server is not None and not self.stop.wait(1.0):
            self.samples.append(self.server.rss_mib())


def expected_results(model: Path, seq: Any, payloads: list[dict[str, Any]]) -> int:
    """Results one client should get: what the offline path (``predict_stream``, the same time grid) gives
    for the same frames. A frame that completes no grid instant gets none: over a long run the example's
    whole-millisecond timestamps drift against the bundle's 30.003 fps grid, and 3% of frames do."""
    from spml_core.models.predictor import load_bundle

    xyzv = np.stack([seq.xyzv[int(p["frame"]) % seq.n_frames] for p in payloads])
    t_ms = np.asarray([p["t_ms"] for p in payloads], dtype=np.float64)
    results = load_bundle(model).predict_stream(xyzv, t_ms, seq.width, seq.height)
    return sum(r is not None for r in results)


def run_clients(url: str, payloads: list[dict[str, Any]], n: int, event: str = "keypoints",
                server: Server | None = None, lean: bool = True, together: bool = False,
                per_client: int | None = None) -> dict[str, Any]:
    """Stream from n clients at once (starts spread over one frame interval); latency, age, RSS, drops.

    ``lean``: keypoints go through the asyncio raw-WebSocket cameras (_lean_clients.py), which leave the
    cores to the server; otherwise (and for JPEG frames) each client is a threaded python-socketio client.
    ``together``: the lean cameras all send at the same instant instead. ``per_client``: the results one
    client should get (expected_results); default: one per frame after the first window.
    """
    # The load generator's own full garbage collections (its heap holds every payload) would stall all
    # its sending threads at once and show up as server latency: keep them out of the measurement.
    gc.collect()
    gc.freeze()
    rss = RssSampler(server)
    rss0 = server.rss_mib() if server else float("nan")
    cpu0 = time.process_time()
    per_client = per_client or len(payloads) - WINDOW + 1
    expected = n * per_client
    clients: list[Any]
    if lean and event == "keypoints":
        rss.start()
        clients = stream_cameras(url, payloads, n, FPS, per_client, together=together)
    else:
        clients = [StreamingClient(url, payloads, 0.0, event) for i in range(n)]
        start = time.perf_counter() + 1.0
        for i, c in enumerate(clients):
            c.start_at = start + i / (FPS * n)
        rss.start()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    rss.stop.set()
    client_cpu_s = time.process_time() - cpu0
    rss.join()
    wall_s = len(payloads) / FPS
    server_ms, rtt_ms = [], []
    skip = 10  # warm-up predictions per client (first windows, caches)
    for c in clients:
        for t, d in c.got[skip:]:
            server_ms.append(d["latency_ms"])
            rtt_ms.append((t - c.sent[d["frame"]]) * 1000.0)
    got = sum(len(c.got) for c in clients)
    rtt = np.asarray(rtt_ms) if rtt_ms else np.asarray([float("nan")])
    samples = rss.samples or [rss0]
    return {
        "clients": n, "frames_per_client": len(payloads), "predictions": got, "expected": expected,
        "late_sends": sum(c.late for c in clients), "dropped_sessions": sum(c.dropped for c in clients),
        "shed_late": sum(getattr(c, "shed", 0) for c in clients),
        "shed_seconds": len({int(t) for c in clients for t in getattr(c, "shed_at", [])}),
        "rate_limited": sum(getattr(c, "rate_limited", 0) for c in clients),
        "errors": sum(getattr(c, "errors", 0) for c in clients),
        "server_p50": float(np.percentile(server_ms, 50)) if server_ms else float("nan"),
        "server_p99": float(np.percentile(server_ms, 99)) if server_ms else float("nan"),
        "rtt_p50": float(np.percentile(rtt, 50)), "rtt_p99": float(np.percentile(rtt, 99)),
        # A prediction's age when it arrives: from the client's send of its frame to its receipt.
        "age_max": float(np.max(rtt)), "age_over_150ms": int((rtt > 150.0).sum()),
        "predictions_per_client_s": got / max(n * wall_s, 1e-9),
        "load_generator_cpu_s": client_cpu_s,
        "rss_start_mib": rss0, "rss_peak_mib": max(samples), "rss_end_mib": samples[-1],
    }


def in_process_push(bundle_dir: Path, seq: Any) -> dict[str, float]:
    """spml's per-frame live predictor (StreamPredictor.push), timed in-process for the ratio."""
    from spml_core.models.predictor import load_bundle

    stream = load_bundle(bundle_dir).new_stream(seq.width, seq.height)
    times = []
    for x in seq.xyzv:
        t = time.perf_counter()
        r = stream.push(x)
        dt = (time.perf_counter() - t) * 1000.0
        if r is not None:
            times.append(dt)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "n": len(times)}


# -- StreamPoseML ----------------------------------------------------------------------------------

REF_LIVE = r"""
import json, sys, time
import numpy as np, pandas as pd, xgboost as xgb
from stream_pose_ml.stream_pose_client import StreamPoseClient
from stream_pose_ml.blaze_pose.mediapipe_client import MediaPipeClient
from stream_pose_ml.blaze_pose.blaze_pose_sequence import BlazePoseSequence
from stream_pose_ml.serializers.blaze_pose_sequence_serializer import BlazePoseSequenceSerializer
from stream_pose_ml.learning.trained_model import TrainedModel
from stream_pose_ml.transformers.sequence_transformer import TenFrameFlatColumnAngleTransformer

inp, frames_to_time, train_stride = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = json.load(open(inp))
events, labels, W = data["events"], data["labels"], data["window"]
mpc = MediaPipeClient(dummy_client=True)
transformer = TenFrameFlatColumnAngleTransformer()

def frame_data(event):
    return {"sequence_id": None, "sequence_source": "web", "frame_number": None, "image_dimensions": None,
            "joint_positions": mpc.serialize_pose_landmarks(pose_landmarks=event["landmarks"][0])}

def window_data(win):
    seq = BlazePoseSequence(name="w", sequence=win, include_geometry=True).generate_blaze_pose_frames_from_sequence()
    return BlazePoseSequenceSerializer().serialize(seq)

def all_columns(sd):
    flat = {"angles": {}, "distances": {}}
    for i, f in enumerate(sd["frames"]):
        for key in flat:
            for k, v in f[key].items():
                flat[key][f"frame-{i + 1}-{k}"] = v
    return list(pd.json_normalize(flat).columns)

# Training rows: StreamPoseML's own live transformer over windows of the same keypoints.
t0 = time.perf_counter()
fd = [frame_data(e) for e in events]
rows, ys, columns = [], [], None
for end in range(W - 1, len(fd), train_stride):
    if labels[end] is None:
        continue
    sd = window_data(fd[end - W + 1:end + 1])
    if columns is None:
        columns = all_columns(sd)
    df, _ = transformer.transform(data=sd, columns=columns)
    rows.append(df)
    ys.append(labels[end])
X = pd.concat(rows, ignore_index=True)
X = X.select_dtypes(include=[np.number])
classes = sorted(set(ys))
y = np.array([classes.index(v) for v in ys])
model = xgb.XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1).fit(X, y)
tm = TrainedModel()
tm.set_model(model, {"X_test": X.iloc[:5]}, notes="benchmark")
train_s = time.perf_counter() - t0

client = StreamPoseClient(frame_window=W, mediapipe_client_instance=mpc, trained_model=tm,
                          data_transformer=transformer)
times = []
for k, event in enumerate(events[:frames_to_time]):
    t = time.perf_counter()
    client.run_keypoint_pipeline(event)
    dt = time.perf_counter() - t
    if k >= W - 1:
        times.append(dt * 1000.0)
print(json.dumps({"times_ms": times, "features": int(X.shape[1]), "train_rows": int(len(X)), "train_s": train_s}))
"""


def run_reference(seq: Any, ds: Path, frames: int) -> dict[str, Any] | None:
    """StreamPoseClient.run_keypoint_pipeline per frame in StreamPoseML's own venv."""
    import pandas as pd

    py = ref_python("stream_pose_ml.stream_pose_client, xgboost", required=False)
    if py is None:
        return None
    table = pd.read_parquet(ds, columns=["frame", "step_type"])
    labels = [None if pd.isna(v) else str(v) for v in table["step_type"]]
    events = []
    for x in seq.xyzv:
        marks = [] if np.isnan(x).all() else [[{"x": float(p[0]), "y": float(p[1]), "z": float(p[2]),
                                                "visibility": float(p[3])} for p in x]]
        events.append({"landmarks": marks})
    inp = CACHE / "ref-live-input.json"
    inp.write_text(json.dumps({"events": events, "labels": labels, "window": WINDOW}), encoding="utf-8")
    work = CACHE / "ref-work"  # StreamPoseML looks for config.yml from its cwd up: give it an empty folder
    work.mkdir(parents=True, exist_ok=True)
    log(f"timing StreamPoseML 0.3.1 StreamPoseClient.run_keypoint_pipeline on {frames} frames (about a minute)")
    out = subprocess.run([str(py), "-P", "-c", REF_LIVE, str(inp), str(frames), "2"], capture_output=True,
                         text=True, cwd=work)
    if out.returncode != 0:
        log(f"StreamPoseML run failed:\n{out.stderr[-2000:]}")
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    t = np.asarray(res["times_ms"])
    return {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)), "n": int(len(t)),
            "features": res["features"], "train_rows": res["train_rows"]}


# -- main ------------------------------------------------------------------------------------------

def fmt(r: dict[str, Any]) -> str:
    return (f"{r['clients']:>3} client(s): server p50 {r['server_p50']:6.2f} ms  p99 {r['server_p99']:6.2f} ms | "
            f"round trip p50 {r['rtt_p50']:6.2f} ms  p99 {r['rtt_p99']:6.2f} ms | "
            f"{r['predictions']}/{r['expected']} predictions, {r['late_sends']} late sends"
            + (f" | server CPU {r['server_cpu_s']:.2f} s" if "server_cpu_s" in r else "")
            + (f" ({r['cpu_ms_per_prediction']:.2f} ms/prediction)" if "cpu_ms_per_prediction" in r else "")
            + (f", load generator CPU {r['load_generator_cpu_s']:.2f} s" if "load_generator_cpu_s" in r else "")
            + (f"\n      age max {r['age_max']:.0f} ms, {r['age_over_150ms']} older than 150 ms | "
               f"{r['dropped_sessions']} dropped sessions | frames the server shed as late {r.get('shed_late', 0)} "
               f"(in {r.get('shed_seconds', 0)} distinct seconds), "
               f"rate-limited {r.get('rate_limited', 0)}, errors {r.get('errors', 0)} | RSS {r['rss_start_mib']:.0f} -> peak "
               f"{r['rss_peak_mib']:.0f} -> {r['rss_end_mib']:.0f} MiB" if "age_max" in r else ""))


def run_with_actuator(model: Path, payloads: list[dict[str, Any]], clients: list[int],
                      without: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same runs on `spml serve --config` with a `ble` actuator on a virtual peripheral."""
    import urllib.request

    import yaml
    from spml_actuator_ble.virtual import VirtualPeripheral

    out = []
    with VirtualPeripheral(name="SPML-Bench") as vp, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(yaml.safe_dump({"actuators": [{
            "use": "ble", "name": "stim", "log": "actions.jsonl",
            "options": {"device_name": vp.name, "transport": "bumble", "hci_transport": vp.hci_transport},
            "decisions": {"actions": {"Left Step": "01", "Right Step": "02"}, "off": "00", "min_bout": 1},
        }]}))
        server = Server(model, extra=["--config", str(config)])
        try:
            deadline = time.monotonic() + 30
            while True:
                with urllib.request.urlopen(f"{server.url}/api/health", timeout=5) as resp:
                    status = json.loads(resp.read())["actuators"][0]
                if status["state"] == "connected" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            print(f"with a ble actuator (bumble -> virtual peripheral): {status['state']}: {status['message']}")
            for n in clients:
                cpu0 = server.cpu_s()
                r = run_clients(server.url, payloads, n)
                r["server_cpu_s"] = server.cpu_s() - cpu0
                with urllib.request.urlopen(f"{server.url}/api/health", timeout=5) as resp:
                    r["actuator"] = json.loads(resp.read())["actuators"][0]
                out.append(r)
                print(fmt(r) + f" | device: {r['actuator']['sent']} sent, {r['actuator']['dropped']} dropped")
                base = next((w for w in without if w["clients"] == n), None)
                if base:
                    print(f"  server latency with / without actuator ({n} client{'s' if n > 1 else ''}): "
                          f"p50 {r['server_p50']:.2f} / {base['server_p50']:.2f} ms, "
                          f"p99 {r['server_p99']:.2f} / {base['server_p99']:.2f} ms; "
                          f"server CPU {r['server_cpu_s']:.2f} / {base['server_cpu_s']:.2f} s")
        finally:
            server.stop()
        print(f"the virtual peripheral received {len(vp.received)} writes")
    return out


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,20", help="comma-separated client counts (default 1,20)")
    parser.add_argument("--loops", type=int, default=1, help="times each client streams the video (default 1)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="stream for S seconds per run (soak; the video is looped); overrides --loops")
    parser.add_argument("--workers", type=int, default=1, help="spml serve --workers N (default 1)")
    parser.add_argument("--config", type=Path, metavar="YML",
                        help="spml serve --config YML: its serve: block (e.g. batch_wait_ms) applies to the server")
    parser.add_argument("--async-mode", choices=("gevent", "threading"), default="gevent",
                        help="spml serve --async-mode (default gevent, the server's default)")
    parser.add_argument("--nested", action="store_true",
                        help="send landmarks as JSON rows (other clients' form) instead of the compact base64 float32 "
                             "form the page sends")
    parser.add_argument("--compact", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--sio-clients", action="store_true",
                        help="load generator: threaded python-socketio clients instead of the lean asyncio ones")
    parser.add_argument("--no-ref", action="store_true", help="skip StreamPoseML 0.3.1")
    parser.add_argument("--ref-frames", type=int, default=150, help="frames timed on StreamPoseML (default 150)")
    parser.add_argument("--frames-mode", action="store_true", help="also stream JPEG frames (server-side pose), 1 client")
    parser.add_argument("--actuator", action="store_true",
                        help="repeat the runs with a BLE actuator attached (virtual peripheral over bumble)")
    parser.add_argument("--nagle-compare", action="store_true",
                        help="JPEG frames with TCP_NODELAY on and off (why the server disables Nagle)")
    args = parser.parse_args(argv)
    if not (EXAMPLE / "example_video.webm").exists():
        print(f"live benchmark: example video not found under {EXAMPLE}; skipped")
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    from spml_core.keypoints.sequence import load_keypoints

    kp = keypoints()
    seq = load_keypoints(kp)
    ds = dataset(kp)
    model = bundle(ds)
    loops = args.loops
    if args.duration:
        loops = max(1, int(np.ceil(args.duration * FPS / seq.n_frames)))
    payloads = keypoint_payloads(seq, loops, compact=not args.nested)
    if args.duration:
        payloads = payloads[: max(WINDOW, int(args.duration * FPS))]
    per_client = expected_results(model, seq, payloads)
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "runs": []}

    print(f"spml live benchmark: {len(payloads)} frames ({len(payloads) / FPS:.0f} s) per client, 30 Hz, "
          f"window {WINDOW} XGBoost bundle, spml serve on 127.0.0.1 ({args.async_mode} mode, {args.workers} worker "
          f"process{'es' if args.workers != 1 else ''}, TCP_NODELAY, landmarks {'as JSON rows' if args.nested else 'in the compact form the page sends'}); "
          f"load average {_loadavg()}")
    extra = ["--workers", str(args.workers), "--async-mode", args.async_mode]
    if args.config:
        extra += ["--config", str(args.config)]
    server = Server(model, extra=extra)
    try:
        for n in [int(c) for c in args.clients.split(",") if c]:
            cpu0 = server.cpu_s()
            r = run_clients(server.url, payloads, n, server=server, lean=not args.sio_clients, per_client=per_client)
            r["server_cpu_s"] = server.cpu_s() - cpu0
            r["cpu_ms_per_prediction"] = r["server_cpu_s"] * 1000.0 / max(r["predictions"], 1)
            results["runs"].append(r)
            p50_t, p99_t = TARGETS.get(n, (None, None))
            verdict = []
            if p50_t is not None:
                verdict.append(f"p50 target {p50_t:g} ms {'met' if r['server_p50'] <= p50_t else 'MISSED'}")
            if p99_t is not None:
                verdict.append(f"p99 target {p99_t:g} ms {'met' if r['server_p99'] <= p99_t else 'MISSED'}")
            if n in RTT_P99_TARGET:
                t = RTT_P99_TARGET[n]
                verdict.append(f"round trip p99 target {t:g} ms {'met' if r['rtt_p99'] <= t else 'MISSED'}")
            if n >= 40:
                verdict.append(f"every prediction younger than {AGE_TARGET_MS:g} ms: "
                               f"{'met' if r['age_over_150ms'] == 0 else 'MISSED'}")
            verdict.append(f"CPU/prediction target 0.6 ms {'met' if r['cpu_ms_per_prediction'] <= 0.6 else 'MISSED'}")
            print(fmt(r) + (f"  [{'; '.join(verdict)}]" if verdict else "") + f"  (load average {_loadavg()})")
        if args.frames_mode:
            r = run_clients(server.url, jpeg_payloads(seq.n_frames), 1, event="frame")
            results["frames_mode"] = r
            print("JPEG frames, server-side pose (MediaPipe lite):\n  " + fmt(r))
    finally:
        server.stop()

    if args.actuator:
        results["with_actuator"] = run_with_actuator(model, payloads, [int(c) for c in args.clients.split(",") if c],
                                                     results["runs"])

    if args.nagle_compare:
        jpegs = jpeg_payloads(150)
        for variant in ("nodelay", "nagle"):
            srv = Server(model, variant)
            try:
                r = run_clients(srv.url, jpegs, 1, event="frame")
            finally:
                srv.stop()
            results[f"frames_{variant}"] = r
            print(f"JPEG frames, {'TCP_NODELAY' if variant == 'nodelay' else 'Nagle on (default socket)'}:\n  "
                  + fmt(r))

    ours = in_process_push(model, seq)
    results["spml_in_process"] = ours
    print(f"spml StreamPredictor.push in-process: p50 {ours['p50']:.2f} ms  p99 {ours['p99']:.2f} ms per prediction")
    if not args.no_ref:
        ref = run_reference(seq, ds, args.ref_frames)
        results["streamposeml"] = ref
        if ref:
            one = results["runs"][0] if results["runs"] else None
            print(f"StreamPoseML 0.3.1 StreamPoseClient.run_keypoint_pipeline (in-process, window {WINDOW}, "
                  f"{ref['features']} TenFrame features, XGBoost): p50 {ref['p50']:.1f} ms  p99 {ref['p99']:.1f} ms "
                  f"per frame ({ref['n']} frames)")
            if one:
                print(f"ratio StreamPoseML in-process / spml server latency ({one['clients']} client): "
                      f"p50 {ref['p50'] / one['server_p50']:.0f}x  p99 {ref['p99'] / one['server_p99']:.0f}x")
            print(f"ratio StreamPoseML / spml, both in-process per frame: p50 {ref['p50'] / ours['p50']:.0f}x  "
                  f"p99 {ref['p99'] / ours['p99']:.0f}x")
            print("(StreamPoseML's web server cannot be run for this: its keypoints fallback raises on every event, "
                  "and its main path goes through an MLflow model server at 1.5-1.8 s per classification)")
    (CACHE / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
