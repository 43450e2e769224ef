"""The decision layer: turns a stream of predictions into actuator actions, safely.

A :class:`DecisionEngine` is a pure, deterministic state machine. It is fed
``(t_ms, label, probabilities)`` and returns :class:`Decision` objects; it never reads the
wall clock, so a recorded session replays to exactly the same actions, and tests script it.

Rules, per actuator (all in :class:`DecisionConfig`):

- Only classes named in ``actions`` act. A window *counts* for a class when the model's label
  is that class and its probability is at least ``threshold`` (the enter threshold).
- ``min_bout`` consecutive counting windows start a *bout*; the bout's payload is sent once
  (action ``on``), however long the class is held.
- Hysteresis: a bout lasts while the class's probability stays at or above ``exit_threshold``
  (default: ``threshold``), even if another label wins a window by a small margin.
- When the bout ends the ``off`` payload is sent (action ``off``, reason ``class_end``).
- ``refractory_ms`` and ``max_rate`` limit on-actions only: a bout that starts inside the
  refractory period or over the rate is *suppressed* whole (logged, never sent, and never
  sent late: a stimulus delayed past its moment is wrong, not late).
  Off actions are never limited.
- Dead-man: if no prediction arrives for ``dead_man_ms`` while the device is on, the off
  payload is sent at ``last prediction + dead_man_ms`` (reason ``dead_man``); ``end()`` sends
  it at once when the stream stops (reason ``stream_end``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spml_core.payloads import PayloadError

Action = Literal["on", "off", "suppressed"]


class DecisionConfig(BaseModel):
    """How one actuator turns predictions into actions (``actuators[].decisions`` in config.yml)."""

    model_config = ConfigDict(extra="forbid")

    actions: dict[str, Any] = Field(
        min_length=1, description="Class label -> payload sent once when a bout of that class starts"
    )
    off: Any | None = Field(
        None, description="Neutral payload sent when the class ends or the stream stops; null sends nothing"
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Enter threshold: the class's probability for a window to count")
    exit_threshold: float | None = Field(
        None, ge=0, le=1, description="Hysteresis: a bout lasts while its class's probability is at least this (default: threshold)"
    )
    min_bout: int = Field(1, ge=1, description="Consecutive counting windows needed before acting (debounce)")
    refractory_ms: float = Field(0, ge=0, description="No new on-action within this time after the previous one")
    max_rate: float | None = Field(None, gt=0, description="At most this many on-actions per second")
    dead_man_ms: float | None = Field(
        1000, gt=0, description="Send the off payload when no prediction arrives for this long while on; null disables"
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_off_key(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted `off:` key as the boolean False.
        if isinstance(data, dict) and False in data and "off" not in data:
            data = dict(data)
            data["off"] = data.pop(False)
        return data

    @model_validator(mode="after")
    def _exit_below_enter(self) -> DecisionConfig:
        if self.exit_threshold is not None and self.exit_threshold > self.threshold:
            raise ValueError(
                f"exit_threshold ({self.exit_threshold}) must not exceed threshold ({self.threshold}): "
                "hysteresis keeps a bout on at a lower probability than the one that started it"
            )
        return self

    @property
    def exit(self) -> float:
        """The effective exit threshold."""
        return self.threshold if self.exit_threshold is None else self.exit_threshold


@dataclass(frozen=True)
class Decision:
    """One action (or one suppressed bout) decided from the prediction stream."""

    actuator: str
    action: Action
    label: str
    reason: str
    t_ms: float
    frame: int | None = None
    probability: float | None = None
    payload: bytes | None = None

    def as_record(self) -> dict[str, Any]:
        """JSON-able fields for the action log and the page's ``action`` events."""
        return {
            "actuator": self.actuator,
            "action": self.action,
            "label": self.label,
            "reason": self.reason,
            "t_ms": self.t_ms,
            "frame": self.frame,
            "probability": self.probability,
            "payload_hex": None if self.payload is None else self.payload.hex(),
        }


@dataclass
class _State:
    active: str | None = None  # class of the current bout (fired or suppressed)
    fired: bool = False  # the bout's on payload was sent: the device is on
    candidate: str | None = None
    count: int = 0
    last_t: float | None = None
    last_frame: int | None = None
    on_times: deque[float] = field(default_factory=deque)
    last_on_t: float | None = None


