"""Waiting on conditions against a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time

POLL_INTERVAL = 0.2


class DemoError(Exception):
    """A demo step failed; the message says which and why."""


class Deadline:
    """A point in time that every wait of one run must finish before."""

    def __init__(self, seconds: float) -> None:
        """Start the clock: the deadline is `seconds` from now."""
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Return the seconds left (0 once past)."""
        return max(0.0, self._end - time.monotonic())


async def wait_until[T](
    what: str, probe: Callable[[], Awaitable[T | None]], deadline: Deadline
) -> T:
    """Poll `probe` until it returns something true; raise DemoError past the deadline."""
    while True:
        if result := await probe():
            return result
        if deadline.remaining() <= 0:
            raise DemoError(f"timed out waiting for {what}")
        await asyncio.sleep(min(POLL_INTERVAL, deadline.remaining()))
