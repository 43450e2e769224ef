"""Exceptions spml raises for users: each message names the file, key or value at fault."""

from __future__ import annotations

from typing import Any


class SpmlError(Exception):
    """An error a user can fix; the CLI prints its message and exits non-zero."""


class ConfigError(SpmlError):
    """A config file or option is invalid; the message names the key path."""


class PluginError(SpmlError):
    """A plugin failed to load, collides with another, or is unknown."""


class UnknownComponentError(PluginError):
    """A config or command names a component that no installed plugin provides."""


def format_validation_error(exc: Any, source: str) -> str:
    """One line per pydantic error: '<source>: <dotted.key.path>: <message> (got <value>)'."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        hint = f" (got {got!r})" if err["type"] != "missing" and not isinstance(got, dict) else ""
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: {loc}: unknown key")
        else:
            lines.append(f"{source}: {loc}: {err['msg']}{hint}")
    return "\n".join(lines)


class TimestampError(SpmlError):
    """A live frame whose timestamp cannot be placed in its stream; ``code``: bad_timestamp or out_of_order."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