class DecisionEngine:
    """Per-stream decision state for one actuator; feed it predictions in time order."""

    def __init__(
        self,
        config: DecisionConfig,
        payloads: Mapping[str, bytes],
        off_payload: bytes | None = None,
        actuator: str = "actuator",
    ) -> None:
        missing = set(config.actions) - set(payloads)
        if missing:
            raise ValueError(f"no encoded payload for classes {sorted(missing)}")
        self.config = config
        self.payloads = dict(payloads)
        self.off_payload = off_payload
        self.actuator = actuator
        self._rate_n = max(1, math.floor(config.max_rate)) if config.max_rate else 0
        self._rate_window_ms = self._rate_n * 1000.0 / config.max_rate if config.max_rate else 0.0
        self._s = _State()

    @classmethod
    def from_config(
        cls, config: DecisionConfig, encode: Callable[[Any, str], bytes], actuator: str, where: str = "decisions"
    ) -> DecisionEngine:
        """Encode every configured payload once; a bad one raises PayloadError naming its key path."""
        payloads = {}
        for label, value in config.actions.items():
            try:
                payloads[label] = encode(value, label)
            except PayloadError as exc:
                raise PayloadError(f"{where}.actions.{label}: {exc}") from None
        off = None
        if config.off is not None:
            try:
                off = encode(config.off, "off")
            except PayloadError as exc:
                raise PayloadError(f"{where}.off: {exc}") from None
        return cls(config, payloads, off, actuator)

    @property
    def is_on(self) -> bool:
        """Whether the last action sent left the device on (an on without its off yet)."""
        return self._s.fired

    # -- inputs ---------------------------------------------------------------------------
    def update(
        self,
        t_ms: float,
        label: str | None,
        probabilities: Mapping[str, float] | None = None,
        frame: int | None = None,
        status: str | None = None,
    ) -> list[Decision]:
        """Feed one prediction; returns the decisions it causes (often none).

        Fail safe: a prediction without a label, or with any status but ``ok`` (unknown, no_person,
        warming_up, ...), counts for no class and ends a running bout, whatever its probabilities.
        """
        s, cfg = self._s, self.config
        out: list[Decision] = []
        if status not in (None, "ok"):
            label = None
        if label is None:
            probabilities = {}
        if s.last_t is not None and t_ms < s.last_t:
            # Timestamps went backwards: a new stream (camera restarted). Close the old one.
            out += self.end()
        if s.last_t is not None and cfg.dead_man_ms is not None and t_ms - s.last_t >= cfg.dead_man_ms:
            out += self.tick(t_ms)
            self._reset_bout()

        def prob(c: str) -> float:
            if probabilities is not None and c in probabilities:
                return float(probabilities[c])
            if probabilities is None:
                return 1.0 if c == label else 0.0
            return 0.0

        if s.active is not None and prob(s.active) < cfg.exit:
            out += self._end_bout(t_ms, frame, prob(s.active), "class_end")
        if s.active is None:
            cand = label if (label in self.payloads and prob(label) >= cfg.threshold) else None
            if cand is None:
                s.candidate, s.count = None, 0
            else:
                s.count = s.count + 1 if cand == s.candidate else 1
                s.candidate = cand
                if s.count >= cfg.min_bout:
                    out.append(self._start_bout(cand, t_ms, frame, prob(cand)))
        s.last_t, s.last_frame = t_ms, frame
        return out

    def tick(self, now_ms: float) -> list[Decision]:
        """Dead-man check at stream time ``now_ms`` (no prediction since the last one)."""
        s, cfg = self._s, self.config
        if cfg.dead_man_ms is None or s.last_t is None or not s.fired:
            return []
        if now_ms - s.last_t < cfg.dead_man_ms:
            return []
        out = self._end_bout(s.last_t + cfg.dead_man_ms, s.last_frame, None, "dead_man")
        self._reset_bout()
        return out

    def end(self, t_ms: float | None = None) -> list[Decision]:
        """The stream stopped: send the off payload if the device is on, and forget the stream."""
        s = self._s
        t = s.last_t if t_ms is None else t_ms
        out = self._end_bout(t if t is not None else 0.0, s.last_frame, None, "stream_end") if s.fired else []
        self._s = _State()  # a new stream may use a new clock: earlier times are not comparable
        return out

    # -- internals ------------------------------------------------------------------------
    def _reset_bout(self) -> None:
        s = self._s
        s.active, s.fired, s.candidate, s.count = None, False, None, 0

    def _start_bout(self, cls: str, t_ms: float, frame: int | None, p: float) -> Decision:
        s, cfg = self._s, self.config
        s.active, s.candidate, s.count = cls, None, 0
        reason = ""
        if s.last_on_t is not None and t_ms - s.last_on_t < cfg.refractory_ms:
            reason = "refractory"
        elif self._rate_n:
            while s.on_times and s.on_times[0] <= t_ms - self._rate_window_ms:
                s.on_times.popleft()
            if len(s.on_times) >= self._rate_n:
                reason = "max_rate"
        if reason:
            s.fired = False
            return Decision(self.actuator, "suppressed", cls, reason, t_ms, frame, p, None)
        s.fired = True
        s.last_on_t = t_ms
        if self._rate_n:
            s.on_times.append(t_ms)
        return Decision(self.actuator, "on", cls, "bout", t_ms, frame, p, self.payloads[cls])

    def _end_bout(self, t_ms: float, frame: int | None, p: float | None, reason: str) -> list[Decision]:
        s = self._s
        cls, fired = s.active, s.fired
        s.active, s.fired = None, False
        if not fired or self.off_payload is None or cls is None:
            return []
        return [Decision(self.actuator, "off", cls, reason, t_ms, frame, p, self.off_payload)]
