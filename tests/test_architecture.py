"""Guard rails for spml_core's layout (docs/architecture.md): imports point down, no cycles, a small public API.

The layers, top to bottom. A module may import its own layer's modules (without a cycle) and any layer
below; never one above. ``models`` and ``actuation`` share a layer and never import each other.
Imports under ``if TYPE_CHECKING:`` are annotations only and exempt.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spml_core

CORE = Path(spml_core.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("cli", "__main__"),
    ("pipeline",),
    ("config", "builtin"),
    ("models", "actuation"),
    ("datasets",),
    ("features",),
    ("keypoints",),
    ("registry", "hookspecs", "components", "payloads", "execution"),
    ("util", "errors"),
]
SIBLINGS_APART = {("models", "actuation"), ("actuation", "models"), ("config", "builtin"), ("builtin", "config")}
# cli modules import their command's machinery inside run(), so `spml --help` stays cheap
# (test_help_imports_no_heavy_library proves it).
LAZY_ALLOWED = ("cli",)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    top = _top(module)
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its folder '{top}' is in no layer of tests/test_architecture.py")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


class _Imports(ast.NodeVisitor):
    """(imported module, line, inside a function) for every spml_core import outside TYPE_CHECKING blocks."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "spml_core":
                self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            base = base[: len(base) - node.level + (1 if self.is_package else 0)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "spml_core":
            return
        for alias in node.names:
            # `from spml_core.features import spec` imports the submodule spec
            candidate = f"{target}.{alias.name}"
            name = candidate if candidate in _MODULES else target
            self.found.append((name, node.lineno, self.depth > 0))


_MODULES = _modules()


def _imports() -> dict[str, list[tuple[str, int, bool]]]:
    out = {}
    for name, path in _MODULES.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        out[name] = visitor.found
    return out


IMPORTS = _imports()


def test_every_module_is_in_a_layer() -> None:
    for name in _MODULES:
        if name != "spml_core":
            _layer(name)


def test_imports_only_point_down() -> None:
    bad = []
    for name, found in IMPORTS.items():
        if name == "spml_core":
            continue
        for target, line, _ in found:
            if target == "spml_core":  # the package root: __version__, hookimpl
                continue
            a, b = _top(name), _top(target)
            if _layer(target) < _layer(name) or (a, b) in SIBLINGS_APART:
                bad.append(f"{name}:{line} imports {target} (layer of '{b}' is not below '{a}')")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_function_level_imports_of_spml_core() -> None:
    bad = [
        f"{name}:{line} imports {target} inside a function"
        for name, found in IMPORTS.items()
        if _top(name) not in LAZY_ALLOWED and name != "spml_core"
        for target, line, lazy in found
        if lazy
    ]
    assert not bad, "move these imports to the top of the module:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = {name: {t for t, _, lazy in found if not lazy and t in _MODULES and t != "spml_core"}
             for name, found in IMPORTS.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_modules_stay_small() -> None:
    big = {name: n for name, path in _MODULES.items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert not big, f"split these modules (over 450 lines): {big}"


PUBLIC = {
    "hookimpl", "Options", "Component", "CliCommand", "KeypointImporter", "ImportedKeypoints", "ComponentRef", "PoseEstimator", "AnnotationParser", "FeatureExtractor",
    "Segmenter", "Model", "Actuator", "ActuatorStatus", "Executor", "SpmlError", "ConfigError", "PluginError",
    "UnknownComponentError", "load_config", "Config", "AnnotationSchema", "load_keypoints", "PoseSequence",
    "load_bundle", "Predictor", "StreamPredictor", "Registry", "FeaturePipelineSpec", "__version__",
    # the toolkit plugins build on
    "Annotation", "VideoAnnotations", "annotations_from_records", "resolve_dot_path", "MISSING", "encode_labels",
    "balanced_weights", "require_two_classes", "validation_split", "progress_bar", "write_text_atomic",
    "atomic_path", "EstimatorInfo", "VideoSource", "file_sha256", "N_LANDMARKS", "LANDMARK_NAMES",
    "POSE_CONNECTIONS", "ExampleSegmenter", "POOL_STATS", "PoolStat", "RowLayout", "Segments", "csr",
    "example_labels", "label_codes", "run_starts", "take_labels", "ActuationHub", "ActuationSession",
    "ActuatorConfig", "DecisionConfig", "DecisionEngine", "MANIFEST", "BundleError", "safe_extract_zip", "vet_bundle", "OneEuroFilter", "SmoothingOptions", "smooth_sequence",
}


def test_public_api() -> None:
    assert set(spml_core.__all__) == PUBLIC
    for name in spml_core.__all__:
        assert getattr(spml_core, name) is not None, name


def test_bundled_plugins_import_only_the_public_api() -> None:
    root = CORE.parent
    allowed_submodules = {"spml_core", "spml_core.components", "spml_core.hookspecs", "spml_core.errors",
                          "spml_core.payloads", "spml_core.config", "spml_core.registry"}
    bad = []
    for path in sorted([*root.glob("plugins/*/src/**/*.py"), *root.glob("web_app/src/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "spml_core":
                if node.module not in allowed_submodules:
                    bad.append(f"{path.relative_to(root)}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Import):
                bad += [f"{path.relative_to(root)}:{node.lineno} import {a.name}" for a in node.names
                        if a.name.startswith("spml_core.")]
    assert not bad, "plugins must import from spml_core only:\n" + "\n".join(bad)


def test_help_imports_no_heavy_library() -> None:
    """`spml --help` discovers plugins (for their commands) but imports none of their heavy libraries."""
    code = ("import sys; from spml_core.cli.main import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('mediapipe', 'torch', 'xgboost', 'cv2', 'flask', 'sklearn', 'matplotlib', 'pyarrow')"
            " if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"spml --help imported {out}"


def test_every_hook_spec_documents_arguments_return_and_instantiation() -> None:
    from spml_core import hookspecs

    for name in dir(hookspecs):
        fn = getattr(hookspecs, name)
        if name.startswith("spml_") and callable(fn):
            doc = fn.__doc__ or ""
            for part in ("Arguments:", "Returns:", "Instantiated:"):
                assert part in doc, f"hook spec {name} does not document '{part}'"
    assert set(hookspecs.HOOK_FOR_KIND.values()) <= {n for n in dir(hookspecs) if n.startswith("spml_")}


def test_all_extra_lists_every_bundled_plugin_and_pins_accept_this_core() -> None:
    import tomllib

    root = CORE.parent
    core = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert core["version"] == spml_core.__version__
    bundled = {}
    for path in [*sorted(root.glob("plugins/*/pyproject.toml")), root / "web_app" / "pyproject.toml"]:
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        bundled[project["name"]] = project
    assert set(core["optional-dependencies"]["all"]) == set(bundled)
    major_minor = ".".join(spml_core.__version__.split(".")[:2])
    for name, project in bundled.items():
        pins = [d for d in project["dependencies"] if d.startswith("spml-core")]
        assert pins == [f"spml-core>={major_minor},<0.{int(major_minor.split('.')[1]) + 1}"], (name, pins)


def test_every_distribution_declares_its_licence_as_an_spdx_string() -> None:
    """A TOML-table licence makes setuptools print a screen of deprecation warnings at every install."""
    import tomllib

    root = CORE.parent
    for path in [root / "pyproject.toml", *sorted(root.glob("plugins/*/pyproject.toml")), root / "web_app" / "pyproject.toml"]:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["project"]["license"] == "MIT", path
        assert "setuptools>=77" in data["build-system"]["requires"], path
