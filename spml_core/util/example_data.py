"""StreamPoseML's example video and annotations, from ../shared or from PyPI's source distribution.

The tests, the benchmarks and ``make setup`` all look the example up with :func:`example_dir`:
``../shared/data/streamposeml_example`` beside the repository when it is there (unless
``SPML_NO_SHARED=1``), else the copy that ``python -m spml_core.util.example_data`` extracted into
``build/demo-cache/streamposeml_example`` from the MIT-licensed ``stream_pose_ml==0.3.1`` source
distribution (``pip download --no-deps --no-binary :all:``). The archive and both files are
pinned by SHA-256; once fetched, nothing touches the network again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
from pathlib import Path

from spml_core.errors import SpmlError
from spml_core.util.atomic import write_bytes_atomic
from spml_core.util.pinned import pip_download, sha256_of

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_EXAMPLE = (REPO_ROOT / ".." / "shared" / "data" / "streamposeml_example").resolve()
DEFAULT_CACHE = REPO_ROOT / "build" / "demo-cache"
REQUIREMENT = "stream_pose_ml==0.3.1"
SDIST_NAME = "stream_pose_ml-0.3.1.tar.gz"
SDIST_SHA256 = "613c40312458c9dc27ac6ef08782091fff1f71016673cf9752bcef63abd97922"
# file in the example folder -> (member of the sdist, its SHA-256)
MEMBERS = {
    "example_video.webm": ("stream_pose_ml-0.3.1/example_data/input/source_videos/example_video.webm",
                           "fcc42df78f89e821869a81eaa1861bfcb4dafc800bdec7cfd889b5aae708356b"),
    "example_video.json": ("stream_pose_ml-0.3.1/example_data/input/source_annotations/example_video.json",
                           "aafb97772a3a7d7a3aa7cc7aef4fa1cd62f8536f534869829a6012ccb759fd2c"),
}
LICENSE_MEMBER = "stream_pose_ml-0.3.1/LICENSE"
NO_SHARED_ENV = "SPML_NO_SHARED"


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MEMBERS)


def fetch_sdist(cache: Path = DEFAULT_CACHE) -> Path:
    """The stream_pose_ml 0.3.1 sdist from the cache, or downloaded into it by pip; verified by hash."""
    return pip_download(REQUIREMENT, cache, SDIST_NAME, SDIST_SHA256, source=True,
                        why="the example video comes from it, 16 MB, once")


def extract_example(sdist: Path, dest: Path) -> Path:
    """Write example_video.webm/.json and StreamPoseML's LICENSE from the sdist into DEST (checked by hash)."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for name, (member, digest) in MEMBERS.items():
                out = dest / name
                if out.is_file() and sha256_of(out) == digest:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    raise KeyError(member)
                data = fh.read()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise SpmlError(f"{sdist}: {member} does not match its pinned SHA-256")
                write_bytes_atomic(out, data)
            licence = tar.extractfile(LICENSE_MEMBER)
            if licence is not None and not (dest / "LICENSE").is_file():
                write_bytes_atomic(dest / "LICENSE", licence.read())
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise SpmlError(f"{sdist}: cannot read the example from it ({exc})") from None
    return dest


def fetched_dir(cache: Path = DEFAULT_CACHE) -> Path:
    """Where the fetched copy of the example lives inside the cache."""
    return cache / "streamposeml_example"


def ensure_fetched(cache: Path = DEFAULT_CACHE) -> Path:
    """The fetched example folder, extracting it (and downloading the sdist) only if it is not there yet."""
    dest = fetched_dir(cache)
    if _complete(dest) and all(sha256_of(dest / n) == d for n, (_m, d) in MEMBERS.items()):
        return dest
    return extract_example(fetch_sdist(cache), dest)


def shared_allowed() -> bool:
    """False when SPML_NO_SHARED is set to anything but 0/empty (to check the fetched copy is enough)."""
    return os.environ.get(NO_SHARED_ENV, "").strip() in ("", "0")


def example_dir(cache: Path = DEFAULT_CACHE, fetch: bool = True) -> Path:
    """The folder with example_video.webm and example_video.json: ../shared if present, else the fetched copy.

    With ``fetch`` the copy is made from the cached (or downloaded) sdist when missing; without it
    a missing copy raises. Either way the error says how to get the data.
    """
    if shared_allowed() and _complete(SHARED_EXAMPLE):
        return SHARED_EXAMPLE
    dest = fetched_dir(cache)
    if _complete(dest):
        return dest
    if not fetch:
        raise SpmlError(f"StreamPoseML example not found in {SHARED_EXAMPLE} nor {dest}: run `make setup` "
                        f"(or python -m spml_core.util.example_data)")
    try:
        return ensure_fetched(cache)
    except SpmlError as exc:
        raise SpmlError(f"StreamPoseML example not found in {SHARED_EXAMPLE} nor {dest}, and fetching it "
                        f"failed: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m spml_core.util.example_data [--cache DIR]; prints the example folder."""
    parser = argparse.ArgumentParser(prog="python -m spml_core.util.example_data", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the sdist and its example are kept")
    args = parser.parse_args(argv)
    try:
        print(ensure_fetched(args.cache))
    except SpmlError as exc:
        print(f"spml: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
