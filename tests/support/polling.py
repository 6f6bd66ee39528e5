"""Waiting on a stack of real processes: poll a condition, and show the stack's log if it never holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def wait_for(
    what: str,
    condition: Callable[[], Any],
    timeout: float,
    log: Path,
    *,
    every: float = 1.0,
    tolerated: tuple[type[Exception], ...] = (httpx.HTTPError,),
) -> Any:
    """The first truthy value of ``condition()``; an error in ``tolerated`` counts as not yet.

    Fails after ``timeout`` seconds with the end of ``log``: the processes' own account of
    why is what a reader of the failure needs.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except tolerated:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}")
