"""Replay a video's keypoints through the live path and a BLE actuator, without hardware.

keypoints (Parquet from `spml extract`) -> the bundle's live predictor, frame by frame at the
video's pace -> the decision layer -> the ``ble`` actuator over bumble -> a virtual peripheral.
It prints each decision as it is made and, at the end, the bytes the peripheral received::

    python -m spml_actuator_ble.demo_replay --keypoints data/keypoints/demo.parquet --bundle data/models/steps

Payloads default to one byte per class (its index + 1) and 00 for off; choose your own with
``--action "Left Step=01" --action "Right Step=02" --off 00`` or take the decisions of an
actuator in a config.yml with ``--config config.yml --actuator NAME``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spml_core.errors import SpmlError


def replay_predictions(
    keypoints: Any,
    predictor: Any,
    on_prediction: Callable[[int, float, str, dict[str, float]], Any],
    speed: float = 1.0,
) -> int:
    """Push every frame through a live stream of ``predictor``, calling ``on_prediction`` per prediction.

    ``speed`` 1.0 keeps the video's timing (0 = as fast as possible). Returns the prediction count.
    """
    stream = predictor.new_stream(keypoints.width, keypoints.height)
    t_ms = keypoints.timestamps_ms
    frames = keypoints.frame_index
    start = time.perf_counter()
    count = 0
    for i in range(len(t_ms)):
        if speed > 0:
            wait = (t_ms[i] - t_ms[0]) / 1000.0 / speed - (time.perf_counter() - start)
            if wait > 0:
                time.sleep(wait)
        result = stream.push(keypoints.xyzv[i])
        if result is None:
            continue
        count += 1
        on_prediction(int(frames[i]), float(t_ms[i]), result["label"], result["probabilities"])
    return count


def _parse_actions(items: list[str], classes: list[str]) -> dict[str, str]:
    if not items:
        return {c: f"{i + 1:02x}" for i, c in enumerate(classes)}
    actions = {}
    for item in items:
        label, sep, payload = item.rpartition("=")
        if not sep or not label:
            raise SpmlError(f"--action {item!r}: expected LABEL=HEX, e.g. 'Left Step=01'")
        if label not in classes:
            raise SpmlError(f"--action {item!r}: the bundle has no class {label!r}; its classes are {classes}")
        actions[label] = payload
    return actions


def _actuator_config(args: argparse.Namespace, classes: list[str]) -> Any:
    from spml_core.config import ActuatorConfig, load_config

    if args.config:
        cfg = load_config(args.config)
        chosen = [a for a in cfg.actuators if args.actuator in (None, a.label)]
        if not chosen:
            names = ", ".join(a.label for a in cfg.actuators) or "none"
            raise SpmlError(f"{args.config}: no actuator {args.actuator!r} under actuators: (have: {names})")
        decisions = chosen[0].decisions.model_dump()
        options = {k: v for k, v in chosen[0].options.items() if k in ("encoding", "struct_format", "with_response")}
    else:
        decisions = {
            "actions": _parse_actions(args.action, classes),
            "off": args.off,
            "threshold": args.threshold,
            "min_bout": args.min_bout,
            "refractory_ms": args.refractory_ms,
        }
        options = {"with_response": True}
    return ActuatorConfig(
        use="ble", name="ble", options=options, decisions=decisions, log=args.log.resolve() if args.log else None
    )


def main(argv: list[str] | None = None) -> int:
    """Run the replay; exit 0 when the peripheral received exactly the payloads that were sent."""
    parser = argparse.ArgumentParser(
        prog="python -m spml_actuator_ble.demo_replay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keypoints", type=Path, required=True, help="keypoint Parquet file (spml extract)")
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder or .zip (spml train)")
    parser.add_argument("--config", type=Path, help="take the decisions of an actuator in this config.yml")
    parser.add_argument("--actuator", help="which actuator of --config (default: the first)")
    parser.add_argument("--action", action="append", default=[], metavar="LABEL=HEX", help="class -> payload (hex)")
    parser.add_argument("--off", default="00", help="off payload, hex (default 00)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--min-bout", type=int, default=3)
    parser.add_argument("--refractory-ms", type=float, default=500.0)
    parser.add_argument("--speed", type=float, default=1.0, help="1 = the video's pace, 0 = as fast as possible")
    parser.add_argument("--log", type=Path, help="append the JSON-lines action log here")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except SpmlError as exc:
        print(f"demo_replay: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import spml_core
    from spml_actuator_ble.virtual import VirtualPeripheral
    from spml_core import ActuationHub, load_keypoints
    from spml_core.registry import Registry

    if not args.keypoints.exists():
        raise SpmlError(f"{args.keypoints}: keypoint file not found (make one with `spml extract VIDEO --out DIR`)")
    keypoints = load_keypoints(args.keypoints)
    predictor = spml_core.load_bundle(args.bundle)
    ac = _actuator_config(args, list(predictor.classes))
    t0 = time.perf_counter_ns()
    with VirtualPeripheral(name="SPML-Virtual", service_uuid=ac.options.get("service_uuid", "ffe0"),
                           characteristic_uuid=ac.options.get("characteristic_uuid", "ffe1")) as vp:
        ac.options.update(device_name=vp.name, transport="bumble", hci_transport=vp.hci_transport)
        with ActuationHub([ac], Registry().load(), base_dir=Path.cwd()) as hub:
            deadline = time.monotonic() + 10
            while hub.status()[0]["state"] != "connected" and time.monotonic() < deadline:
                time.sleep(0.02)
            status = hub.status()[0]
            print(f"actuator: {status['state']}: {status['message']}")
            if status["state"] != "connected":
                return 1
            session = hub.session(session_id="demo_replay")
            print(f"replaying {len(keypoints.timestamps_ms)} frames of {args.keypoints.name} through "
                  f"{args.bundle.name} (classes: {', '.join(predictor.classes)}; window {predictor.window})")

            def show(d: Any, frame: int | None, t_ms: float) -> None:
                shown = f" payload {d.payload.hex(' ')}" if d.payload is not None else ""
                p = f" p={d.probability:.2f}" if d.probability is not None else ""
                at = f"frame {frame:5d}" if frame is not None else "end        "
                print(f"  {at}  {t_ms:9.1f} ms  {d.action.upper():10s} {d.label}{p} ({d.reason}){shown}")

            def on_prediction(frame: int, t_ms: float, label: str, probs: dict[str, float]) -> None:
                for d in session.on_prediction(t_ms, label, probs, frame):
                    show(d, frame, t_ms)

            n = replay_predictions(keypoints, predictor, on_prediction, args.speed)
            for d in session.close():  # the fail-safe off of a bout still running when the video ends
                show(d, d.frame, d.t_ms)
            runner = hub.targets[0].runner
            assert runner is not None
            deadline = time.monotonic() + 5
            while runner.pending() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            counts = runner.status()
        received = list(vp.received)
    print(f"{n} predictions; actuator counts: " + ", ".join(f"{k} {counts[k]}" for k in
          ("submitted", "sent", "failed", "dropped", "stale", "coalesced")))
    print(f"the virtual peripheral received {len(received)} writes:")
    for r in received:
        print(f"  {(r.t_ns - t0) / 1e6:9.1f} ms  {r.data.hex(' ')}")
    return 0 if len(received) == counts["sent"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
