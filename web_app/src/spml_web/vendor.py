"""Copy the page's third-party assets from npm's node_modules into static/vendor (run at setup).

The page never loads anything from a CDN: MediaPipe Tasks Vision (JS bundle and wasm) and the
Socket.IO client come from the exact versions pinned in web_app/package.json (package-lock.json),
installed with ``npm ci`` and copied here by ``python -m spml_web.vendor --from web_app/node_modules``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from spml_core import write_text_atomic
from spml_core.errors import SpmlError

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"

# (npm package, files relative to the package, destination folder under vendor/)
ASSETS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "@mediapipe/tasks-vision",
        (
            "vision_bundle.mjs",
            "wasm/vision_wasm_internal.js",
            "wasm/vision_wasm_internal.wasm",
            "wasm/vision_wasm_module_internal.js",
            "wasm/vision_wasm_module_internal.wasm",
            "wasm/vision_wasm_nosimd_internal.js",
            "wasm/vision_wasm_nosimd_internal.wasm",
            "LICENSE",
        ),
        "tasks-vision",
    ),
    ("socket.io-client", ("dist/socket.io.esm.min.js", "LICENSE"), "socket.io"),
)
# Files the page cannot work without (LICENSE files are copied when the package ships them).
REQUIRED = ("tasks-vision/vision_bundle.mjs", "tasks-vision/wasm/vision_wasm_module_internal.wasm",
            "socket.io/socket.io.esm.min.js")


def vendor_status(vendor_dir: Path = VENDOR_DIR) -> dict[str, object]:
    """What is installed: {"complete": bool, "missing": [...], "versions": {...}}."""
    missing = [rel for rel in REQUIRED if not (vendor_dir / rel).is_file()]
    versions: dict[str, str] = {}
    manifest = vendor_dir / "VERSIONS.json"
    if manifest.is_file():
        versions = json.loads(manifest.read_text(encoding="utf-8"))
    return {"complete": not missing, "missing": missing, "versions": versions}


def copy_assets(node_modules: Path, vendor_dir: Path = VENDOR_DIR) -> dict[str, str]:
    """Copy the pinned assets; returns {package: version}. Raises SpmlError naming what is missing."""
    versions: dict[str, str] = {}
    for package, files, dest in ASSETS:
        pkg_dir = node_modules / package
        meta = pkg_dir / "package.json"
        if not meta.is_file():
            raise SpmlError(
                f"{pkg_dir}: npm package {package} is not installed; run `npm ci` in web_app/ first"
            )
        versions[package] = json.loads(meta.read_text(encoding="utf-8"))["version"]
        for rel in files:
            src = pkg_dir / rel
            if not src.is_file():
                if rel == "LICENSE":
                    continue
                raise SpmlError(f"{src}: missing from npm package {package} {versions[package]}")
            target = vendor_dir / dest / Path(rel).relative_to("dist") if rel.startswith("dist/") else (
                vendor_dir / dest / rel
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            shutil.copyfile(src, tmp)
            tmp.replace(target)
    write_text_atomic(vendor_dir / "VERSIONS.json", json.dumps(versions, indent=2) + "\n")
    return versions


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m spml_web.vendor --from web_app/node_modules [--to DIR]."""
    parser = argparse.ArgumentParser(prog="python -m spml_web.vendor", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="node_modules", type=Path, required=True, help="npm node_modules folder")
    parser.add_argument("--to", type=Path, default=VENDOR_DIR, help=f"destination (default {VENDOR_DIR})")
    args = parser.parse_args(argv)
    try:
        versions = copy_assets(args.node_modules, args.to)
    except SpmlError as exc:
        print(f"spml_web.vendor: error: {exc}", file=sys.stderr)
        return 1
    print("spml_web.vendor: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f" -> {args.to}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
