"""Home Assistant as a child process: its configuration folder, starting it, waiting on it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import socket
import sys
from typing import IO, Any

import aiohttp
import yaml

from .processes import start_process
from .rest import HomeAssistantRest, answers
from .waiting import Deadline, DemoError, wait_until

REPOSITORY = Path(__file__).resolve().parents[1]
INTEGRATION = REPOSITORY / "custom_components" / "providore"

DEVELOP_CONFIGURATION = REPOSITORY / "config" / "configuration.yaml"
# Onboarding's store, in the private storage folder of a configuration folder.
ONBOARDING_STORE = Path(".storage") / "onboarding"
ONBOARDING_STORE_VERSION = 4
CORE_CONFIG_STEP = "core_config"
# The network integration's store: which interfaces zeroconf and announcements use.
NETWORK_STORE = Path(".storage") / "core.network"
LOOPBACK_ADAPTER = "lo"


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """Return a TCP (or UDP) port on the loopback interface that nobody uses now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_temporary_config(
    config_dir: Path, url: str, port: int, name: str = "Providore demo check"
) -> None:
    """Write ./scripts/develop's configuration for `url` on 127.0.0.1:`port`.

    It differs from config/configuration.yaml only in its name, URL and address; this
    checkout's integration is linked in. Home Assistant's network integration is set
    to loopback only: its zeroconf (which Providore's advertisement needs) then sends
    nothing on the machine's network, as a test must not.
    """
    configuration = yaml.safe_load(DEVELOP_CONFIGURATION.read_text(encoding="utf-8"))
    configuration["homeassistant"] |= {"name": name, "internal_url": url}
    configuration["http"] |= {"server_host": "127.0.0.1", "server_port": port}
    (config_dir / "configuration.yaml").write_text(
        yaml.safe_dump(configuration, sort_keys=False), encoding="utf-8"
    )
    (config_dir / "custom_components").mkdir()
    (config_dir / "custom_components" / "providore").symlink_to(INTEGRATION)
    _write_store(
        config_dir / NETWORK_STORE, 1, {"configured_adapters": [LOOPBACK_ADAPTER]}
    )


def _write_store(path: Path, version: int, data: dict[str, Any]) -> None:
    """Write a Home Assistant store that does not exist yet, private like its own."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    content = {"version": version, "minor_version": 1, "key": path.name, "data": data}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2)


def skip_core_config_onboarding(config_dir: Path) -> None:
    """Mark onboarding's core configuration step done on an instance never onboarded.

    Finishing that step sets up google_translate, met, radio_browser and shopping_list,
    whose packages (gTTS, PyMetno, radios) this environment lacks: tracebacks and a failed
    card. The demo's configuration.yaml holds the core configuration instead (name,
    country, units, time zone). An instance with onboarding data is left as it is.
    """
    store = config_dir / ONBOARDING_STORE
    if store.exists():
        return
    # Never replaces a file made meanwhile.
    _write_store(store, ONBOARDING_STORE_VERSION, {"done": [CORE_CONFIG_STEP]})


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
