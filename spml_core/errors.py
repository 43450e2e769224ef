"""Exceptions spml raises for users: each message names the file, key or value at fault."""

from __future__ import annotations


class SpmlError(Exception):
    """An error a user can fix; the CLI prints its message and exits non-zero."""


class ConfigError(SpmlError):
    """A config file or option is invalid; the message names the key path."""


class PluginError(SpmlError):
    """A plugin failed to load, collides with another, or is unknown."""


class UnknownComponentError(PluginError):
    """A config or command names a component that no installed plugin provides."""
