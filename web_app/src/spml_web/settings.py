"""Settings of the live web app (what `spml serve` and `create_app(config)` accept)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spml_core.config import ActuatorConfig
from spml_core.errors import ConfigError

MiB = 1 << 20


class WebConfig(BaseModel):
    """Validated settings of one web app; unknown keys are errors so typos are caught."""

    model_config = ConfigDict(extra="forbid")

    models_dir: Path | None = Field(
        default=None, description="Folder of model bundles offered to clients (and where uploads go)"
    )
    model: Path | None = Field(
        default=None, description="Bundle every new session starts with (a folder or .zip); else none"
    )
    every: int = Field(default=1, ge=1, le=1000, description="Emit a prediction every k frames once the window is full")
    pose_estimator: str = Field(default="mediapipe", description="Estimator component for server-side pose (frame event)")
    pose_model: str = Field(default="lite", description="Estimator model for server-side pose and the page's default")
    max_gap_ms: float = Field(
        default=1000.0, gt=0, description="A pause longer than this between frames starts a new window"
    )
    max_age_ms: float = Field(
        default=250.0, gt=0, description="A frame older than this since the server received it is dropped as late "
        "(never classified, never actuates); after a stall the backlog is discarded"
    )
    batch_wait_ms: float = Field(
        default=20.0, ge=0, le=50, description="gevent mode, at least 4 sessions on the worker: how long a turn of the "
        "batcher waits for other sessions' frames to classify them together (0: never waits)"
    )
    decision_frames: int = Field(
        default=3, ge=1, le=1000, description="Consecutive predictions a label needs before it becomes the decision"
    )
    decision_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Minimum probability for a prediction to count toward a decision"
    )
    max_message_bytes: int = Field(
        default=2 * MiB, ge=4096, description="Hard limit on one Socket.IO message (engine.io max_http_buffer_size)"
    )
    max_frame_bytes: int = Field(default=1 * MiB, ge=1024, description="Largest JPEG accepted by the frame event")
    max_frame_pixels: int = Field(default=4096, ge=16, description="Largest JPEG width or height accepted")
    max_upload_bytes: int = Field(default=64 * MiB, ge=1024, description="Largest bundle zip accepted by POST /api/models")
    max_sessions: int = Field(default=64, ge=1, description="Connections refused beyond this many")
    secret_key: str | None = Field(default=None, description="Flask secret key; random per process when unset")
    cors_allowed_origins: list[str] | None = Field(
        default=None, description="Extra origins allowed to open a Socket.IO connection; None means same origin only"
    )
    message_queue: str | None = Field(
        default=None,
        description="Redis URL (redis://HOST:PORT/DB) through which several app processes share rooms and broadcasts",
    )
    message_queue_channel: str = Field(
        default="spml", min_length=1, description="Redis pub/sub channel; one per deployment sharing a Redis server"
    )
    actuators: list[ActuatorConfig] = Field(
        default_factory=list,
        description="Actuators driven by every session's predictions (config.yml's actuators: block; docs/actuation.md)",
    )
    actuation_dir: Path | None = Field(
        default=None,
        description="Folder that relative actuator paths (action logs) resolve against: the config file's folder",
    )
    sessions_dir: Path | None = Field(
        default=None, description="Folder of recorded session folders (the page's Record control); None: no recording"
    )
    record: bool = Field(default=False, description="Record every session's streams (needs sessions_dir)")
    peer_compat: bool = Field(
        default=False, description="Also accept StreamPoseML's web client: its keypoints payload (a "
        "PoseLandmarkerResult) and frame_result replies (spml_web.peer_compat)",
    )
    peer_true_class: str | None = Field(
        default=None, description="With peer_compat: the label that makes frame_result.classification true "
        "(default: a two-class bundle's second class)",
    )
    ping_interval: float = Field(default=10.0, gt=0, description="Engine.IO ping interval in seconds")
    ping_timeout: float = Field(default=20.0, gt=0, description="Engine.IO ping timeout in seconds")
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="Host names (or host:port) HTTP and Socket.IO requests may address; None means localhost names "
        "and the bound address. Refuses DNS rebinding; '*' switches the check off (only behind a proxy that checks)",
    )
    access_token: str | None = Field(
        default=None, min_length=16,
        description="When set, every API request and Socket.IO connection must carry it (LAN use; docs/web_app.md)",
    )
    max_events_per_s: float = Field(
        default=120.0, gt=0, description="Socket.IO events one connection may send per second (bursts of 4 s worth); "
        "the excess is dropped with a `rate_limited` notice",
    )
    idle_timeout_s: float = Field(
        default=60.0, gt=0,
        description="A connection that sends no event for this long is closed (answering pings does not count)",
    )
    max_sessions_per_client: int | None = Field(
        default=None, ge=1, description="Connections one IP address may hold at once; unset: 16 for remote "
        "addresses, no limit for loopback (a reverse proxy on this machine speaks for many clients)",
    )
    websocket_only: bool = Field(
        default=False, description="Offer only the WebSocket transport (set by spml serve --workers N > 1)"
    )
    async_mode: Literal["threading", "gevent"] | None = Field(
        default=None, description="How connections run: greenlets on one hub per process (gevent, several times "
        "cheaper per frame), or one OS thread per connection (threading); unset: gevent, or threading with a "
        "message queue (docs/web_app.md)"
    )
    bundle_check_timeout_s: float = Field(
        default=60.0, gt=0, description="Time an uploaded bundle's trial load and run in a child process may take"
    )
    bundle_check_memory_mb: int = Field(
        default=4096, ge=256, description="Address-space limit of that child process in MiB"
    )

    @field_validator("cors_allowed_origins")
    @classmethod
    def _no_wildcard(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and "*" in v:
            raise ValueError("'*' would let any web page drive the sessions; list the exact origins instead")
        return v

    @field_validator("message_queue")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://")):
            raise ValueError("expected a Redis URL like redis://HOST:6379/0 (or rediss:// for TLS)")
        return v

    @model_validator(mode="after")
    def _async_mode(self) -> WebConfig:
        if self.async_mode is None:
            self.async_mode = "threading" if self.message_queue else "gevent"
        elif self.async_mode == "gevent" and self.message_queue:
            # Without monkey-patching, the Redis client's blocking reads would stall every connection.
            raise ValueError("async_mode gevent cannot use the Redis message queue: use async_mode threading")
        return self

    @field_validator("actuators")
    @classmethod
    def _unique_actuators(cls, v: list[ActuatorConfig]) -> list[ActuatorConfig]:
        return ActuatorConfig.check_unique(v)

    @field_validator("record")
    @classmethod
    def _record_needs_a_folder(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("sessions_dir") is None:
            raise ValueError("recording every session needs sessions_dir (--sessions-dir DIR), the folder they go to")
        return v

    def resolved_secret(self) -> str:
        """The configured secret key, or a fresh random one for this process."""
        return self.secret_key or secrets.token_hex(32)


def as_config(config: WebConfig | Mapping[str, Any] | None) -> WebConfig:
    """Validate a mapping into a WebConfig, raising ConfigError naming the bad key."""
    if isinstance(config, WebConfig):
        return config
    try:
        return WebConfig.model_validate(dict(config or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"web app settings: {problems}") from None
