"""spml-web: the live classification web app (Flask + Flask-SocketIO server, offline browser page).

``create_app(config)`` builds the app; ``spml serve`` runs it. Importing this package is cheap:
Flask loads only when ``create_app`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from spml_web.app import create_app

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from spml_web.app import create_app

        return create_app
    raise AttributeError(f"module 'spml_web' has no attribute {name!r}")
