"""Benchmark: actuation latency and its cost to the live classification loop.

1. Prediction -> bytes at the device: a prediction leaves the model (clock starts), goes
   through the decision layer, the ActuatorRunner's queue and thread, the ``ble`` actuator's
   bumble host, the HCI link and the virtual controller, and arrives at a virtual peripheral's
   GATT server (clock stops; same process, same perf_counter). Predictions alternate between
   two classes at 30 Hz so every one of them is an action. p50/p99, with and without response.
   Target: p99 <= 20 ms.
2. The live loop with and without an actuator: per frame, the bundle's live predictor push
   (+ decision + enqueue when attached) on the example video's real keypoints at 30 fps, in
   alternating blocks. Target: no measurable increase.

The keypoints (MediaPipe lite) and a small XGBoost bundle are made once under
build/bench-actuation/ (or pass --keypoints and --bundle).
Run: .venv/bin/python benchmarks/actuation.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _reference import EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "bench-actuation"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100)."""
    return float(np.percentile(np.asarray(values), q))


def ble_config(vp, with_response: bool, actions: dict[str, str], off: str | None, min_bout: int = 1):
    from spml_core.config import ActuatorConfig

    return ActuatorConfig(
        use="ble",
        options={
            "device_name": vp.name,
            "transport": "bumble",
            "hci_transport": vp.hci_transport,
            "with_response": with_response,
        },
        decisions={"actions": actions, "off": off, "min_bout": min_bout, "dead_man_ms": None},
        log=None,
    )


