"""The decision layer on scripted prediction streams (33 ms windows, like a 30 fps camera)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from spml_core.actuation.decisions import DecisionConfig, DecisionEngine
from spml_core.payloads import PayloadError, encode_payload

STEP, REST = "step", "rest"


def engine(**cfg) -> DecisionEngine:
    cfg.setdefault("actions", {STEP: "01"})
    cfg.setdefault("off", "00")
    config = DecisionConfig(**cfg)
    return DecisionEngine.from_config(config, lambda v, label: encode_payload(v, "hex"), "dev")


def run(eng: DecisionEngine, labels: list[str], dt: float = 33.0, t0: float = 0.0, p: float = 0.9):
    out = []
    for i, label in enumerate(labels):
        out += eng.update(t0 + i * dt, label, {label: p, **({REST: 1 - p} if label == STEP else {STEP: 1 - p})}, frame=i)
    return out


def summary(decisions) -> list[tuple[str, str, float]]:
    return [(d.action, d.reason, d.t_ms) for d in decisions]


def test_held_class_fires_once_then_off_when_it_ends():
    eng = engine(min_bout=3)
    out = run(eng, [REST] * 3 + [STEP] * 20 + [REST] * 3)
    assert summary(out) == [("on", "bout", 5 * 33.0), ("off", "class_end", 23 * 33.0)]
    assert out[0].payload == b"\x01" and out[1].payload == b"\x00"
    assert out[0].frame == 5 and out[0].label == STEP


def test_flicker_shorter_than_min_bout_does_not_fire():
    eng = engine(min_bout=3)
    out = run(eng, [STEP, STEP, REST, STEP, REST, STEP, STEP, REST] * 5)
    assert out == []


def test_low_probability_does_not_count():
    eng = engine(threshold=0.8, min_bout=1)
    assert run(eng, [STEP] * 10, p=0.7) == []
    assert summary(run(eng, [STEP], p=0.85, t0=400)) == [("on", "bout", 400.0)]


def test_hysteresis_keeps_a_bout_through_a_dip():
    eng = engine(threshold=0.8, exit_threshold=0.3, min_bout=1)
    # The label flips to rest (step at 0.4) for two windows: above exit, the bout continues.
    probs = [0.9, 0.9, 0.4, 0.4, 0.9, 0.2, 0.2]
    out = []
    for i, p in enumerate(probs):
        label = STEP if p >= 0.5 else REST
        out += eng.update(i * 33.0, label, {STEP: p, REST: 1 - p})
    assert summary(out) == [("on", "bout", 0.0), ("off", "class_end", 5 * 33.0)]


def test_without_hysteresis_the_same_dip_fires_twice():
    eng = engine(threshold=0.8, min_bout=1)
    out = []
    for i, p in enumerate([0.9, 0.9, 0.4, 0.4, 0.9, 0.2]):
        out += eng.update(i * 33.0, STEP if p >= 0.5 else REST, {STEP: p, REST: 1 - p})
    assert [d.action for d in out] == ["on", "off", "on", "off"]


def test_exit_threshold_above_threshold_is_rejected():
    with pytest.raises(ValidationError, match="exit_threshold"):
        DecisionConfig(actions={STEP: "01"}, threshold=0.5, exit_threshold=0.7)


def test_refractory_period_suppresses_a_bout_and_never_fires_it_late():
    eng = engine(refractory_ms=1000)
    seq = [STEP] * 3 + [REST] * 3 + [STEP] * 40  # second bout starts at 198 ms, held until 1.5 s
    out = run(eng, seq)
    assert [(d.action, d.reason) for d in out] == [("on", "bout"), ("off", "class_end"), ("suppressed", "refractory")]
    # After the refractory period a new bout fires.
    out = run(eng, [REST, STEP], t0=2000)
    assert [(d.action, d.reason) for d in out] == [("on", "bout")]


def test_max_rate_limits_on_actions_per_window():
    eng = engine(max_rate=2)  # at most 2 on-actions in any 1000 ms window
    on_times = []
    for i in range(60):  # alternate step/rest every window for 2 s
        for d in eng.update(i * 33.0, STEP if i % 2 == 0 else REST, None):
            if d.action == "on":
                on_times.append(d.t_ms)
    assert len(on_times) == 4
    for i, t in enumerate(on_times):
        assert sum(1 for u in on_times if t - 1000 < u <= t) <= 2, on_times


def test_fractional_max_rate():
    eng = engine(max_rate=0.5)  # one on-action per 2 s
    ons = [d.t_ms for i in range(200) for d in eng.update(i * 33.0, STEP if i % 4 < 2 else REST, None) if d.action == "on"]
    assert ons and all(b - a >= 2000 for a, b in zip(ons, ons[1:], strict=False))


def test_off_action_fires_when_the_stream_stops_dead_man():
    eng = engine(dead_man_ms=500)
    out = run(eng, [STEP] * 5)
    assert [d.action for d in out] == ["on"]
    assert eng.tick(4 * 33.0 + 499) == []
    off = eng.tick(4 * 33.0 + 800)
    assert summary(off) == [("off", "dead_man", 4 * 33.0 + 500)]
    assert eng.tick(5000) == []  # once


def test_dead_man_is_applied_on_a_late_prediction_too():
    """Replaying (no watchdog ticks) gives the same off action as live."""
    eng = engine(dead_man_ms=500)
    out = run(eng, [STEP] * 5) + eng.update(3000, STEP, None)
    assert summary(out) == [("on", "bout", 0.0), ("off", "dead_man", 632.0), ("on", "bout", 3000.0)]


def test_end_sends_off_only_when_on():
    eng = engine()
    assert eng.end() == []
    run(eng, [STEP])
    assert summary(eng.end(100.0)) == [("off", "stream_end", 100.0)]
    assert eng.end() == []


def test_timestamps_going_backwards_start_a_new_stream():
    eng = engine()
    out = run(eng, [STEP] * 3, t0=10_000) + run(eng, [STEP] * 2, t0=0)
    assert [(d.action, d.reason) for d in out] == [("on", "bout"), ("off", "stream_end"), ("on", "bout")]


def test_unmapped_labels_and_no_off_payload():
    eng = engine(actions={STEP: "01"}, off=None)
    out = run(eng, ["other"] * 3 + [STEP] * 3 + [REST] * 3)
    assert [d.action for d in out] == ["on"]
    assert not eng.is_on


def test_two_classes_switch_directly():
    eng = engine(actions={"left": "0a", "right": "0b"}, off="00")
    out = []
    for i, label in enumerate(["left"] * 3 + ["right"] * 3):
        out += eng.update(i * 33.0, label, None)
    assert [(d.action, d.label, d.payload.hex()) for d in out] == [
        ("on", "left", "0a"),
        ("off", "left", "00"),
        ("on", "right", "0b"),
    ]


def test_unencodable_payload_names_its_key_path():
    with pytest.raises(PayloadError, match=r"actuators.0.decisions.actions.step: cannot encode 'zz' as hex"):
        DecisionEngine.from_config(
            DecisionConfig(actions={STEP: "zz"}), lambda v, l: encode_payload(v, "hex"), "dev", "actuators.0.decisions"
        )


def test_payload_encodings():
    assert encode_payload("01 ff", "hex") == b"\x01\xff"
    assert encode_payload("a", "utf-8") == b"a"
    assert encode_payload([1, 2], "bytes") == b"\x01\x02"
    assert encode_payload([1, 500], "struct", "<BH") == b"\x01\xf4\x01"
    for value, enc in ((256, "bytes"), ("x", "bytes"), (1, "hex"), ([1], "struct")):
        with pytest.raises(PayloadError):
            encode_payload(value, enc)


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.sampled_from([STEP, REST]), max_size=120),
    min_bout=st.integers(1, 5),
    refractory=st.sampled_from([0, 100, 500]),
    gaps=st.lists(st.sampled_from([33.0, 33.0, 33.0, 700.0]), min_size=120, max_size=120),
)
def test_invariants_on_random_streams(labels, min_bout, refractory, gaps):
    """On and off alternate, ons respect the refractory period, and the stream always ends off."""
    eng = engine(min_bout=min_bout, refractory_ms=refractory, dead_man_ms=500)
    t, out = 0.0, []
    for label, gap in zip(labels, gaps, strict=False):
        t += gap
        out += eng.update(t, label, None)
    out += eng.end()
    sent = [d for d in out if d.action != "suppressed"]
    assert [d.action for d in sent] == ["on", "off"] * (len(sent) // 2)
    ons = [d.t_ms for d in sent if d.action == "on"]
    assert all(b - a >= refractory for a, b in zip(ons, ons[1:], strict=False))
    assert [d.t_ms for d in out] == sorted(d.t_ms for d in out)


def test_unquoted_off_key_in_yaml_is_the_off_payload():
    import yaml

    cfg = DecisionConfig.model_validate(yaml.safe_load("actions: {step: '01'}\noff: '00'\n"))
    assert cfg.off == "00"
