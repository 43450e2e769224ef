"""`spml serve`: the live classification web app, a command spml-web adds to `spml` (hook spml_cli_commands)."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from spml_core import vet_bundle
from spml_core import CliCommand
from spml_core.errors import ConfigError, SpmlError

# Built-in values of the options that config.yml's `serve:` block may also set; the command line wins.
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1", "port": 5001, "every": 1, "pose_model": "lite", "decision_frames": 3,
    "max_upload_mb": 64.0, "message_queue_channel": "spml", "workers": 1,
}
PATH_KEYS = ("model", "models_dir", "sessions_dir")
# Settings of the app that the serve: block must not set, and what to use instead.
NOT_IN_BLOCK = {
    "actuators": "put them in the config's top-level actuators: block",
    "actuation_dir": "actuator paths resolve against the config file's folder",
    "max_upload_bytes": "use max_upload_mb",
}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `spml serve` on a subparsers object."""
    p = sub.add_parser(
        "serve",
        help="serve the live classification web app (camera/video -> pose -> model, in the browser)",
        description="Serve the live web app: a page that estimates pose in the browser (or sends frames "
        "to the server) and streams keypoints over Socket.IO to a model bundle. Binds 127.0.0.1 by default. "
        "Options may also come from the `serve:` block of --config; the command line wins.",
    )
    p.add_argument("--model", type=Path, help="model bundle (folder or .zip from `spml train`) every session starts with")
    p.add_argument("--models-dir", type=Path,
                   help="folder of model bundles clients can choose from; uploads (POST /api/models) go here")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=int, help="TCP port (default 5001; 0 picks a free one)")
    p.add_argument("--every", type=int, metavar="K",
                   help="emit a prediction every K frames once the window is full (default 1)")
    p.add_argument("--pose-model", choices=("lite", "full", "heavy"),
                   help="MediaPipe model for server-side pose and the page's default (default lite)")
    p.add_argument("--config", type=Path, metavar="CONFIG_YML",
                   help="spml config: its `actuators:` block is driven by the live predictions (BLE, OSC, ...; "
                        "docs/actuation.md) and its `serve:` block sets any of these options; paths resolve "
                        "against its folder. Without it: no actuators")
    p.add_argument("--decision-frames", type=int, metavar="N",
                   help="consecutive predictions a class needs before it becomes the decision (default 3)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="extra origin allowed to connect (repeatable); by default only the page's own origin")
    p.add_argument("--max-upload-mb", type=float, help="largest bundle upload in MiB (default 64)")
    p.add_argument("--message-queue", metavar="redis://HOST:PORT/DB",
                   help="share Socket.IO rooms and broadcasts with other spml serve processes through Redis "
                        "(run them behind a load balancer with sticky sessions; see docs/scale-out.md)")
    p.add_argument("--message-queue-channel", metavar="NAME",
                   help="Redis channel of this deployment (default spml)")
    p.add_argument("--peer-compat", action="store_true", default=None,
                   help="also accept StreamPoseML's web client (its keypoints payload, frame_result replies)")
    p.add_argument("--peer-true-class", metavar="LABEL",
                   help="with --peer-compat: the label that makes frame_result.classification true")
    p.add_argument("--sessions-dir", type=Path, metavar="DIR",
                   help="folder for recorded sessions: turns on the page's Record control and the Sessions list "
                        "(one folder per stream: keypoints.parquet, events.jsonl, session.json, video.webm)")
    p.add_argument("--record", action="store_true", default=None,
                   help="record every session's streams into --sessions-dir (the page's Record box starts ticked)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="server processes sharing the port (default 1; 0 = one per core); more than one serves "
                        "WebSocket clients only and cannot drive server-side actuators (docs/web_app.md)")
    p.add_argument("--async-mode", choices=("gevent", "threading"),
                   help="how connections run: greenlets on one hub per process (gevent, the default: several "
                        "times cheaper per frame) or a thread each (threading; needed with --message-queue)")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="host name clients use to reach the server (repeatable); default: localhost names and the "
                        "bound address. Requests for other names are refused (DNS rebinding)")
    p.add_argument("--max-events-per-s", type=float, metavar="R",
                   help="Socket.IO events one connection may send per second (default 120); the excess is dropped")
    p.add_argument("--idle-timeout", type=float, metavar="S",
                   help="close connections that send nothing for S seconds (default 60)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every HTTP request")
    return p


