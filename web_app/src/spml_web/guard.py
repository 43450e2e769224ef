"""Who may talk to the server: a Host allow-list, an optional access token, same-origin + CSRF for changes.

* **Host allow-list** (WSGI middleware, so it covers the Flask routes *and* the Socket.IO handshake):
  a request whose ``Host`` header names another site is refused with 403. This stops DNS rebinding,
  where a hostile page makes its own domain resolve to 127.0.0.1 and then talks to the app as a
  same-origin client. By default the localhost names and the address the server binds are allowed.
* **Access token** (optional, for LAN use): every request must carry it, as ``Authorization: Bearer``,
  an ``X-SPML-Token`` header, or the ``spml_token`` cookie that opening ``/?token=...`` once sets.
* **State-changing requests** (POST, PUT, PATCH, DELETE) must come from this server's own page:
  their ``Origin`` (or ``Referer``) must be the server's origin or an allowed CORS origin, and they
  must carry the ``X-CSRF-Token`` header the page reads from ``GET /api/config``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
TOKEN_COOKIE = "spml_token"


def host_name(host_header: str) -> str:
    """The lower-case host of a Host header without its port ('[::1]:5001' -> '::1')."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def machine_names() -> set[str]:
    """This machine's host name(s) and their addresses: what a LAN client types when the server binds 0.0.0.0."""
    names: set[str] = set()
    try:
        hostname = socket.gethostname()
        names.update({hostname.lower(), f"{hostname.lower()}.local"})
        _, aliases, addresses = socket.gethostbyname_ex(hostname)
        names.update(a.lower() for a in aliases)
        names.update(addresses)
    except OSError:
        pass
    return names


def csrf_token(secret: str) -> str:
    """The CSRF token of a server secret (the same in every worker process that shares the secret)."""
    return hmac.new(secret.encode(), b"spml-csrf", hashlib.sha256).hexdigest()


class HostGuard:
    """WSGI middleware: refuses requests for hosts not allowed and, when a token is set, requests without it."""

    def __init__(self, app: Callable[..., Any], allowed: Iterable[str] | None, token: str | None = None) -> None:
        self.app = app
        self.any_host = allowed is not None and "*" in allowed
        self.configured = allowed is not None
        self.allowed: set[str] = {host_name(h) for h in allowed} if allowed is not None else set(LOCAL_NAMES)
        self.token = token

    def allow_bound(self, host: str) -> None:
        """Add the address the server binds (by default only localhost names are allowed)."""
        if self.configured:
            return
        if host in WILDCARD_BINDS:
            self.allowed |= machine_names()
        else:
            self.allowed.add(host_name(host))

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a Host header names this server."""
        if self.any_host:
            return True
        if not host_header:
            return False
        return host_name(host_header) in self.allowed

    def _token_of(self, environ: dict[str, Any]) -> str | None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if environ.get("HTTP_X_SPML_TOKEN"):
            return str(environ["HTTP_X_SPML_TOKEN"])
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        return cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Check the request, then hand it to the app."""
        host = environ.get("HTTP_HOST")
        if not self.host_allowed(host):
            return _refuse(start_response, "403 Forbidden",
                           f"host {host!r} is not served here (DNS rebinding?); add it to serve.allowed_hosts")
        if self.token is None:
            return self.app(environ, start_response)
        given = self._token_of(environ)
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return self.app(environ, start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        offered = (query.get("token") or [""])[0]
        if environ.get("PATH_INFO") == "/" and offered and hmac.compare_digest(offered.encode(), self.token.encode()):
            # The link the operator shares: set the cookie (the page and its socket carry it) and drop the token.
            cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            start_response("303 See Other", [("Location", "/"), ("Set-Cookie", cookie), ("Content-Length", "0")])
            return [b""]
        return _refuse(start_response, "401 Unauthorized",
                       "this server needs its access token: open /?token=TOKEN once, or send Authorization: Bearer")


def same_origin_problem(method: str, headers: Any, host_url: str, extra_origins: Iterable[str],
                        expected_csrf: str) -> str | None:
    """Why a state-changing request must be refused (None when it may proceed)."""
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("Origin")
    if origin == "null":
        # Browsers send "null" for a same-origin POST under Referrer-Policy: no-referrer (this app's
        # policy), and for sandboxed pages: no origin to compare, so the CSRF token decides.
        origin = None
    if not origin and headers.get("Referer"):
        parts = urlsplit(headers["Referer"])
        origin = f"{parts.scheme}://{parts.netloc}"
    own = host_url.rstrip("/").lower()
    if origin and origin.lower() != own and origin not in set(extra_origins):
        return f"cross-origin request from {origin} refused: changes are accepted only from this server's page"
    given = headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected_csrf.encode()):
        return (f"missing or wrong {CSRF_HEADER} header: the page sends it; a script reads csrf_token from "
                "GET /api/config")
    return None


def _refuse(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

