"""The plugin registry: entry-point discovery, a real installed example plugin, broken and duplicate plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spml_core.errors import UnknownComponentError
from spml_core.registry import Registry

REPO = Path(__file__).resolve().parents[1]
SPML = [sys.executable, "-m", "spml_core"]


def fake_distribution(site: Path, dist: str, module: str, body: str, ep_name: str | None = None) -> None:
    """Write an installed-distribution layout (dist-info + module) that importlib.metadata discovers."""
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[spml]\n{ep_name or module} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(body))


def run_spml(*args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([*SPML, *args], capture_output=True, text=True, env=env, timeout=120)


FEATURE_PLUGIN = """
    from spml_core import hookimpl
    from spml_core.components import FeatureExtractor

    class {cls}(FeatureExtractor):
        name = "{name}"
        def columns(self):
            return ["c"]
        def transform(self, xyzv, width, height):
            return xyzv[:, :1, 0]

    @hookimpl
    def spml_feature_extractors():
        return [{cls}]
"""


def test_example_plugin_installed_with_pip_is_found(tmp_path: Path) -> None:
    """Install tests/example_plugin into this venv for real, then list and use it."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
           str(REPO / "tests" / "example_plugin")]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    try:
        out = run_spml("plugins", "--json")
        assert out.returncode in (0, 1), out.stderr
        plugins = {p["name"]: p for p in json.loads(out.stdout)}
        assert plugins["spml-example-plugin"]["version"] == "0.1.0"
        assert plugins["spml-example-plugin"]["components"] == {"feature_extractor": ["visible_count"]}
        code = (
            "import numpy as np\nfrom spml_core.registry import Registry\n"
            "fx = Registry().load().create('feature_extractor', 'visible_count', {'threshold': 0.5})\n"
            "x = np.zeros((2, 33, 4), np.float32); x[0, :10, 3] = 0.9; x[1] = np.nan\n"
            "print(fx.transform(x, 640, 480).ravel().tolist())"
        )
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert res.stdout.strip() == "[10.0, nan]"
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "spml-example-plugin"],
                       capture_output=True, timeout=120)


def test_broken_plugin_is_reported_and_does_not_take_others_down(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "spml-broken-thing", "spml_broken_thing", "import no_such_module_xyz\n")
    fake_distribution(tmp_path, "spml-good-thing", "spml_good_thing", FEATURE_PLUGIN.format(cls="Good", name="good"))
    out = run_spml("plugins", "--json", site=tmp_path)
    assert out.returncode == 1
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    broken = plugins["spml-broken-thing"]
    assert broken["status"] == "failed"
    assert len(broken["errors"]) == 1
    assert "spml-broken-thing 0.3.0" in broken["errors"][0]
    assert "No module named 'no_such_module_xyz'" in broken["errors"][0]
    assert plugins["spml-good-thing"]["components"] == {"feature_extractor": ["good"]}
    # The human listing shows the same error, and --help still works.
    assert "failed to import" in run_spml("plugins", site=tmp_path).stdout
    assert run_spml("--help", site=tmp_path).returncode == 0


def test_duplicate_component_name_names_both_distributions(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "spml-aaa-first", "spml_aaa_first", FEATURE_PLUGIN.format(cls="A", name="dup"))
    fake_distribution(tmp_path, "spml-bbb-second", "spml_bbb_second", FEATURE_PLUGIN.format(cls="B", name="dup"))
    out = run_spml("plugins", "--json", site=tmp_path)
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["spml-aaa-first"]["components"] == {"feature_extractor": ["dup"]}
    (err,) = plugins["spml-bbb-second"]["errors"]
    assert "'dup'" in err and "spml-aaa-first" in err and "spml-bbb-second" in err


def test_duplicate_entry_point_name_is_reported(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "spml-one", "spml_one_mod", FEATURE_PLUGIN.format(cls="A", name="one"), "same_ep")
    fake_distribution(tmp_path, "spml-two", "spml_two_mod", FEATURE_PLUGIN.format(cls="B", name="two"), "same_ep")
    plugins = {p["name"]: p for p in json.loads(run_spml("plugins", "--json", site=tmp_path).stdout)}
    assert plugins["spml-one"]["status"] == "loaded"
    assert plugins["spml-two"]["status"] == "failed"
    assert "same_ep" in plugins["spml-two"]["errors"][0]


def test_unknown_component_lists_available_and_suggests() -> None:
    reg = Registry(autoload=False).load()
    with pytest.raises(UnknownComponentError) as exc:
        reg.get("executor", "locl")
    msg = str(exc.value)
    assert "unknown executor 'locl'" in msg
    assert "local (spml-core)" in msg
    assert "Did you mean 'local'?" in msg


def test_hook_returning_a_non_component_is_an_error(tmp_path: Path) -> None:
    body = """
        from spml_core import hookimpl

        @hookimpl
        def spml_models():
            return [object]
    """
    fake_distribution(tmp_path, "spml-bad-return", "spml_bad_return", body)
    plugins = {p["name"]: p for p in json.loads(run_spml("plugins", "--json", site=tmp_path).stdout)}
    (err,) = plugins["spml-bad-return"]["errors"]
    assert "expected a subclass of spml_core.components.Model" in err


def test_disable_autoload_keeps_only_builtins(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "spml-good-thing", "spml_good_thing", FEATURE_PLUGIN.format(cls="G", name="good"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SPML_DISABLE_PLUGIN_AUTOLOAD="1")
    out = subprocess.run([*SPML, "plugins", "--json", "--all"], capture_output=True, text=True, env=env)
    names = [p["name"] for p in json.loads(out.stdout)]
    assert names == ["spml-core"]
