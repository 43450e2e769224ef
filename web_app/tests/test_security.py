"""The server as an outsider sees it: DNS rebinding, cross-site uploads, hostile bundles, an access token."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spml_web.server import BackgroundServer

pytestmark = pytest.mark.slow  # needs the trained bundles

# Eight bytes of model.ubj that XGBoost's loader trusts: flipped, loading the bundle segfaults the process.
CRASH_OFFSET = 24


def bundle_zip(bundle: Path, changes: dict[str, bytes] | None = None) -> bytes:
    files = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}
    files.update(changes or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def flipped(data: bytes, offset: int, n: int = 8) -> bytes:
    out = bytearray(data)
    for i in range(offset, offset + n):
        out[i] ^= 0xFF
    return bytes(out)


@pytest.fixture()
def server(make_app: Any) -> Iterator[BackgroundServer]:
    with BackgroundServer(make_app()) as srv:
        yield srv


def upload(server: BackgroundServer, data: bytes, name: str, **headers: str) -> requests.Response:
    token = requests.get(f"{server.url}/api/config", timeout=10).json()["csrf_token"]
    return requests.post(f"{server.url}/api/models", files={"bundle": (f"{name}.zip", data)}, data={"name": name},
                         headers={"X-CSRF-Token": token, "Origin": server.url, **headers}, timeout=120)


def raw_request(server: BackgroundServer, lines: list[str]) -> str:
    """Send a hand-written HTTP request (any Host header) and return the status line."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_cross_origin_and_tokenless_uploads_are_refused(server: BackgroundServer, bundles: dict[str, Path],
                                                        models_dir: Path) -> None:
    data = bundle_zip(bundles["transfer"])
    resp = upload(server, data, "evil", Origin="http://evil.example")
    assert resp.status_code == 403 and "cross-origin request from http://evil.example" in resp.json()["error"]
    resp = upload(server, data, "evil2", Origin="", Referer="http://evil.example/page.html")
    assert resp.status_code == 403 and "cross-origin" in resp.json()["error"]
    # A form post from anywhere (no CSRF header) is refused even without an Origin.
    resp = requests.post(f"{server.url}/api/models", files={"bundle": ("x.zip", data)}, timeout=30)
    assert resp.status_code == 403 and "X-CSRF-Token" in resp.json()["error"]
    assert sorted(p.name for p in models_dir.iterdir()) == ["steps", "transfer"]
    # A sandboxed or no-referrer page says "null": without the token it gets nowhere either.
    resp = requests.post(f"{server.url}/api/models", files={"bundle": ("x.zip", data)}, headers={"Origin": "null"},
                         timeout=30)
    assert resp.status_code == 403 and "X-CSRF-Token" in resp.json()["error"]
    # The page's own request goes through (Chromium sends Origin: null under Referrer-Policy: no-referrer).
    assert upload(server, data, "mine").status_code == 201
    assert upload(server, data, "mine2", Origin="null").status_code == 201


def test_foreign_host_is_refused_on_http_and_socketio(server: BackgroundServer) -> None:
    port = server.port
    assert raw_request(server, ["GET /api/health HTTP/1.1", f"Host: 127.0.0.1:{port}"]).endswith("200 OK")
    assert raw_request(server, ["GET /api/health HTTP/1.1", f"Host: localhost:{port}"]).endswith("200 OK")
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends its Host.
    for path in ("/", "/api/health", "/api/config"):
        status = raw_request(server, [f"GET {path} HTTP/1.1", f"Host: rebind.evil.example:{port}"])
        assert status.endswith("403 FORBIDDEN") or " 403 " in status, (path, status)
    # Socket.IO: both the polling handshake and a WebSocket upgrade.
    status = raw_request(server, ["GET /socket.io/?EIO=4&transport=polling HTTP/1.1", f"Host: evil.example:{port}"])
    assert " 403 " in status, status
    status = raw_request(server, [
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1", f"Host: evil.example:{port}", "Upgrade: websocket",
        "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
    assert " 403 " in status, status
    ok = raw_request(server, ["GET /socket.io/?EIO=4&transport=polling HTTP/1.1", f"Host: 127.0.0.1:{port}"])
    assert " 200 " in ok, ok


def test_a_crashing_bundle_is_a_400_and_the_server_keeps_serving(
    server: BackgroundServer, bundles: dict[str, Path], models_dir: Path
) -> None:
    weights = (bundles["steps"] / "model" / "model.ubj").read_bytes()
    data = bundle_zip(bundles["steps"], {"model/model.ubj": flipped(weights, CRASH_OFFSET)})
    resp = upload(server, data, "crasher")
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "crashed (SIGSEGV)" in error or "failed to load" in error, error
    assert "/tmp" not in error and str(models_dir) not in error
    # Still serving, nothing left behind, and the good bundles still load.
    health = requests.get(f"{server.url}/api/health", timeout=10)
    assert health.status_code == 200
    assert sorted(p.name for p in models_dir.iterdir()) == ["steps", "transfer"]
    assert [m["name"] for m in requests.get(f"{server.url}/api/models", timeout=10).json()["models"]] == [
        "steps", "transfer"]


def _manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def test_huge_window_and_deep_manifest_are_400(server: BackgroundServer, bundles: dict[str, Path]) -> None:
    manifest = _manifest(bundles["steps"])
    manifest["features"]["window"] = 1_000_000
    resp = upload(server, bundle_zip(bundles["steps"], {"manifest.json": json.dumps(manifest).encode()}), "huge")
    assert resp.status_code == 400 and "window" in resp.json()["error"], resp.text
    assert "3600" in resp.json()["error"]
    deep = b'{"schema_version": 1, "notes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = upload(server, bundle_zip(bundles["steps"], {"manifest.json": deep}), "deep")
    assert resp.status_code == 400 and "nested too deeply" in resp.json()["error"], resp.text
    many = _manifest(bundles["steps"])
    many["classes"] = [f"c{i}" for i in range(5000)]
    resp = upload(server, bundle_zip(bundles["steps"], {"manifest.json": json.dumps(many).encode()}), "many")
    assert resp.status_code == 400 and "classes" in resp.json()["error"], resp.text
    assert requests.get(f"{server.url}/api/health", timeout=10).status_code == 200


def test_an_access_token_guards_everything(make_app: Any) -> None:
    token = "correct-horse-battery-staple"
    with BackgroundServer(make_app(access_token=token)) as srv:
        assert requests.get(f"{srv.url}/api/health", timeout=10).status_code == 401
        assert requests.get(f"{srv.url}/api/health", headers={"Authorization": f"Bearer {token}"},
                            timeout=10).status_code == 200
        status = raw_request(srv, ["GET /socket.io/?EIO=4&transport=polling HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"])
        assert " 401 " in status
        # The shared link sets a cookie the page (and its socket) then carries.
        http = requests.Session()
        resp = http.get(f"{srv.url}/?token=wrong-token-wrong-token", timeout=10)
        assert resp.status_code == 401
        resp = http.get(f"{srv.url}/?token={token}", timeout=10)
        assert resp.status_code == 200 and "spml_token" in http.cookies
        assert http.get(f"{srv.url}/api/config", timeout=10).status_code == 200
