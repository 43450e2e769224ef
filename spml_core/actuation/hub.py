"""The configured actuators of one process (:class:`ActuationHub`) and one stream's decisions (:class:`ActuationSession`).

The hub builds each actuator from config.yml (:class:`ActuatorConfig`) with its runner and log;
a session (one per stream) holds the decision engines, feeds the runners, emits events for the
page, and runs the dead-man check.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from spml_core.actuation.decisions import Decision, DecisionConfig, DecisionEngine
from spml_core.actuation.runner import ActionLog, ActuatorRunner, log_decision
from spml_core.components import Strict
from spml_core.errors import ConfigError, UnknownComponentError
from spml_core.payloads import PayloadError
from spml_core.registry import Registry
from spml_core.util.names import repeated

if TYPE_CHECKING:
    from spml_core.components import Actuator


class ActuatorConfig(Strict):
    """One actuator: a component (``use``), its options, and the decisions that drive it."""

    use: str = Field(description="Actuator component name, as listed by `spml plugins` (ble, osc, ...)")
    name: str | None = Field(None, description="Name in logs and events (default: the component name)")
    options: dict[str, Any] = Field(default_factory=dict)
    decisions: DecisionConfig
    run_in: Literal["server", "browser"] = Field(
        "server", description="server: the spml process drives the device; browser: the page writes it (Web Bluetooth)"
    )
    log: Path | None = Field(Path("logs/actions.jsonl"), description="JSON-lines action log (appended); null disables")
    max_age_ms: float = Field(
        500, gt=0, description="An on-action not started within this time after its decision is dropped as stale"
    )
    heartbeat_ms: float | None = Field(
        None, ge=20, le=60_000,
        description="Write `heartbeat` whenever nothing was written for this long, so device firmware can switch "
        "off when the writes stop (server killed, link lost); server actuators only (docs/actuation.md)",
    )
    heartbeat: Any = Field("HB", description="The keep-alive value, encoded like a decision payload")

    @property
    def label(self) -> str:
        """The actuator's name in logs and events."""
        return self.name or self.use

    @staticmethod
    def check_unique(actuators: list[ActuatorConfig]) -> list[ActuatorConfig]:
        """The actuators, if their names (labels) are unique; a ValueError naming the repeats otherwise."""
        dupes = repeated(a.label for a in actuators)
        if dupes:
            raise ValueError(f"actuator names must be unique; give each a `name:` (repeated: {', '.join(dupes)})")
        return actuators



