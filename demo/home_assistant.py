"""Home Assistant as a child process: a temporary instance for the check, and waiting on it."""

from __future__ import annotations

import asyncio
from pathlib import Path
import socket
import sys
from typing import IO

import aiohttp

from .processes import start_process
from .rest import HomeAssistantRest, answers
from .waiting import Deadline, DemoError, wait_until

REPOSITORY = Path(__file__).resolve().parents[1]
INTEGRATION = REPOSITORY / "custom_components" / "providore"

TEMPORARY_CONFIGURATION = """\
homeassistant:
  name: {name}
  internal_url: {url}
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR

frontend:
config:
api:

http:
  server_host: 127.0.0.1
  server_port: {port}

logger:
  default: warning
  logs:
    custom_components.providore: debug
"""


def free_port() -> int:
    """Return a TCP port on the loopback interface that nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_temporary_config(
    config_dir: Path, url: str, port: int, name: str = "Providore demo check"
) -> None:
    """Write a minimal configuration and link this checkout's integration into it."""
    (config_dir / "configuration.yaml").write_text(
        TEMPORARY_CONFIGURATION.format(name=name, url=url, port=port), encoding="utf-8"
    )
    (config_dir / "custom_components").mkdir()
    (config_dir / "custom_components" / "providore").symlink_to(INTEGRATION)


async def start_home_assistant(
    config_dir: Path, console: IO[bytes] | None = None
) -> asyncio.subprocess.Process:
    """Start Home Assistant from this Python environment on `config_dir`.

    Its console output goes to `console`, or to ours when None. It runs in
    `config_dir`: Python puts the working folder on its import path, and a
    `custom_components` folder there would hide the config folder's own.
    """
    config_dir = config_dir.resolve()
    return await start_process(
        sys.executable,
        "-m",
        "homeassistant",
        "--config",
        str(config_dir),
        "--skip-pip",
        stdout=console,
        cwd=config_dir,
    )


async def wait_until_answering(
    session: aiohttp.ClientSession,
    url: str,
    process: asyncio.subprocess.Process,
    deadline: Deadline,
) -> None:
    """Wait until Home Assistant's HTTP server answers; fail when it exits first."""

    async def serving() -> bool:
        if process.returncode is not None:
            raise DemoError(f"Home Assistant exited with status {process.returncode}")
        return await answers(session, url)

    await wait_until(f"Home Assistant to answer at {url}", serving, deadline)


async def wait_until_running(rest: HomeAssistantRest, deadline: Deadline) -> None:
    """Wait until Home Assistant has finished starting (every integration set up)."""

    async def running() -> bool:
        config = await rest.get("/api/config")
        return bool(config.get("state") == "RUNNING")

    await wait_until("Home Assistant to finish starting", running, deadline)