def wait_connected(hub, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while hub.status()[0]["state"] != "connected":
        if time.monotonic() > deadline:
            raise RuntimeError(f"actuator did not connect: {hub.status()[0]}")
        time.sleep(0.01)


def bench_prediction_to_bytes(n: int, with_response: bool) -> dict[str, float]:
    """Latency from a prediction handed to the decision layer to its bytes at the peripheral."""
    from spml_actuator_ble.virtual import VirtualPeripheral
    from spml_core.actuation.hub import ActuationHub
    from spml_core.registry import Registry

    registry = Registry().load()
    with VirtualPeripheral(name="SPML-Bench") as vp:
        hub = ActuationHub([ble_config(vp, with_response, {"a": "01", "b": "02"}, None)], registry)
        wait_connected(hub)
        session = hub.session()
        starts: list[int] = []
        period = 1 / 30
        t_next = time.perf_counter()
        for i in range(n):
            t_next += period
            label = "a" if i % 2 == 0 else "b"
            start = time.perf_counter_ns()
            decisions = session.on_prediction(i * 33.3667, label, {label: 0.9})
            assert decisions and decisions[-1].action == "on", decisions
            starts.append(start)
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        received = vp.wait_for(n, timeout=10)
        counts = hub.targets[0].runner.status()
        hub.close()
    assert counts["dropped"] == 0 and counts["failed"] == 0, counts
    expected = [b"\x01" if i % 2 == 0 else b"\x02" for i in range(n)]
    assert [r.data for r in received[:n]] == expected, "bytes arrived out of order or changed"
    lat = [(r.t_ns - s) / 1e6 for r, s in zip(received, starts, strict=False)]
    return {"n": n, "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)}


def ensure_keypoints(path: Path | None) -> Path:
    """The example video's keypoints (MediaPipe lite), extracted once into the cache."""
    if path is not None:
        return path
    out = CACHE / "keypoints"
    target = out / "example_video.parquet"
    if target.exists():
        return target
    video = EXAMPLE / "example_video.webm"
    if not video.exists():
        sys.exit(f"shared example video not found at {video}; pass --keypoints FILE")
    from spml_core.pipeline import run_extract

    print("extracting keypoints of the example video once (MediaPipe lite)...", flush=True)
    run_extract(video, out, "mediapipe", {"model": "lite"}, quiet=True)
    return target


def ensure_bundle(path: Path | None, keypoints: Path) -> Path:
    """A small XGBoost bundle on the example video (step_type, window 10), trained once."""
    if path is not None:
        return path
    out = CACHE / "bundle"
    if (out / "manifest.json").exists():
        return out
    from spml_core.datasets.build import build_dataset
    from spml_core.datasets.io import write_dataset
    from spml_core.models.training import train

    print("training a small bundle once (xgboost, step_type, window 10)...", flush=True)
    df, _ = build_dataset(keypoints.parent, EXAMPLE)
    dataset = write_dataset(df, CACHE / "dataset.parquet")
    return train(dataset, "step_type", out, "xgboost", window=10, quiet=True).bundle


def bench_live_loop(keypoints_path: Path, bundle: Path, passes: int) -> dict[str, dict[str, float]]:
    """Per-frame loop time (push + decision + enqueue) with and without a BLE actuator attached."""
    import spml_core
    from spml_actuator_ble.virtual import VirtualPeripheral
    from spml_core.actuation.hub import ActuationHub
    from spml_core.keypoints.sequence import load_keypoints
    from spml_core.registry import Registry

    kp = load_keypoints(keypoints_path)
    predictor = spml_core.load_bundle(bundle)
    classes = list(predictor.classes)
    times: dict[str, list[float]] = {"without": [], "with": []}
    block_p50: dict[str, list[float]] = {"without": [], "with": []}
    decide: list[float] = []  # decision + enqueue alone, per prediction
    actions_sent = 0
    with VirtualPeripheral(name="SPML-Bench") as vp:
        actions = {c: f"{i + 1:02x}" for i, c in enumerate(classes)}
        hub = ActuationHub([ble_config(vp, True, actions, "00")], Registry().load())
        wait_connected(hub)
        for p in range(passes * 2):
            mode = ("without", "with")[p % 2]
            stream = predictor.new_stream(kp.width, kp.height)
            session = hub.session() if mode == "with" else None
            t_next = time.perf_counter()
            block_start = len(times[mode])
            for i in range(len(kp.timestamps_ms)):
                t_next += 1 / 30
                frame, t_ms = int(kp.frame_index[i]), float(kp.timestamps_ms[i])
                start = time.perf_counter_ns()
                result = stream.push(kp.xyzv[i])
                if result is not None and session is not None:
                    d0 = time.perf_counter_ns()
                    session.on_prediction(t_ms, result["label"], result["probabilities"], frame)
                    decide.append((time.perf_counter_ns() - d0) / 1e6)
                times[mode].append((time.perf_counter_ns() - start) / 1e6)
                delay = t_next - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            block_p50[mode].append(pct(times[mode][block_start:], 50))
            if session is not None:
                session.close()
        time.sleep(0.3)
        actions_sent = hub.targets[0].runner.status()["sent"]
        hub.close()
    out = {}
    for mode, values in times.items():
        out[mode] = {"frames": len(values), "mean": statistics.fmean(values), "p50": pct(values, 50),
                     "p99": pct(values, 99)}
        out[mode]["block_p50"] = block_p50[mode]
    out["with"]["actions_sent"] = actions_sent
    out["decide"] = {"n": len(decide), "p50": pct(decide, 50), "p99": pct(decide, 99)}
    return out


def main() -> int:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--keypoints", type=Path)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--skip-live", action="store_true", help="only part 1 (no keypoints or bundle needed)")
    args = parser.parse_args()
    n = 150 if args.quick else 600
    print("1. prediction -> bytes at the virtual BLE peripheral (decision + runner + bumble + HCI link), 30 Hz")
    ok = True
    for with_response in (False, True):
        r = bench_prediction_to_bytes(n, with_response)
        mode = "with response   " if with_response else "without response"
        print(f"   {mode}: n={r['n']}  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  max {r['max']:.2f} ms  "
              f"(target p99 <= 20 ms: {'met' if r['p99'] <= 20 else 'MISSED'})")
        ok &= r["p99"] <= 20
    if args.skip_live:
        return 0 if ok else 1
    keypoints = ensure_keypoints(args.keypoints)
    bundle = ensure_bundle(args.bundle, keypoints)
    passes = 1 if args.quick else 3
    print(f"2. live loop per frame (predictor push [+ decision + enqueue]), example video at 30 fps, {passes} pass(es) each")
    r = bench_live_loop(keypoints, bundle, passes)
    w, wo = r["with"], r["without"]
    for mode, v in (("without actuator", wo), ("with BLE actuator", w)):
        blocks = ", ".join(f"{b:.3f}" for b in v["block_p50"])
        print(f"   {mode:17s}: frames {v['frames']}  mean {v['mean']:.3f} ms  p50 {v['p50']:.3f} ms  "
              f"p99 {v['p99']:.3f} ms  (p50 per pass: {blocks})")
    d = r["decide"]
    print(f"   decision + enqueue alone: {d['n']} predictions, p50 {d['p50'] * 1000:.0f} us, p99 {d['p99'] * 1000:.0f} us")
    print(f"   difference: p50 {w['p50'] - wo['p50']:+.3f} ms, p99 {w['p99'] - wo['p99']:+.3f} ms "
          f"({w['actions_sent']} actions written during the 'with' passes)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
