"""The demo's command line: `--check` (headless, temporary) or `--develop CONFIG_DIR`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
import signal
import sys
from typing import Any

from .check import run_check
from .develop import run_develop
from .waiting import DemoError

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="The Providore demo: Home Assistant with twelve simulated devices.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--check",
        action="store_true",
        help="run the demo headless on a fresh temporary Home Assistant, install one "
        "firmware update, exit 0 when everything worked",
    )
    mode.add_argument(
        "--develop",
        type=Path,
        metavar="CONFIG_DIR",
        help="run Home Assistant on CONFIG_DIR with the demo (what ./scripts/develop does)",
    )
    args = parser.parse_args(argv)
    work = run_check() if args.check else run_develop(args.develop)
    try:
        return asyncio.run(until_signalled(work))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except DemoError as err:
        sys.stderr.write(f"scripts/demo: error: {err}\n")
        return 1


async def until_signalled(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`; SIGINT, SIGTERM or SIGHUP cancel it, so that it cleans up.

    Further signals do not interrupt the clean-up.
    """
    task = asyncio.ensure_future(work)

    def cancel_once() -> None:
        if not task.cancelling():
            task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, cancel_once)
    try:
        return await task
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