def _heartbeat(ac: ActuatorConfig, actuator: Actuator, where: str) -> tuple[float, bytes] | None:
    """The runner's (every_ms, payload) keep-alive, checked like a payload; None when not configured."""
    if ac.heartbeat_ms is None:
        return None
    if ac.run_in != "server":
        raise ConfigError(f"{where}.heartbeat_ms: only server actuators send heartbeats (run_in is {ac.run_in!r})")
    try:
        return ac.heartbeat_ms, actuator.encode(ac.heartbeat, "heartbeat")
    except (PayloadError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.heartbeat: {exc}") from None


@dataclass
class _Target:
    config: ActuatorConfig
    name: str
    actuator: Actuator
    engine: DecisionEngine  # template: sessions copy its config and payloads
    runner: ActuatorRunner | None
    log: ActionLog | None


class ActuationHub:
    """The configured actuators of one process: components, runners and logs."""

    def __init__(
        self,
        actuators: Sequence[ActuatorConfig],
        registry: Registry | None = None,
        base_dir: Path | None = None,
        start: bool = True,
        tick_ms: float = 50.0,
    ) -> None:
        if registry is None and actuators:
            registry = Registry().load()
        base = Path(base_dir or ".")
        self.targets: list[_Target] = []
        self._logs: dict[Path, ActionLog] = {}
        self._sessions: weakref.WeakSet[ActuationSession] = weakref.WeakSet()
        self._tick_s = tick_ms / 1000.0
        self._closed = threading.Event()
        try:
            for i, ac in enumerate(actuators):
                where = f"actuators.{i}"
                try:
                    actuator = registry.build("actuator", ac.use, ac.options, where)  # type: ignore[union-attr]
                except UnknownComponentError as exc:
                    raise ConfigError(f"{where}.use: {exc}") from None
                try:
                    engine = DecisionEngine.from_config(ac.decisions, actuator.encode, ac.label, f"{where}.decisions")
                except PayloadError as exc:
                    raise ConfigError(str(exc)) from None
                log = self._log_for(base / ac.log) if ac.log is not None else None
                runner = None
                heartbeat = _heartbeat(ac, actuator, where)
                if ac.run_in == "server":
                    runner = ActuatorRunner(actuator, ac.label, log, max_age_ms=ac.max_age_ms, heartbeat=heartbeat)
                self.targets.append(_Target(ac, ac.label, actuator, engine, runner, log))
        except BaseException:
            self.close()
            raise
        if start:
            for t in self.targets:
                if t.runner is not None:
                    t.runner.start()
        self._watchdog = threading.Thread(target=self._watch, name="spml-actuation-deadman", daemon=True)
        if self.targets:
            self._watchdog.start()

    @classmethod
    def from_config(cls, cfg: Any, registry: Registry | None = None, **kwargs: Any) -> ActuationHub:
        """Build from a loaded Config (its ``actuators`` list; paths relative to the config file)."""
        return cls(cfg.actuators, registry, base_dir=cfg.base_dir, **kwargs)

    def _log_for(self, path: Path) -> ActionLog:
        path = path.resolve()
        if path not in self._logs:
            self._logs[path] = ActionLog(path)
        return self._logs[path]

    def session(
        self, emit: Callable[[dict[str, Any]], None] | None = None, session_id: str | None = None
    ) -> ActuationSession:
        """A new per-stream session (its own decision state) feeding this hub's runners."""
        s = ActuationSession(self, emit, session_id)
        self._sessions.add(s)
        return s

    def status(self) -> list[dict[str, Any]]:
        """One status dict per actuator (state, message, counters)."""
        out = []
        for t in self.targets:
            if t.runner is not None:
                out.append(t.runner.status())
            else:
                out.append({"actuator": t.name, "state": "browser", "message": "written by the page (Web Bluetooth)"})
        return out

    def browser_targets(self) -> list[dict[str, Any]]:
        """What the page needs to write browser-side actuators: name, UUIDs, write mode."""
        out = []
        for t in self.targets:
            if t.config.run_in != "browser":
                continue
            opts = t.actuator.options.model_dump()
            out.append(
                {
                    "actuator": t.name,
                    "service_uuid": opts.get("service_uuid"),
                    "characteristic_uuid": opts.get("characteristic_uuid"),
                    "with_response": opts.get("with_response", False),
                    "device_name": opts.get("device_name"),
                    "max_age_ms": t.config.max_age_ms,
                }
            )
        return out

    def _watch(self) -> None:
        while not self._closed.wait(self._tick_s):
            for s in list(self._sessions):
                s.tick()

    def close(self, timeout: float = 2.0) -> None:
        """End every session (off actions), stop runners (delivering offs), close logs."""
        self._closed.set()
        for s in list(self._sessions):
            s.close()
        for t in self.targets:
            if t.runner is not None:
                t.runner.close(timeout)
            else:
                try:
                    t.actuator.close()
                except Exception:
                    pass
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def __enter__(self) -> ActuationHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ActuationSession:
    """Decision state of one prediction stream (one browser connection, one replay)."""

    def __init__(self, hub: ActuationHub, emit: Callable[[dict[str, Any]], None] | None, session_id: str | None) -> None:
        self.hub = hub
        self.emit = emit
        self.session_id = session_id
        self.engines = [
            DecisionEngine(t.engine.config, t.engine.payloads, t.engine.off_payload, t.name) for t in hub.targets
        ]
        self._lock = threading.Lock()
        self._last_t: float | None = None
        self._last_perf = 0.0
        self._closed = False

    def on_prediction(
        self,
        t_ms: float,
        label: str | None,
        probabilities: Mapping[str, float] | None = None,
        frame: int | None = None,
        status: str | None = None,
    ) -> list[Decision]:
        """Feed one prediction (stream timestamps); dispatches and returns the decisions (status not ok: off)."""
        with self._lock:
            if self._closed:
                return []
            decisions: list[Decision] = []
            for engine in self.engines:
                decisions += engine.update(t_ms, label, probabilities, frame, status)
            self._last_t, self._last_perf = t_ms, time.perf_counter()
        self._dispatch(decisions)
        return decisions

    def tick(self) -> list[Decision]:
        """Dead-man check: stream time advances with the wall clock since the last prediction."""
        with self._lock:
            if self._closed or self._last_t is None:
                return []
            now = self._last_t + (time.perf_counter() - self._last_perf) * 1000.0
            decisions = [d for e in self.engines for d in e.tick(now)]
        self._dispatch(decisions)
        return decisions

    def close(self, t_ms: float | None = None) -> list[Decision]:
        """The stream stopped: off actions for every actuator that is on."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            decisions = [d for e in self.engines for d in e.end(t_ms)]
        self._dispatch(decisions)
        return decisions

    def _dispatch(self, decisions: list[Decision]) -> None:
        if not decisions:
            return
        targets = {t.name: t for t in self.hub.targets}
        for d in decisions:
            t = targets[d.actuator]
            if d.action == "suppressed":
                log_decision(t.log, d, self.session_id, f"suppressed: {d.reason}")
            elif t.runner is not None:
                t.runner.submit(d, self.session_id)
            else:
                log_decision(t.log, d, self.session_id, "emitted to the page")
            if self.emit is not None:
                event = d.as_record()
                event["run_in"] = t.config.run_in
                try:
                    self.emit(event)
                except Exception:
                    pass  # a closed socket must not break the classification loop
