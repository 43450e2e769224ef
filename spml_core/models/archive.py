"""Opening untrusted bundle archives: safe unzip (no traversal, links or bombs) and pickle refusal."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from spml_core.errors import SpmlError

# Files a bundle must never contain: formats that execute code when loaded (pickle and its wrappers).
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pck", ".pcl", ".joblib", ".pt", ".pth", ".ckpt", ".dill",
                             ".sav", ".npy", ".npz"})


MAX_ARCHIVE_BYTES = 1 << 30


MAX_ARCHIVE_MEMBERS = 10_000


class BundleError(SpmlError):
    """A model bundle is invalid or unsafe; the message names the file and the reason."""


# -- safety ---------------------------------------------------------------------------------
def _looks_like_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80) and a protocol number; torch.save zips hold data.pkl.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_safetensors(path: Path, head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that many bytes of JSON object.

    Its length prefix can begin with the bytes of a pickle protocol marker, so it is recognised first.
    """
    if len(head) < 8:
        return False
    n = int.from_bytes(head[:8], "little")
    size = path.stat().st_size
    if not 2 <= n <= min(size - 8, 100 << 20):
        return False
    with open(path, "rb") as fh:
        fh.seek(8)
        header = fh.read(n)
    try:
        return header[:1] == b"{" and isinstance(json.loads(header), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _zip_holds_pickle(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if Path(name).suffix.lower() in PICKLE_SUFFIXES:
                    return name
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def check_no_pickles(root: Path) -> None:
    """Refuse symlinks and any pickle-like file under ``root`` (by suffix, magic bytes, or inside a zip)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            rel = p.relative_to(root)
            if p.is_symlink():
                raise BundleError(f"{root}: bundle contains a symbolic link ({rel}); refusing to load it")
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root)
            if p.suffix.lower() in PICKLE_SUFFIXES:
                raise BundleError(
                    f"{root}: bundle contains {rel}, a pickle-type file; spml never loads pickles "
                    "(they can run arbitrary code). Re-train with `spml train` to get a safe bundle"
                )
            with open(p, "rb") as fh:
                head = fh.read(8)
            if _looks_like_pickle(head) and not _is_safetensors(p, head):
                raise BundleError(f"{root}: {rel} is a pickle (by its content); spml never loads pickles")
            if head[:2] == b"PK" and (inner := _zip_holds_pickle(p)):
                raise BundleError(f"{root}: {rel} is an archive holding a pickle ({inner}); refusing to load it")


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if "\x00" in name:
        return "a NUL byte in its name"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "a '..' path component (path traversal)"
    return None


def safe_extract_zip(
    path: str | os.PathLike[str], dest: str | os.PathLike[str],
    max_bytes: int = MAX_ARCHIVE_BYTES, max_members: int = MAX_ARCHIVE_MEMBERS,
) -> Path:
    """Extract a zip into ``dest`` after checking every member; refuses traversal, links, bombs.

    Refused: absolute paths, '..' components, symbolic links, NUL bytes, duplicate names, more
    than ``max_members`` members or ``max_bytes`` uncompressed. Nothing is written unless the
    whole archive passes.
    """
    path, dest = Path(path), Path(dest)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path}: not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise BundleError(f"{path}: archive has {len(infos)} members (limit {max_members})")
        seen: set[str] = set()
        total = 0
        for info in infos:
            problem = _member_problem(info)
            if problem:
                raise BundleError(f"{path}: member {info.filename!r} has {problem}; refusing to extract")
            key = info.filename.replace("\\", "/").rstrip("/")
            if key in seen:
                raise BundleError(f"{path}: member {info.filename!r} appears twice; refusing to extract")
            seen.add(key)
            total += info.file_size
            if total > max_bytes:
                raise BundleError(f"{path}: archive expands to more than {max_bytes} bytes; refusing to extract")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in infos:
            target = (root / info.filename.replace("\\", "/")).resolve()
            if not target.is_relative_to(root):
                raise BundleError(f"{path}: member {info.filename!r} would land outside the target folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:  # the header lied about the size
                        raise BundleError(f"{path}: member {info.filename!r} is larger than declared")
                    out.write(chunk)
    return dest

