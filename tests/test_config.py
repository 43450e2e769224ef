"""config.yml validation: errors name the file, the dotted key path and the expected type."""

from __future__ import annotations

from pathlib import Path

import pytest

from spml_core.cli.main import main
from spml_core.config import AnnotationSchema, load_config, validate_components
from spml_core.errors import ConfigError
from spml_core.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


def test_repo_config_is_valid_and_holds_the_seed_schema() -> None:
    cfg = load_config(REPO / "config.yml")
    assert cfg.annotation_schema.annotations_key == "annotations"
    fields = cfg.annotation_schema.annotation_fields
    assert (fields.label, fields.start_frame, fields.end_frame) == ("label", "metadata.system.frame", "metadata.system.endFrame")
    assert cfg.annotation_schema.label_class_mapping["Left Step"] == "step_type"


def test_defaults_equal_the_seed_schema() -> None:
    assert load_config(None).annotation_schema == AnnotationSchema()


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    p = write(tmp_path, "annotation_schema:\n  annotation_feilds: {}\n")
    with pytest.raises(ConfigError, match=r"config.yml: annotation_schema.annotation_feilds: unknown key"):
        load_config(p)


def test_wrong_type_names_path_expected_type_and_value(tmp_path: Path) -> None:
    p = write(tmp_path, "pipeline:\n  extract:\n    videos: v\n    out: o\n    workers: two\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "pipeline.extract.workers: Input should be a valid integer" in str(exc.value)
    assert "'two'" in str(exc.value)


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "pipeline:\n  extract: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+, column \d+"):
        load_config(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")


def test_unknown_component_and_bad_options_are_named(tmp_path: Path) -> None:
    reg = Registry().load()
    p = write(tmp_path, "pipeline:\n  extract:\n    videos: v\n    out: o\n    executor: {use: locl}\n")
    with pytest.raises(ConfigError, match=r"pipeline.extract.executor.use: unknown executor 'locl'.*Did you mean 'local'"):
        validate_components(load_config(p), reg, str(p))
    p = write(tmp_path, "pipeline:\n  extract:\n    videos: v\n    out: o\n    executor: {use: local, options: {workers: 0, wrkers: 2}}\n")
    cfg = load_config(p)
    with pytest.raises(ConfigError) as exc:
        validate_components(cfg, reg, str(p))
    msg = str(exc.value)
    assert "pipeline.extract.executor.options.workers: Input should be greater than or equal to 1" in msg
    assert "pipeline.extract.executor.options.wrkers: unknown option (valid: workers)" in msg


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    p = write(tmp_path, "pipeline:\n  extract:\n    videos: vids\n    out: kp\n")
    cfg = load_config(p)
    assert cfg.resolve(cfg.pipeline.extract.videos) == tmp_path / "vids"


def test_cli_reports_config_error_and_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "pipline: {}\n")
    assert main(["run", str(p)]) == 1
    assert "pipline: unknown key" in capsys.readouterr().err
