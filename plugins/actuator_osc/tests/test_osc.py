"""The osc actuator against a real python-osc UDP server on 127.0.0.1."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from pydantic import ValidationError

from spml_actuator_osc.actuator import OscActuator
from spml_core.actuation.hub import ActuationHub
from spml_core.config import Config
from spml_core.errors import ConfigError
from spml_core.payloads import PayloadError
from spml_core.registry import Registry


@pytest.fixture
def osc_server():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got: queue.Queue = queue.Queue()
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: got.put((address, list(args))))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1], got
    server.shutdown()
    server.server_close()


def test_messages_arrive_with_address_and_arguments(osc_server):
    port, got = osc_server
    act = OscActuator({"port": port, "address": "/dance/{label}"})
    act.open()
    assert act.status().state == "connected"
    act.send(act.encode([1, "go", 0.5, True], "Left Step"), None)
    act.send(act.encode(None, "off"), None)
    act.send(act.encode(7, "right"), None)
    messages = [got.get(timeout=5) for _ in range(3)]
    act.close()
    assert messages == [("/dance/Left_Step", [1, "go", 0.5, True]), ("/dance/off", []), ("/dance/right", [7])]


def test_end_to_end_from_predictions(osc_server, tmp_path):
    port, got = osc_server
    cfg = Config.model_validate(
        {
            "actuators": [
                {
                    "use": "osc",
                    "options": {"port": port},
                    "log": None,
                    "decisions": {"actions": {"step": [1]}, "off": [0], "min_bout": 2},
                }
            ]
        }
    )
    hub = ActuationHub.from_config(cfg, Registry().load())
    session = hub.session()
    for i, label in enumerate(["step", "rest", "step", "step", "step", "rest"]):
        session.on_prediction(i * 33.0, label, None, frame=i)
        time.sleep(0.01)
    messages = [got.get(timeout=5) for _ in range(2)]
    hub.close()
    assert messages == [("/spml/step", [1]), ("/spml/off", [0])]


def test_bad_values_and_options():
    act = OscActuator({})
    with pytest.raises(PayloadError, match="cannot encode"):
        act.encode({"a": 1}, "x")
    with pytest.raises(ValidationError, match="not an OSC address"):
        OscActuator({"address": "spml"})
    with pytest.raises(ValidationError):
        OscActuator({"port": 70000})
    cfg = Config.model_validate({"actuators": [{"use": "osc", "log": None, "decisions": {"actions": {"a": {"x": 1}}}}]})
    with pytest.raises(ConfigError, match="actuators.0.decisions.actions.a: cannot encode"):
        ActuationHub.from_config(cfg, Registry().load())


def test_unresolvable_host_is_reported():
    act = OscActuator({"host": "no-such-host.invalid"})
    with pytest.raises(OSError):
        act.open()
    assert act.status().state == "error" and "no-such-host.invalid" in act.status().message
