"""Run an iterator a few items ahead in a background thread.

Decoding (and CLAHE) run in OpenCV and inference in MediaPipe, and both release the GIL, so a
video's next frames are prepared on another core while the model works on the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_S = 0.1


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield items of ``items`` produced up to ``depth`` ahead in a thread; errors surface here.

    Close the returned generator (``contextlib.closing``) when stopping early: that stops and
    joins the thread, so whatever it reads from (a video decoder) can then be released safely.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as exc:  # handed to the consumer, which raises it
            put("error", exc)

    thread = threading.Thread(target=produce, name="spml-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()
