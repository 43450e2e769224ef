"""`spml serve`: the live classification web app (needs the spml-web distribution)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spml_core.errors import ConfigError, SpmlError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "serve",
        help="serve the live classification web app (camera/video -> pose -> model, in the browser)",
        description="Serve the live web app: a page that estimates pose in the browser (or sends frames "
        "to the server) and streams keypoints over Socket.IO to a model bundle. Binds 127.0.0.1 by default.",
    )
    p.add_argument("--model", type=Path, help="model bundle (folder or .zip from `spml train`) every session starts with")
    p.add_argument("--models-dir", type=Path,
                   help="folder of model bundles clients can choose from; uploads (POST /api/models) go here")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=int, default=5001, help="TCP port (default 5001; 0 picks a free one)")
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="emit a prediction every K frames once the window is full (default 1)")
    p.add_argument("--pose-model", default="lite", choices=("lite", "full", "heavy"),
                   help="MediaPipe model for server-side pose and the page's default (default lite)")
    p.add_argument("--config", type=Path, metavar="CONFIG_YML",
                   help="spml config whose `actuators:` block the live predictions drive (BLE, OSC, ...; "
                        "docs/actuation.md); action-log paths resolve against its folder. Without it: no actuators")
    p.add_argument("--decision-frames", type=int, default=3, metavar="N",
                   help="consecutive predictions a class needs before it becomes the decision (default 3)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="extra origin allowed to connect (repeatable); by default only the page's own origin")
    p.add_argument("--max-upload-mb", type=float, default=64.0, help="largest bundle upload in MiB (default 64)")
    p.add_argument("--message-queue", metavar="redis://HOST:PORT/DB",
                   help="share Socket.IO rooms and broadcasts with other spml serve processes through Redis "
                        "(run them behind a load balancer with sticky sessions; see docs/scale-out.md)")
    p.add_argument("--message-queue-channel", default="spml", metavar="NAME",
                   help="Redis channel of this deployment (default spml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every HTTP request")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the app from the installed plugins and serve it until Ctrl-C."""
    import logging

    try:
        from spml_web.app import create_app
        from spml_web.server import serve_forever
    except ImportError as exc:
        raise SpmlError(f"spml serve needs the spml-web package ({exc}); install it with pip install -e web_app") from None
    from spml_core.registry import Registry, print_load_errors

    if args.model is not None and not args.model.exists():
        raise SpmlError(f"--model {args.model}: model bundle not found")
    if args.models_dir is not None and args.models_dir.exists() and not args.models_dir.is_dir():
        raise SpmlError(f"--models-dir {args.models_dir}: not a folder")
    if not 0 <= args.port <= 65535:
        raise SpmlError(f"--port {args.port}: must be 0..65535")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"spml serve: warning: binding {args.host} makes the app reachable from other machines; "
              "it has no authentication", flush=True)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    registry = Registry().load()
    print_load_errors(registry)
    actuation: dict[str, Any] = {}
    if args.config is not None:
        from spml_core.config import load_config

        spml_config = load_config(args.config)
        actuation = {"actuators": spml_config.actuators, "actuation_dir": spml_config.base_dir}
        _print_actuators(args.config, spml_config)
    config = {
        "model": args.model,
        "models_dir": args.models_dir,
        "every": args.every,
        "pose_model": args.pose_model,
        "decision_frames": args.decision_frames,
        "cors_allowed_origins": args.cors_origin,
        "max_upload_bytes": int(args.max_upload_mb * (1 << 20)),
        "message_queue": args.message_queue,
        "message_queue_channel": args.message_queue_channel,
        **actuation,
    }
    try:
        app = create_app(config, registry=registry)
    except ConfigError as exc:
        if args.config is not None and str(exc).startswith("actuators."):
            # The hub names the key path; the user also needs the file.
            raise ConfigError("\n".join(f"{args.config}: {line}" for line in str(exc).splitlines())) from None
        raise
    if args.message_queue:
        from spml_web.message_queue import redact

        print(f"spml serve: sharing rooms and broadcasts through {redact(args.message_queue)} "
              f"(channel {args.message_queue_channel})", flush=True)
    serve_forever(app, args.host, args.port)
    return 0


def _print_actuators(path: Path, cfg: Any) -> None:
    if not cfg.actuators:
        print(f"spml serve: {path} has no actuators: block; predictions drive no device", flush=True)
    for a in cfg.actuators:
        log = cfg.resolve(a.log) if a.log is not None else "no log"
        print(f"spml serve: actuator {a.label} ({a.use}, run_in {a.run_in}; actions logged to {log})", flush=True)
