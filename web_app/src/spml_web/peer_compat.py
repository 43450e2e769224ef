"""StreamPoseML web-client compatibility: its `keypoints` payload in, its `frame_result` reply out.

StreamPoseML 0.3.1's React client (``web_ui``) emits, per camera frame, the MediaPipe Tasks
``PoseLandmarkerResult`` it got in the browser, as is::

    {"landmarks": [[{"x", "y", "z", "visibility"} x 33]], "worldLandmarks": [[...]], ...}

with no frame number or time, and listens for ``frame_result`` events whose ``classification``
is ``true`` to write to its Bluetooth device. With ``peer_compat: true`` (``spml serve
--peer-compat``) spml accepts that payload on the same ``keypoints`` event: it numbers the
frames itself and stamps them with the server's clock on arrival, then classifies them like any
other frame. Every prediction is then also sent as ``frame_result``:
``{"classification": bool, "label", "probabilities", "status", "timestamp", "frame", "model",
"total_processing_time_ms"}``. ``classification`` is true only when the status is ``ok`` and the
label is ``peer_true_class`` (for a two-class bundle without that setting, its second class, as
StreamPoseML's ``bool(prediction)`` with labels mapped to 0/1); no person, warming up, too-slow
input or any other label is false, so the client's device stays off.

StreamPoseML's client smooths landmarks itself (an exponential moving average, factor 0.6) before
sending; they are classified as received, not filtered again. spml's own page and extraction use a
One Euro filter instead (docs/live.md, "Landmark smoothing"), so for the closest match train the
bundle on keypoints smoothed the way the client sends them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from spml_core import N_LANDMARKS

from spml_web.protocol import ProtocolError

PEER_FIELDS = frozenset({"landmarks", "worldLandmarks", "segmentationMasks"})


@dataclass
class PeerState:
    """Per connection: the next frame number and the clock origin of a StreamPoseML client."""

    frame: int = 0
    t0: float | None = None
    last_t_ms: float = -1.0


def is_peer_payload(payload: Any) -> bool:
    """True for a PoseLandmarkerResult as StreamPoseML's client sends it (no spml frame/t_ms fields)."""
    return (isinstance(payload, dict) and "frame" not in payload and "t_ms" not in payload
            and "landmarks" in payload and set(payload) <= PEER_FIELDS)


def _state(session: Any) -> PeerState:
    state = getattr(session, "peer_state", None)
    if state is None:
        state = PeerState()
        session.peer_state = state
    return state


def _rows(poses: Any) -> list[list[float]] | None:
    """The first pose's 33 landmarks as [x, y, z, visibility] rows; None when no pose was found."""
    if not isinstance(poses, list):
        raise ProtocolError("keypoints.landmarks (StreamPoseML client) must be a list of poses")
    if not poses:
        return None
    pose = poses[0]
    if not isinstance(pose, list) or len(pose) != N_LANDMARKS:
        raise ProtocolError(f"keypoints.landmarks[0] (StreamPoseML client) must be {N_LANDMARKS} landmark objects, "
                            f"got {len(pose) if isinstance(pose, list) else type(pose).__name__}")
    rows = []
    for i, p in enumerate(pose):
        if not isinstance(p, dict) or not {"x", "y", "z"} <= set(p):
            raise ProtocolError(f"keypoints.landmarks[0][{i}] must be an object with x, y, z (and visibility)")
        rows.append([p["x"], p["y"], p["z"], p.get("visibility", 1.0)])
    return rows


def to_spml_keypoints(session: Any, payload: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The spml `keypoints` payload for a StreamPoseML one: frame numbered, stamped with the arrival time."""
    state = _state(session)
    clock = time.monotonic() if now is None else now
    if state.t0 is None:
        state.t0 = clock
    t_ms = max((clock - state.t0) * 1000.0, state.last_t_ms + 0.001)  # strictly increasing for the window
    msg = {"frame": state.frame, "t_ms": t_ms, "landmarks": _rows(payload["landmarks"])}
    state.frame += 1
    state.last_t_ms = t_ms
    session.peer = True
    return msg


def reset(session: Any) -> None:
    """A new stream: numbering and clock start again."""
    if getattr(session, "peer_state", None) is not None:
        session.peer_state = PeerState()


def frame_result(result: dict[str, Any], classes: list[str], true_class: str | None) -> dict[str, Any]:
    """StreamPoseML's `frame_result` reply for one spml prediction (fail-safe classification)."""
    positive = true_class if true_class is not None else (classes[1] if len(classes) == 2 else None)
    ok = result.get("status") == "ok" and result.get("label") is not None
    return {
        "classification": bool(ok and positive is not None and result["label"] == positive),
        "label": result.get("label"),
        "probabilities": result.get("probabilities"),
        "status": result.get("status"),
        "timestamp": f"{time.time_ns()}",
        "frame": result.get("frame"),
        "model": result.get("model"),
        "total_processing_time_ms": round(float(result.get("latency_ms") or 0.0), 1),
    }
