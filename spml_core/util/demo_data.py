"""Demo data for `make demo`, obtained only from a package registry.

``python -m spml_core.util.demo_data DATA_DIR`` fetches the BSD-3-licensed wheel ``sports2d==0.8.34``
from PyPI with ``pip download --no-deps`` (cached in ``build/demo-cache``), checks it against a
pinned SHA-256, and extracts its ``Sports2D/Demo/demo.mp4`` (1768x994, 30 fps, one person jumping
onto and off a box) to ``DATA_DIR/videos/demo.mp4`` with the wheel's licence beside it. The
project's annotations of that video (``demo/annotations/*.json``) are copied to
``DATA_DIR/annotations/``. StreamPoseML's example (``example_video.webm`` and its annotations, MIT, from the
pinned ``stream_pose_ml==0.3.1`` source distribution on PyPI, see :mod:`spml_core.util.example_data`)
goes beside them: the demo model learns its Left/Right Step task, and the box-jump video shows what
the model answers to movements it never saw. Running it again changes nothing; every file is written
atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

from spml_core.errors import SpmlError
from spml_core.util.atomic import atomic_path, write_bytes_atomic
from spml_core.util.example_data import ensure_fetched
from spml_core.util.pinned import pip_download, sha256_of

REQUIREMENT = "sports2d==0.8.34"
WHEEL_NAME = "sports2d-0.8.34-py3-none-any.whl"
WHEEL_SHA256 = "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d"
VIDEO_MEMBER = "Sports2D/Demo/demo.mp4"
VIDEO_SHA256 = "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039"
LICENSE_MEMBER = "sports2d-0.8.34.dist-info/licenses/LICENSE"
DEFAULT_CACHE = Path("build") / "demo-cache"
REPO_ANNOTATIONS = Path(__file__).resolve().parents[2] / "demo" / "annotations"


def fetch_wheel(cache: Path) -> Path:
    """The sports2d wheel from the cache, or downloaded into it by pip; verified by hash."""
    return pip_download(REQUIREMENT, cache, WHEEL_NAME, WHEEL_SHA256, source=False)


def extract_video(wheel: Path, target: Path) -> bool:
    """Write demo.mp4 (and its licence) from the wheel unless already there; True if written."""
    if target.is_file() and sha256_of(target) == VIDEO_SHA256:
        return False
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(VIDEO_MEMBER)
            licence = zf.read(LICENSE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise SpmlError(f"{wheel}: cannot read {VIDEO_MEMBER} ({exc})") from None
    if hashlib.sha256(data).hexdigest() != VIDEO_SHA256:
        raise SpmlError(f"{wheel}: {VIDEO_MEMBER} does not match its pinned SHA-256")
    write_bytes_atomic(target.with_name(target.name + ".LICENSE"), licence)
    write_bytes_atomic(target, data)
    return True


def copy_annotations(source: Path, dest: Path) -> list[Path]:
    """Copy the demo's annotation JSON files (if the repo has them); returns the files copied."""
    copied = []
    for src in sorted(source.glob("*.json")) if source.is_dir() else []:
        out = dest / src.name
        if out.is_file() and out.read_bytes() == src.read_bytes():
            continue
        with atomic_path(out) as tmp:
            shutil.copyfile(src, tmp)
        copied.append(out)
    return copied


def copy_example(data_dir: Path, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """StreamPoseML's example video and annotations (from the pinned sdist on PyPI) into DATA_DIR; the files written."""
    source = ensure_fetched(cache)
    copied = []
    for name, sub in (("example_video.webm", "videos"), ("example_video.json", "annotations"), ("LICENSE", "videos")):
        src = source / name
        if not src.is_file():
            continue
        out = data_dir / sub / ("example_video.webm.LICENSE" if name == "LICENSE" else name)
        if out.is_file() and out.read_bytes() == src.read_bytes():
            continue
        write_bytes_atomic(out, src.read_bytes())
        copied.append(out)
    return copied


def prepare(data_dir: Path, cache: Path = DEFAULT_CACHE, annotations: Path = REPO_ANNOTATIONS) -> Path:
    """Make DATA_DIR/videos/ (demo.mp4, example_video.webm) and DATA_DIR/annotations/; returns demo.mp4's path."""
    video = data_dir / "videos" / "demo.mp4"
    if not (video.is_file() and sha256_of(video) == VIDEO_SHA256):
        extract_video(fetch_wheel(cache), video)
        print(f"demo: wrote {video}", file=sys.stderr)
    else:
        print(f"demo: {video} is up to date", file=sys.stderr)
    copied = copy_annotations(annotations, data_dir / "annotations")
    if copied:
        print(f"demo: copied {len(copied)} annotation file(s) to {data_dir / 'annotations'}", file=sys.stderr)
    if copy_example(data_dir, cache):
        print(f"demo: copied StreamPoseML's example video and annotations (stream_pose_ml 0.3.1 sdist, MIT) to {data_dir}",
              file=sys.stderr)
    return video


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m spml_core.util.demo_data DATA_DIR [--cache DIR]."""
    parser = argparse.ArgumentParser(prog="python -m spml_core.util.demo_data", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder to fill (videos/, annotations/)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the downloaded wheel is kept")
    args = parser.parse_args(argv)
    try:
        prepare(args.data_dir, args.cache)
    except SpmlError as exc:
        print(f"spml: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
