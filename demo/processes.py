"""Child processes in their own process group, always stopped with everything they started."""

from __future__ import annotations

import asyncio
from contextlib import suppress
import os
from pathlib import Path
import signal
from typing import IO


async def start_process(
    *command: str, stdout: IO[bytes] | int | None = None, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """Start `command` in a new session, so that signals reach only whom we send them to."""
    return await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
    )


async def stop_process(
    process: asyncio.subprocess.Process, grace_seconds: float
) -> int:
    """Stop a process group: SIGTERM, then SIGKILL after `grace_seconds`; return its status."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return await asyncio.wait_for(asyncio.shield(process.wait()), grace_seconds)
    except TimeoutError:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return await process.wait()