def settings_from(args: argparse.Namespace, spml_config: Any = None) -> dict[str, Any]:
    """Built-in defaults, then the config's `serve:` block, then the flags given on the command line."""
    settings = dict(DEFAULTS)
    if spml_config is not None:
        block = dict(spml_config.serve)
        for key, instead in NOT_IN_BLOCK.items():
            if key in block:
                raise ConfigError(f"{args.config}: serve.{key}: not a serve setting; {instead}")
        if "cors_origin" in block:  # the flag's name, accepted for symmetry with the command line
            block["cors_allowed_origins"] = block.pop("cors_origin")
        for key in PATH_KEYS:
            if block.get(key) is not None:
                block[key] = spml_config.resolve(block[key])
        settings.update(block)
    flags = {"model": args.model, "models_dir": args.models_dir, "host": args.host, "port": args.port,
             "every": args.every, "pose_model": args.pose_model, "decision_frames": args.decision_frames,
             "cors_allowed_origins": args.cors_origin, "max_upload_mb": args.max_upload_mb,
             "message_queue": args.message_queue, "message_queue_channel": args.message_queue_channel,
             "sessions_dir": getattr(args, "sessions_dir", None), "record": getattr(args, "record", None),
             "peer_compat": getattr(args, "peer_compat", None), "peer_true_class": getattr(args, "peer_true_class", None),
             "workers": getattr(args, "workers", None), "allowed_hosts": getattr(args, "allowed_host", None),
             "max_events_per_s": getattr(args, "max_events_per_s", None),
             "idle_timeout_s": getattr(args, "idle_timeout", None),
             "async_mode": getattr(args, "async_mode", None)}
    if block_token := os.environ.get("SPML_ACCESS_TOKEN"):
        settings.setdefault("access_token", block_token)  # kept off the command line, where `ps` shows it
    settings.update({k: v for k, v in flags.items() if v is not None})
    return settings


class ServeSettings:
    """The web app's settings from flags and config, with where each value came from for error messages."""

    def __init__(self, args: argparse.Namespace, spml_config: Any = None, check_paths: bool = True) -> None:
        self.args, self.spml_config = args, spml_config
        self.settings = settings_from(args, spml_config)
        self.host: str = self.settings.pop("host")
        self.port: int = self.settings.pop("port")
        self.workers: int = self.settings.pop("workers", 1)
        self._check(check_paths)

    def where(self, key: str) -> str:
        """The flag or the config key a value came from."""
        flag = "cors_origin" if key == "cors_allowed_origins" else key
        cfg = self.spml_config
        if getattr(self.args, flag, None) is None and cfg is not None and key in cfg.serve:
            return f"{self.args.config}: serve.{key}"
        return f"--{flag.replace('_', '-')}"

    def _check(self, check_paths: bool) -> None:
        settings, where = self.settings, self.where
        if check_paths and settings.get("model") is not None and not Path(settings["model"]).exists():
            raise SpmlError(f"{where('model')} {settings['model']}: model bundle not found")
        models_dir = settings.get("models_dir")
        if check_paths and models_dir is not None and Path(models_dir).exists() and not Path(models_dir).is_dir():
            raise SpmlError(f"{where('models_dir')} {models_dir}: not a folder")
        workers = self.workers
        if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= 256:
            raise SpmlError(f"{where('workers')} {workers!r}: must be an integer 0..256 (0: one per core)")
        self.workers = workers or (os.cpu_count() or 1)
        port = self.port
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise SpmlError(f"{where('port')} {port!r}: must be an integer 0..65535")
        mb = settings.pop("max_upload_mb")
        if not isinstance(mb, int | float) or isinstance(mb, bool):
            raise SpmlError(f"{where('max_upload_mb')} {mb!r}: expected a number of MiB")
        settings["max_upload_bytes"] = int(mb * (1 << 20))
        if self.spml_config is not None:
            settings.update(actuators=self.spml_config.actuators, actuation_dir=self.spml_config.base_dir)

    def explain(self, exc: ConfigError) -> ConfigError:
        """The validators name the setting; the user needs the flag, or the file and key, it came from."""
        lines = []
        for line in str(exc).splitlines():
            if line.startswith("actuators."):
                lines.append(f"{self.args.config}: {line}")
            elif line.startswith("web app settings: "):
                for problem in line.removeprefix("web app settings: ").split("; "):
                    key, _, msg = problem.partition(": ")
                    lines.append(f"{self.where(key)}: {msg}" if msg else problem)
            else:
                lines.append(line)
        return ConfigError("\n".join(lines))

    def validate(self) -> None:
        """Validate the settings as the app will."""
        from spml_web.settings import as_config

        try:
            as_config(self.settings)
        except ConfigError as exc:
            raise self.explain(exc) from None


