"""Trying an untrusted bundle in a child process before this process loads it.

A model component's loader is native code (XGBoost, torch) that can crash the whole process on a
corrupted weights file: eight changed bytes in ``model.ubj`` made XGBoost segfault. An uploaded or
served bundle is therefore first loaded and run on a synthetic window in a child process under a
memory and a time limit; only a bundle that passes is loaded here. ``python -m spml_core.models.vet
BUNDLE`` is the child: it prints the bundle's info as JSON, or a one-line error and exits 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.models.archive import BundleError
from spml_core.models.predictor import load_bundle

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_BYTES = 4 << 30
FAILED = 2
ERROR_MARK = "spml-vet-error: "


def _limit_memory(max_bytes: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))

    return apply


def vet_bundle(
    path: str | os.PathLike[str], timeout_s: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_BYTES,
    label: str | None = None,
) -> dict[str, Any]:
    """Load and run a bundle in a child process; its info, or BundleError saying why it failed (crash, limit)."""
    label = label or str(path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the check must not take the server's cores
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "spml_core.models.vet", str(path)], capture_output=True, text=True,
            timeout=timeout_s, env=env, preexec_fn=_limit_memory(memory_bytes) if os.name == "posix" else None,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(f"{label}: loading and running the model took longer than {timeout_s:g} s; refused") from None
    if proc.returncode == 0:
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BundleError(f"{label}: the model check printed no result") from None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    if proc.returncode == FAILED and lines and lines[-1].startswith(ERROR_MARK):
        raise BundleError(json.loads(lines[-1][len(ERROR_MARK):]).replace(str(path), label))
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name if -proc.returncode in signal.valid_signals() else "a signal"
        raise BundleError(f"{label}: loading the model crashed ({name}); its weights are corrupt or not "
                          "made by this model component")
    if any("MemoryError" in ln or "bad_alloc" in ln for ln in lines):
        raise BundleError(f"{label}: the model needs more than {memory_bytes >> 20} MiB to load and run; refused")
    tail = lines[-1][:300] if lines else f"exit status {proc.returncode}"
    raise BundleError(f"{label}: the model failed to load or run ({tail})")


def synthetic_window(frames: int, seed: int = 0) -> np.ndarray:
    """A plausible standing pose with small noise: (frames, 33, 4), x/y in 0..1, visibility 1."""
    rng = np.random.default_rng(seed)
    base = np.column_stack([rng.uniform(0.35, 0.65, 33), np.linspace(0.1, 0.9, 33), rng.normal(0, 0.05, 33),
                            np.ones(33)])
    noise = rng.normal(0, 0.003, (frames, 33, 4)) * np.array([1, 1, 1, 0])
    return (base[None] + noise).astype(np.float32)


def run_check(path: str) -> dict[str, Any]:
    """Load the bundle here and classify one synthetic window (or one row of zeros); its info."""
    predictor = load_bundle(path)
    if predictor.spec is not None:
        predictor.predict_window(synthetic_window(predictor.window or 1))
    else:
        predictor.predict_rows(np.zeros((1, len(predictor.manifest.features.columns)), np.float32))
    return predictor.info()


def main(argv: list[str] | None = None) -> int:
    """Child entry point: print the bundle's info as JSON (exit 0) or one error line (exit 2)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        info = run_check(args[0])
    except SpmlError as exc:
        print(ERROR_MARK + json.dumps(str(exc) or type(exc).__name__), file=sys.stderr)
        return FAILED
    except MemoryError:
        print(ERROR_MARK + json.dumps(f"{args[0]}: the model needs more memory than the check allows; refused"),
              file=sys.stderr)
        return FAILED
    except Exception as exc:  # a hostile file reaches the component's own parser: any error is a refusal
        print(ERROR_MARK + json.dumps(f"{args[0]}: the model failed to load or run ({type(exc).__name__}: "
                                      f"{str(exc)[:300]})"), file=sys.stderr)
        return FAILED
    print(json.dumps(info, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
