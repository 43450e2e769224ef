"""Keep MediaPipe's native (absl/glog/TFLite) start-up lines off the terminal's progress bars.

MediaPipe's C++ code writes straight to file descriptor 2 when a landmarker is created and on
its first frame ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires ...",
"Using NORM_RECT without IMAGE_DIMENSIONS ..."). Python's logging cannot intercept that, so for
those two short moments fd 2 is pointed at a temporary file; afterwards each captured line goes
to the ``spml_pose_mediapipe.native`` logger at DEBUG level (seen by programs that configure
logging), or passes through to stderr untouched when ``SPML_MEDIAPIPE_LOGS=1``. Lines other
threads write in that instant are logged the same way, never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

logger = logging.getLogger("spml_pose_mediapipe.native")
PASS_THROUGH_ENV = "SPML_MEDIAPIPE_LOGS"


def _pass_through() -> bool:
    return os.environ.get(PASS_THROUGH_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Route fd 2 to a temporary file for the block, then log what MediaPipe wrote there at DEBUG."""
    if _pass_through():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a detached daemon): nothing can reach a terminal anyway
        yield
        return
    with tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    logger.debug("%s", line)
