"""spml-web's hook implementations: it adds `spml serve` to the spml command (cheap to import: no flask)."""

from __future__ import annotations

from spml_core import hookimpl
from spml_core import CliCommand


@hookimpl
def spml_cli_commands() -> list[type[CliCommand]]:
    """`spml serve`: the live classification web app."""
    from spml_web.cli import ServeCommand

    return [ServeCommand]
