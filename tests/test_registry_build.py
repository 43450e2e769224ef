"""Registry.build, one discovery per `spml run`, unknown hooks, plugin commands, and `spml config validate`."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from spml_core import hookimpl
from spml_core.cli.main import main
from spml_core.components import ComponentRef
from spml_core.errors import ConfigError, UnknownComponentError
from spml_core.registry import PluginRecord, Registry


def test_build_validates_options_with_key_paths() -> None:
    registry = Registry().load()
    ex = registry.build("executor", "local", {"workers": 2})
    assert ex.options.workers == 2
    ex = registry.build("executor", ComponentRef(use="local", options={"workers": 1}))
    assert ex.options.workers == 1
    with pytest.raises(ConfigError, match=r"pipeline\.dataset\.executor\.options\.wrokers: unknown option"):
        registry.build("executor", {"use": "local", "options": {"wrokers": 2}}, where="pipeline.dataset.executor")
    with pytest.raises(UnknownComponentError, match="Did you mean 'local'"):
        registry.build("executor", "locla")


def _fake_plugin(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def test_misspelt_hook_is_a_failed_plugin_with_a_hint() -> None:
    registry = Registry(autoload=False).load()
    module = _fake_plugin("typo_plugin", spml_model=lambda: [])
    record = PluginRecord("typo", "typo_plugin", "spml-typo", "1.0")
    registry._register_module(record, lambda: module)
    assert record.status == "failed"
    assert "spml_model (did you mean spml_models?)" in record.errors[0]


def test_plugin_calling_sys_exit_at_import_is_a_failed_plugin() -> None:
    registry = Registry(autoload=False).load()
    record = PluginRecord("quits", "quits", "spml-quits", "1.0")

    def loader() -> None:
        sys.exit(3)

    registry._register_module(record, loader)
    assert record.status == "failed" and "sys.exit(3)" in record.errors[0]


def test_spml_run_discovers_plugins_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spml_core.pipeline import run_config

    calls = []
    real = Registry._load_entry_points

    def counting(self: Registry) -> None:
        calls.append(1)
        real(self)

    monkeypatch.setattr(Registry, "_load_entry_points", counting)
    kp = tmp_path / "kp"
    kp.mkdir()
    (tmp_path / "ann").mkdir()
    config = tmp_path / "config.yml"
    config.write_text(textwrap.dedent("""
        pipeline:
          dataset: {keypoints: kp, annotations: ann, out: data.parquet}
    """))
    with pytest.raises(Exception):  # no keypoint files: the stage stops, after discovery
        run_config(config)
    assert len(calls) == 1


def test_config_validate_refuses_what_run_and_serve_refuse(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.yml"
    config.write_text(textwrap.dedent("""
        pipeline:
          train: {dataset: d.parquet, target: step, out: m, features: [angels]}
    """))
    assert main(["config", "validate", str(config)]) == 1
    assert "pipeline.train.features.0" in capsys.readouterr().err
    config.write_text(textwrap.dedent("""
        actuators:
          - use: ble
            options: {device_name: HMSoft}
            decisions: {actions: {Left Step: "not hex zz"}, off: "00"}
    """))
    assert main(["config", "validate", str(config)]) == 1
    err = capsys.readouterr().err
    assert "actuators.0.decisions.actions.Left Step" in err


def test_web_app_adds_spml_serve_through_the_hook() -> None:
    registry = Registry().load()
    assert "serve" in registry.commands()
    assert registry.commands()["serve"].__module__ == "spml_web.cli"
    record = next(r for r in registry.records if r.distribution == "spml-web")
    assert record.components == {"cli_command": ["serve"]}
