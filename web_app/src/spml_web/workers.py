"""`spml serve --workers N`: N server processes accepting on one listening socket (one port, every core).

The parent binds the port, then forks N workers that each build their own app (threads are
started only after the fork) and accept connections from the shared socket; the kernel hands
each new connection to one of them. A Socket.IO session lives in the process that accepted its
WebSocket, so with several workers the server offers the WebSocket transport only (HTTP
long-polling needs every request of a session to reach the same process: put a load balancer
with sticky sessions in front instead, docs/scale-out.md). Broadcasts (a new uploaded model)
reach the clients of every worker through the Redis message queue when one is configured.

The parent restarts a worker that dies, forwards SIGTERM/SIGINT/SIGHUP to all of them (each
switches its devices off), and a worker whose parent disappears shuts itself down.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spml_web.server import serve_forever

if TYPE_CHECKING:
    from flask import Flask

RESTART_DELAY_S = 1.0


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket that forked workers inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # shut down as on SIGTERM: devices off, sockets closed


def _worker(build_app: Callable[[], Flask], host: str, sock: socket.socket, parent: int, ready: int | None) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    app = build_app()
    if ready is not None:
        os.write(ready, b"1")  # the parent announces the URL once every worker can answer
        os.close(ready)
    serve_forever(app, host, sock.getsockname()[1], fd=sock.fileno(), announce=False)


def serve_workers(build_app: Callable[[], Flask], host: str, port: int, workers: int) -> None:
    """Serve with ``workers`` processes on one port until interrupted; restarts a worker that dies."""
    sock = listening_socket(host, port)
    parent = os.getpid()
    children: dict[int, int] = {}
    stopping = False
    ready_r, ready_w = os.pipe()
    starting = True  # workers forked later (restarts) have no one waiting for them

    def spawn(slot: int) -> None:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if starting:
                    os.close(ready_r)
                _worker(build_app, host, sock, parent, ready_w if starting else None)
            except BaseException as exc:  # a worker must never fall back into the parent's loop
                print(f"spml serve: worker {slot} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for slot in range(workers):
            spawn(slot)
        os.close(ready_w)
        started = 0
        while started < workers:
            chunk = os.read(ready_r, workers - started)
            if not chunk:  # every worker end closed: some died while starting (their errors are printed)
                raise SystemExit("spml serve: the workers failed to start")
            started += len(chunk)
        os.close(ready_r)
        starting = False
        print(f"spml serve: http://{host}:{sock.getsockname()[1]}/  ({workers} worker processes; Ctrl-C to stop)",
              flush=True)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            slot = children.pop(pid, None)
            if slot is None or stopping:
                continue
            print(f"spml serve: worker {slot} (pid {pid}) exited with status {os.waitstatus_to_exitcode(status)}; "
                  "restarting it", file=sys.stderr, flush=True)
            time.sleep(RESTART_DELAY_S)
            if not stopping:
                spawn(slot)
    finally:
        stop(signal.SIGTERM, None)
        deadline = time.monotonic() + 10
        while children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                children.pop(pid, None)
            else:
                time.sleep(0.05)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
