"""The plugin registry: discovers ``spml`` entry points lazily and indexes their components."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

import pluggy

from spml_core import __version__, hookspecs
from spml_core.components import KINDS, CliCommand, Component, ComponentRef
from spml_core.errors import ConfigError, PluginError, UnknownComponentError

# Default plugins shipped inside spml_core (dependency-free or numpy-only).
BUILTIN_PLUGINS: tuple[str, ...] = ("spml_core.builtin",)


@dataclass
class PluginRecord:
    """What `spml plugins` shows for one plugin (an entry point or a built-in module)."""

    name: str
    module: str
    distribution: str
    version: str
    status: Literal["loaded", "failed", "builtin"] = "loaded"
    errors: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON-able view: name, version, components ({kind: [names]}), status, errors."""
        return {
            "name": self.distribution,
            "version": self.version,
            "entry_point": self.name,
            "module": self.module,
            "status": self.status,
            "components": self.components,
            "errors": self.errors,
        }


class Registry:
    """spml's plugin registry; make one per run or app (never module-global state).

    ``load()`` imports each entry point on its own, so one broken plugin is recorded with a
    clear error instead of taking down the others. ``SPML_DISABLE_PLUGIN_AUTOLOAD=1`` keeps
    third-party entry points out (built-ins still load); ``SPML_DISABLE_PLUGINS=a,b`` skips
    the named distributions.
    """

    def __init__(self, *, autoload: bool | None = None) -> None:
        self.pm = pluggy.PluginManager("spml")
        self.pm.add_hookspecs(hookspecs)
        if autoload is None:
            autoload = not os.environ.get("SPML_DISABLE_PLUGIN_AUTOLOAD")
        self.autoload = autoload
        self.records: list[PluginRecord] = []
        self._components: dict[str, dict[str, tuple[type[Component], PluginRecord]]] = {k: {} for k in KINDS}
        self._commands: dict[str, tuple[type[CliCommand], PluginRecord]] = {}
        self._loaded = False

    # -- loading -------------------------------------------------------------------------
    def load(self) -> Registry:
        """Discover and register every plugin once; returns self for chaining."""
        if self._loaded:
            return self
        self._loaded = True

        for modname in BUILTIN_PLUGINS:
            record = PluginRecord(modname, modname, "spml-core", __version__, status="builtin")
            self._register_module(record, lambda m=modname: importlib.import_module(m))
        if self.autoload:
            self._load_entry_points()
        self._collect_components()
        return self

    def _load_entry_points(self) -> None:
        disabled = {d.strip() for d in os.environ.get("SPML_DISABLE_PLUGINS", "").split(",") if d.strip()}
        seen: set[tuple[str, str, str]] = set()
        for ep in sorted(entry_points(group="spml"), key=lambda e: (e.name, e.dist.name if e.dist else "")):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            # Editable installs and lib64->lib symlinks can list one entry point twice.
            key = (dist, ep.name, ep.value)
            if key in seen or dist in disabled:
                continue
            seen.add(key)
            self._register_module(PluginRecord(ep.name, ep.value, dist, version), ep.load)

    def _register_module(self, record: PluginRecord, loader: Any) -> None:
        self.records.append(record)
        try:
            module = loader()
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end spml
            why = (f"called sys.exit({exc.code!r}) while importing" if isinstance(exc, SystemExit)
                   else f"failed to import: {type(exc).__name__}: {exc}")
            record.status = "failed"
            record.errors.append(
                f"Plugin '{record.distribution} {record.version}' (entry point spml:{record.name} -> "
                f"{record.module}) {why}"
            )
            return
        if self.pm.is_registered(module) or self.pm.has_plugin(record.name):
            record.status = "failed"
            record.errors.append(
                f"Plugin '{record.distribution}' registers the entry point name '{record.name}', "
                "which another installed plugin already uses; it was skipped."
            )
            return
        unknown = sorted(n for n in dir(module) if n.startswith("spml_") and callable(getattr(module, n))
                         and self.pm.parse_hookimpl_opts(module, n) is not None
                         and not hasattr(self.pm.hook, n))
        if unknown:
            known = [n for n in dir(self.pm.hook) if n.startswith("spml_")]
            hints = []
            for n in unknown:
                close = difflib.get_close_matches(n, known, n=1)
                hints.append(f"{n}" + (f" (did you mean {close[0]}?)" if close else ""))
            record.status = "failed"
            record.errors.append(
                f"Plugin '{record.distribution}' implements unknown hook(s) {', '.join(hints)}; "
                f"spml's hooks are {', '.join(known)}. It was skipped."
            )
            return
        try:
            self.pm.register(module, name=record.name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            record.status = "failed"
            record.errors.append(f"Plugin '{record.distribution}' is invalid: {exc}")

    def _collect_components(self) -> None:
        by_module = {self.pm.get_plugin(r.name): r for r in self.records if r.status != "failed"}
        for kind, hookname in hookspecs.HOOK_FOR_KIND.items():
            for cls, record in self._hook_results(hookname, by_module):
                self._add_component(kind, KINDS[kind], cls, record)
        for cls, record in self._hook_results("spml_cli_commands", by_module):
            self._add_command(cls, record)

    def _hook_results(self, hookname: str, by_module: dict[Any, PluginRecord]) -> Iterator[tuple[Any, PluginRecord]]:
        """(class, plugin record) for each class each plugin's implementation of a hook returns."""
        # Call each implementation on its own: pluggy would stop at the first exception,
        # and we want to attribute every class to the distribution that provided it.
        for impl in getattr(self.pm.hook, hookname).get_hookimpls():
            record = by_module.get(impl.plugin)
            if record is None:
                continue
            try:
                result = impl.function()
            except (Exception, SystemExit) as exc:
                record.status = "failed"
                record.errors.append(f"{hookname}() of '{record.distribution}' raised {type(exc).__name__}: {exc}")
                continue
            for cls in result if isinstance(result, (list, tuple)) else [result]:
                yield cls, record

    def _add_command(self, cls: Any, record: PluginRecord) -> None:
        if not (isinstance(cls, type) and issubclass(cls, CliCommand)) or not getattr(cls, "name", ""):
            record.errors.append(f"'{record.distribution}' returned {cls!r} from spml_cli_commands: expected "
                                 "a subclass of spml_core.components.CliCommand with a non-empty 'name'.")
            return
        other = self._commands.get(cls.name)
        if other is not None:
            record.errors.append(f"command 'spml {cls.name}' from '{record.distribution}' is already provided "
                                 f"by '{other[1].distribution}'; the one from '{record.distribution}' was skipped.")
            return
        self._commands[cls.name] = (cls, record)
        record.components.setdefault("cli_command", []).append(cls.name)

    def commands(self) -> dict[str, type[CliCommand]]:
        """The `spml` subcommands plugins add, by name."""
        return {name: cls for name, (cls, _) in sorted(self.load()._commands.items())}

    def _add_component(self, kind: str, base: type[Component], cls: Any, record: PluginRecord) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)) or not getattr(cls, "name", ""):
            record.errors.append(
                f"'{record.distribution}' returned {cls!r} from its {kind} hook: expected a subclass of "
                f"{base.__module__}.{base.__name__} with a non-empty 'name'."
            )
            record.status = "failed" if record.status != "builtin" else record.status
            return
        existing = self._components[kind].get(cls.name)
        if existing is not None:
            other = existing[1]
            record.errors.append(
                f"{kind} name '{cls.name}' from '{record.distribution}' ({cls.__module__}.{cls.__qualname__}) "
                f"is already provided by '{other.distribution}' ({existing[0].__module__}.{existing[0].__qualname__}); "
                f"the one from '{record.distribution}' was skipped. Uninstall or disable one "
                f"(SPML_DISABLE_PLUGINS={record.distribution})."
            )
            return
        self._components[kind][cls.name] = (cls, record)
        record.components.setdefault(kind, []).append(cls.name)

    # -- queries -------------------------------------------------------------------------
    def errors(self) -> list[str]:
        """Every load or collision error, one line each."""
        return [e for r in self.load().records for e in r.errors]

    def names(self, kind: str) -> list[str]:
        """Sorted component names of one kind."""
        self._check_kind(kind)
        return sorted(self.load()._components[kind])

    def get(self, kind: str, name: str) -> type[Component]:
        """The component class of this kind and name, or a clear UnknownComponentError."""
        self._check_kind(kind)
        found = self.load()._components[kind].get(name)
        if found is None:
            raise UnknownComponentError(self._unknown_message(kind, name))
        return found[0]

    def provider(self, kind: str, name: str) -> PluginRecord:
        """The plugin record that provides a component."""
        self.get(kind, name)
        return self._components[kind][name][1]

    def create(self, kind: str, name: str, options: Any = None) -> Component:
        """Instantiate a component with validated options."""
        return self.get(kind, name)(options)

    def build(self, kind: str, ref: ComponentRef | str | Mapping[str, Any], options: Mapping[str, Any] | None = None,
              where: str | None = None) -> Component:
        """The component ``ref`` names (a ComponentRef, ``{use, options}`` or a name), its options validated.

        Errors name ``where`` (a config key path such as ``pipeline.train.model``) and the option's key path.
        """
        if isinstance(ref, str):
            name, opts = ref, dict(options or {})
        elif isinstance(ref, ComponentRef):
            name, opts = ref.use, {**ref.options, **(options or {})}
        else:
            name, opts = ref.get("use", ""), {**ref.get("options", {}), **(options or {})}
        where = where or kind.replace("_", " ")
        cls = self.get(kind, name)
        return cls(validate_options(cls, dict(opts), where if where.endswith("options") else f"{where}.options"))

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise PluginError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")

    def _unknown_message(self, kind: str, name: str) -> str:
        available = self._components[kind]
        listing = ", ".join(f"{n} ({r.distribution})" for n, (_, r) in sorted(available.items())) or "none installed"
        msg = f"unknown {kind.replace('_', ' ')} {name!r}. Available: {listing}."
        close = difflib.get_close_matches(name, list(available), n=1)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        failed = [r for r in self.records if r.status == "failed"]
        if failed:
            msg += " Plugins that failed to load: " + "; ".join(e for r in failed for e in r.errors)
        return msg


def validate_options(component: type, options: dict[str, Any], where: str) -> Any:
    """Validate options against a component's Options model; errors name ``where`` as key path."""
    from pydantic import ValidationError

    try:
        return component.Options.model_validate(options)  # type: ignore[attr-defined]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join([where, *map(str, err["loc"])])
            if err["type"] == "extra_forbidden":
                valid = ", ".join(component.Options.model_fields)  # type: ignore[attr-defined]
                lines.append(f"{loc}: unknown option (valid: {valid or 'none'})")
            else:
                lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def print_load_errors(registry: Registry, stream: Any = None) -> None:
    """Print each plugin load error once to stderr (the run continues without that plugin)."""
    stream = stream or sys.stderr
    for err in registry.errors():
        print(f"spml: warning: {err}", file=stream)
