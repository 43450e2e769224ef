"""What one app instance holds (settings, plugins, models, live sessions), on ``app.extensions["spml"]``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from flask_socketio import SocketIO
from spml_core import ActuationHub
from spml_core.registry import Registry

from spml_web.catalog import ModelCatalog
from spml_web.concurrency import Runner
from spml_web.recording import SessionArchive
from spml_web.sessions import SessionStore
from spml_web.settings import WebConfig


@dataclass
class WebState:
    """What one app instance holds: settings, plugins, models and the live sessions."""

    config: WebConfig
    registry: Registry
    catalog: ModelCatalog
    sessions: SessionStore
    socketio: SocketIO
    actuation: ActuationHub
    archive: SessionArchive
    runner: Runner = field(default_factory=lambda: Runner("threading"))
    started_at: float = field(default_factory=time.time)
    closed: bool = False
    batcher: Any = None  # gevent mode: spml_web.batcher.Batcher, made by register_socket


def state(app: Flask | None = None) -> WebState:
    """The spml state of an app (the current one by default)."""

    return (app or current_app).extensions["spml"]
