"""Files fetched once from a package registry with pip and checked against a pinned SHA-256."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from spml_core.errors import SpmlError


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def pip_download(requirement: str, cache: Path, filename: str, sha256: str, *, source: bool, why: str = "") -> Path:
    """``cache/filename`` if it matches ``sha256``, else `pip download --no-deps` of it into the cache, verified.

    ``source`` asks for the source distribution (``--no-binary``) instead of a wheel. A download whose
    hash differs is removed and refused.
    """
    path = cache / filename
    if path.is_file() and sha256_of(path) == sha256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    kind = ["--no-binary", ":all:"] if source else ["--only-binary=:all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", *kind,
           requirement, "-d", str(cache)]
    print(f"downloading {requirement} from the package index{f' ({why})' if why else ''} ...", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        raise SpmlError(f"cannot download {requirement} with pip (exit {proc.returncode})"
                        f"{f'; {why}' if why else ''}: {(proc.stderr or proc.stdout).strip()[-1000:]}")
    digest = sha256_of(path)
    if digest != sha256:
        path.unlink()
        raise SpmlError(f"{path}: SHA-256 {digest} does not match the pinned {sha256}; removed it")
    return path