def validate_serve_block(config_path: Path) -> None:
    """Check a config's serve: block as `spml serve --config` would, without serving.

    Bundle paths may not exist yet: the config's own train stage may be what makes them.
    """
    from spml_core.config import load_config

    parser = argparse.ArgumentParser(prog="spml")
    args = add_parser(parser.add_subparsers()).parse_args(["--config", str(config_path)])
    ServeSettings(args, load_config(config_path), check_paths=False).validate()


def run(args: argparse.Namespace) -> int:
    """Build the app from the installed plugins and serve it until Ctrl-C."""
    import logging

    from spml_core.registry import Registry, print_load_errors
    from spml_web.app import create_app
    from spml_web.server import serve_forever
    from spml_web.settings import as_config
    from spml_web.workers import serve_workers

    spml_config = None
    if args.config is not None:
        from spml_core.config import load_config

        spml_config = load_config(args.config)
    serve = ServeSettings(args, spml_config)
    if serve.host not in ("127.0.0.1", "localhost", "::1") and not serve.settings.get("access_token"):
        print(f"spml serve: warning: binding {serve.host} makes the app reachable from other machines; "
              "set an access token (SPML_ACCESS_TOKEN or serve.access_token; docs/web_app.md)", flush=True)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    registry = getattr(args, "_registry", None) or Registry().load()
    print_load_errors(registry)
    if spml_config is not None:
        _print_actuators(args.config, spml_config)
    model = serve.settings.get("model")
    if model is not None:
        # The bundle is tried in a child process first: corrupt weights that crash the loader end
        # that child with a clear message, never this server.
        vet_bundle(model)
    if serve.workers > 1:
        serve.settings["websocket_only"] = True
        serve.settings.setdefault("secret_key", secrets.token_hex(32))  # one CSRF token across the workers
        if any(a.run_in == "server" for a in serve.settings.get("actuators") or []):
            raise SpmlError(f"{serve.where('workers')} {serve.workers}: server-side actuators need one process "
                            "(each worker would drive the device); use --workers 1")
    try:
        as_config(serve.settings)
    except ConfigError as exc:
        raise serve.explain(exc) from None
    if serve.workers > 1:
        serve_workers(lambda: create_app(serve.settings, registry=registry), serve.host, serve.port, serve.workers)
        return 0
    try:
        app = create_app(serve.settings, registry=registry)
    except ConfigError as exc:
        raise serve.explain(exc) from None
    queue = serve.settings.get("message_queue")
    if queue:
        from spml_web.message_queue import redact

        print(f"spml serve: sharing rooms and broadcasts through {redact(queue)} "
              f"(channel {serve.settings['message_queue_channel']})", flush=True)
    serve_forever(app, serve.host, serve.port)
    return 0


def _print_actuators(path: Path, cfg: Any) -> None:
    if not cfg.actuators:
        print(f"spml serve: {path} has no actuators: block; predictions drive no device", flush=True)
    for a in cfg.actuators:
        log = cfg.resolve(a.log) if a.log is not None else "no log"
        print(f"spml serve: actuator {a.label} ({a.use}, run_in {a.run_in}; actions logged to {log})", flush=True)


class ServeCommand(CliCommand):
    """`spml serve`."""

    name = "serve"

    def add_parser(self, sub: Any) -> argparse.ArgumentParser:
        """Register `spml serve`."""
        return add_parser(sub)

    def run(self, args: argparse.Namespace) -> int:
        """Serve until Ctrl-C."""
        return run(args)

    def validate_config(self, config: Any, path: Path) -> None:
        """`spml config validate`: the serve: block as `spml serve --config` would read it."""
        if config.serve:
            validate_serve_block(path)
