"""Progress bars for long work (tqdm on stderr; silent when disabled or not a terminal in CI)."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False) -> Any:
    """A tqdm bar usable as a context manager, with update(n) and write(msg)."""
    from tqdm.auto import tqdm

    return tqdm(total=total or None, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False)
