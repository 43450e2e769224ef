"""Per-connection live state: each Socket.IO session has its own model stream, window, decision
state, actuation session and (for server-side pose) its own estimator. Nothing is shared between
sessions except the read-only loaded model and the app's actuators (whose runners take actions
from every session); state is created on connect and dropped on disconnect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core import DecisionConfig, DecisionEngine
from spml_core.errors import TimestampError
from spml_web.inbox import Inbox
from spml_web.protocol import ProtocolError

if TYPE_CHECKING:
    from spml_core import ActuationSession, Predictor, StreamPredictor
    from spml_core.components import PoseEstimator
    from spml_web.recording import SessionRecorder


@dataclass
class LiveSession:
    """The state of one connected client."""

    sid: str
    every: int
    decision_frames: int
    decision_threshold: float
    max_gap_ms: float = 1000.0
    model_name: str | None = None
    predictor: Predictor | None = None
    stream: StreamPredictor | None = None
    stream_size: tuple[int, int] | None = None
    gaps: int = 0
    decisions: DecisionEngine | None = None
    decision: str | None = None
    estimator: PoseEstimator | None = None
    actuation: ActuationSession | None = None
    recorder: SessionRecorder | None = None
    inbox: Inbox = field(default_factory=Inbox)
    ended: bool = False  # end_stream received: nothing is classified until the next frame starts a stream
    frames: int = 0
    filled: int = 0  # frames pushed since the window first filled
    predictions: int = 0
    errors: int = 0
    last_frame: int | None = None
    last_t_ms: float | None = None
    connected_at: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- model -----------------------------------------------------------------------------
    def set_model(self, name: str, predictor: Predictor, every: int | None = None) -> None:
        """Switch this session's model: the window starts empty, as the features may differ."""
        self.model_name = name
        self.predictor = predictor
        if every is not None:
            self.every = every
        self.reset()
        # spml's decision layer over every class of the model (payload: the label), so the page
        # shows the same debounced decision an actuator would act on.
        config = DecisionConfig(
            actions={c: c for c in predictor.classes},
            off="",
            threshold=self.decision_threshold,
            min_bout=self.decision_frames,
            dead_man_ms=None,
        )
        self.decisions = DecisionEngine(config, {c: c.encode() for c in predictor.classes}, b"", actuator="page")

    def clear_model(self) -> None:
        """No model ("(none)" in the page): classification stops; frames may still be recorded."""
        self.reset()
        self.model_name = None
        self.predictor = None
        self.decisions = None

    def reset(self) -> None:
        """Forget buffered frames and timing (a new source, or a restarted replay)."""
        self.stream = None
        self.stream_size = None
        self.filled = 0
        self.last_frame = None
        self.last_t_ms = None
        self.decision = None
        if self.decisions is not None:
            self.decisions.end()

    def _stream_for(self, width: int | None, height: int | None) -> StreamPredictor:
        assert self.predictor is not None
        size = (width, height) if width and height else None
        if self.stream is None or (size is not None and size != self.stream_size):
            try:
                self.stream = self.predictor.new_stream(width, height)
            except Exception as exc:  # no frame size from the client or the bundle
                raise ProtocolError(f"keypoints: {exc}; send width and height", code="no_frame_size") from None
            self.stream_size = size
            self.filled = 0
        return self.stream

    # -- frames ----------------------------------------------------------------------------
    def check_order(self, frame: int, t_ms: float, event: str) -> None:
        """Frames of a stream must advance in time; a restart must say so with a reset event."""
        if self.last_t_ms is not None and t_ms < self.last_t_ms:
            raise ProtocolError(
                f"{event}: t_ms {t_ms} is earlier than the previous frame's {self.last_t_ms}; "
                "emit reset before restarting a stream",
                code="out_of_order",
            )

    def push(
        self, frame: int, t_ms: float, xyzv: np.ndarray, width: int | None, height: int | None,
        received: float | None = None,
    ) -> dict[str, Any] | None:
        """Add one frame; returns the result payload when one is due, else None.

        Every result carries ``status`` (ok, warming_up, no_person, low_visibility, too_slow) and
        ``age_ms``: the time since the server received the frame (``received``, perf_counter).
        """
        stream = self.begin(frame, t_ms, width, height)
        try:
            result = stream.push(xyzv, t_ms)
        except TimestampError as exc:
            raise ProtocolError(f"keypoints: {exc}", code=exc.code) from None
        return self.finish(frame, t_ms, result, received)

    def begin(self, frame: int, t_ms: float, width: int | None, height: int | None) -> StreamPredictor:
        """The first half of push: check the frame and return the stream it goes to (push or push_many)."""
        if self.predictor is None:
            raise ProtocolError(
                "no model selected: emit select_model {name} first (GET /api/models lists them)", code="no_model"
            )
        self.check_order(frame, t_ms, "keypoints")
        if self.stream is not None and self.last_t_ms is not None and t_ms - self.last_t_ms > self.max_gap_ms:
            # A pause (camera stalled, tab hidden): frames from before it must not share a window
            # with frames after it, so the window starts again.
            self.stream.reset()
            self.filled = 0
            self.gaps += 1
        return self._stream_for(width, height)

    def finish(self, frame: int, t_ms: float, result: dict[str, Any] | None,
               received: float | None = None) -> dict[str, Any] | None:
        """The second half of push: count the frame and turn the stream's result into the payload, if one is due."""
        stream = self.stream
        assert stream is not None and self.predictor is not None
        self.frames += 1
        self.last_frame, self.last_t_ms = frame, t_ms
        if result is None:
            return None
        if result["status"] != "warming_up":
            # `every` counts from the first full window; warming-up results all go out (the page says so).
            self.filled += 1
            if (self.filled - 1) % self.every:
                return None
        self.predictions += 1
        label, probabilities, status = result["label"], result["probabilities"], result["status"]
        actions = self.decisions.update(t_ms, label, probabilities, frame, status) if self.decisions else []
        for action in actions:
            if action.action == "on":
                self.decision = action.label
            elif action.action == "off":
                self.decision = None
        timing = stream.timing
        return {
            "frame": frame,
            "t_ms": t_ms,
            "label": label,
            "probabilities": probabilities,
            "status": status,
            "input_fps": result.get("input_fps"),
            "bundle_fps": timing.fps,
            "min_input_fps": timing.min_input_fps,
            "age_ms": 0.0 if received is None else (time.perf_counter() - received) * 1000.0,
            "model": self.model_name,
            "window": self.predictor.window,
            "window_ms": timing.window_ms,
            "decision": self.decision,
            "actions": [{"action": a.action, "label": a.label, "reason": a.reason} for a in actions],
        }

    def stale(self, t_ms: float, frame: int | None) -> None:
        """A frame was dropped as late: it never actuates, and a device it would keep on goes off."""
        if self.actuation is not None:
            self.actuation.on_prediction(t_ms, None, None, frame, "stale")
        if self.decisions is not None:
            for action in self.decisions.update(t_ms, None, None, frame, "stale"):
                if action.action == "off":
                    self.decision = None

    def act(self, result: dict[str, Any]) -> None:
        """Feed a prediction (emitted right after) to the actuators' decision layer; never waits for a device."""
        if self.actuation is not None:
            self.actuation.on_prediction(result["t_ms"], result["label"], result["probabilities"], result["frame"],
                                         result.get("status", "ok"))

    def end_actuation(self) -> None:
        """The stream stopped: devices this session turned on get their off action (reason stream_end)."""
        if self.actuation is not None:
            self.actuation.close()
            self.actuation = None

    def stop_recording(self) -> dict[str, Any] | None:
        """Finish this session's recording (its folder is complete afterwards); its summary, if one ran."""
        recorder, self.recorder = self.recorder, None
        return recorder.close() if recorder is not None else None

    def close(self) -> None:
        """Release native resources (the server-side estimator) and end the actuation session."""
        self.end_actuation()
        self.stop_recording()
        if self.estimator is not None:
            self.estimator.close()
            self.estimator = None


class SessionStore:
    """Thread-safe map of Socket.IO session id to LiveSession."""

    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def add(self, session: LiveSession) -> None:
        """Register a new session."""
        with self._lock:
            self._sessions[session.sid] = session

    def get(self, sid: str) -> LiveSession | None:
        """The session of a connection, if it is still connected."""
        return self._sessions.get(sid)

    def pop(self, sid: str) -> LiveSession | None:
        """Remove and return a session (on disconnect)."""
        with self._lock:
            return self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[LiveSession]:
        """A snapshot of the connected sessions."""
        with self._lock:
            return list(self._sessions.values())

    def summary(self) -> list[dict[str, Any]]:
        """Per-session counters for /api/health (no ids)."""
        with self._lock:
            sessions = list(self._sessions.values())
        return [
            {"model": s.model_name, "frames": s.frames, "predictions": s.predictions, "errors": s.errors}
            for s in sessions
        ]
