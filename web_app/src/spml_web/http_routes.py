"""The HTTP side of the app: the page and its assets, the model API, health, and the request guards."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, jsonify, request, send_from_directory
from spml_core import POSE_CONNECTIONS
from spml_core import __version__ as core_version
from spml_core.registry import Registry
from werkzeug.exceptions import HTTPException

from spml_web import __version__
from spml_web.catalog import CatalogError
from spml_web.guard import csrf_token, same_origin_problem
from spml_web.settings import WebConfig
from spml_web.state import state
from spml_web.vendor import STATIC_DIR, vendor_status

log = logging.getLogger("spml.web")

POSE_MODEL_NAMES = ("lite", "full", "heavy")
# Everything the page loads comes from this server; 'wasm-unsafe-eval' lets MediaPipe compile its wasm.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def pose_model_files(registry: Registry) -> dict[str, Path]:
    """The model files installed pose estimators offer the page (PoseEstimator.browser_models), by name."""
    found: dict[str, Path] = {}
    for estimator in registry.names("pose_estimator"):
        for name, path in registry.get("pose_estimator", estimator).browser_models().items():
            if name in POSE_MODEL_NAMES:
                found.setdefault(name, path)
    return found


def register_http(app: Flask) -> None:
    """The page, its assets, /api/* and the guards in front of them (Host allow-list, same origin + CSRF)."""
    csrf = csrf_token(app.config["SECRET_KEY"])

    @app.before_request
    def _same_origin_only() -> Any:
        cfg = state().config
        problem = same_origin_problem(request.method, request.headers, request.host_url,
                                      cfg.cors_allowed_origins or (), csrf)
        if problem:
            log.info("%s %s refused: %s", request.method, request.path, problem)
            return jsonify({"error": problem}), 403
        return None

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            message = exc.description
            if exc.code == 413:
                message = f"upload is larger than the {state().config.max_upload_bytes}-byte limit"
            return jsonify({"error": message}), exc.code
        return exc

    @app.get("/")
    def index() -> Any:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/api/config")
    def api_config() -> Any:
        st = state()
        pose_models = sorted(pose_model_files(st.registry), key=POSE_MODEL_NAMES.index)
        return jsonify(
            {
                "version": __version__,
                "every": st.config.every,
                "model": st.catalog.default_name,
                "pose_models": pose_models,
                "pose_model": st.config.pose_model,
                "browser_pose": bool(vendor_status()["complete"]) and bool(pose_models),
                "server_pose": st.config.pose_estimator in st.registry.names("pose_estimator"),
                "connections": [list(c) for c in POSE_CONNECTIONS],
                "limits": client_limits(st.config),
                "recording": {"enabled": st.archive.root is not None, "all": st.config.record},
                "uploads": st.catalog.models_dir is not None,
                "csrf_token": csrf,
            }
        )

    @app.get("/api/plugins")
    def api_plugins() -> Any:
        # The same records as `spml plugins --json` (third-party plugins, not spml-core's built-ins).
        st = state()
        return jsonify([r.as_json() for r in st.registry.records if r.status != "builtin"])

    @app.get("/api/components")
    def api_components() -> Any:
        st = state()
        kinds = ("pose_estimator", "model", "actuator", "feature_extractor")
        return jsonify({k: st.registry.names(k) for k in kinds})

    @app.get("/api/models")
    def api_models() -> Any:
        st = state()
        return jsonify({"models": st.catalog.describe(), "default": st.catalog.default_name,
                        "uploads": st.catalog.models_dir is not None})

    @app.post("/api/models")
    def api_upload() -> Any:
        st = state()
        upload = request.files.get("bundle")
        if upload is None:
            return jsonify({"error": "no file: send the bundle zip as multipart field 'bundle'"}), 400
        name = request.form.get("name") or None
        try:
            model = st.catalog.add_upload(upload.stream, upload.filename or "", name, st.config.max_upload_bytes)
        except CatalogError as exc:
            log.info("upload refused: %s", exc)
            return jsonify({"error": str(exc)}), exc.status
        st.socketio.emit("models", {"models": st.catalog.describe()})
        return jsonify({"model": model}), 201

    @app.get("/api/health")
    def api_health() -> Any:
        st = state()
        return jsonify({"status": "ok", "version": __version__, "spml_core": core_version,
                        "uptime_s": round(time.time() - st.started_at, 1), "sessions": st.sessions.summary(),
                        "actuators": st.actuation.status(),
                        "fairness": current_app.extensions["spml_fairness"].stats(), "pid": os.getpid(),
                        "batches": _batches(st)})

    @app.get("/pose-models/<name>.task")
    def pose_model(name: str) -> Any:
        path = pose_model_files(state().registry).get(name)
        if path is None:
            abort(404, description=f"pose model {name!r} is not installed (lite, full or heavy; run make setup)")
        return send_from_directory(path.parent, path.name, mimetype="application/octet-stream", max_age=3600)


def _batches(st: Any) -> dict[str, Any] | None:
    """Frames classified together per turn of the hub's loop (gevent mode), since start."""
    b = st.batcher
    if b is None:
        return None
    return {"turns": b.turns, "frames": b.frames, "mean_size": round(b.frames / b.turns, 2) if b.turns else None}


def client_limits(cfg: WebConfig) -> dict[str, int]:
    """The message size limits the page must respect."""
    return {"max_message_bytes": cfg.max_message_bytes, "max_frame_bytes": cfg.max_frame_bytes,
            "max_frame_pixels": cfg.max_frame_pixels, "max_upload_bytes": cfg.max_upload_bytes}


# ------------------------------------------------------------------------------ Socket.IO
