"""`./scripts/develop`: Home Assistant on config/, with the demo set up on its first run.

The first run (an instance nobody has onboarded) onboards a development user, sets up
the demo and starts the simulated devices; later runs restart the simulated devices from
the saved devices file. Home Assistant's output stays on the terminal; the devices' event
lines go to a log file beside the devices file. Stopping (Ctrl+C) stops everything.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
import sys
from typing import IO

import aiohttp

from .home_assistant import (
    skip_core_config_onboarding,
    start_home_assistant,
    wait_until_answering,
    wait_until_running,
)
from .processes import stop_process
from .rest import HomeAssistantRest, Login, needs_onboarding, onboard
from .scenario import (
    DEMO_DEVICES,
    ESPHOME_DEVICE,
    NEW_VERSION,
    devices_file,
    esphome_devices_file,
    set_up_demo,
)
from .simulator import Simulator
from .waiting import Deadline, DemoError

DEVELOP_URL = "http://127.0.0.1:8123"
BROWSER_URL = "http://localhost:8123"
DEVELOPMENT_LOGIN = Login("dev", "providore-dev")
START_TIMEOUT = 300.0
DEVICE_INTERVAL = 10.0
# The devices listen for push notices on this UDP port of 127.0.0.1 (the default).
NOTICE_PORT = 4870
HOME_ASSISTANT_STOP_TIMEOUT = 60.0


async def run_develop(config_dir: Path) -> int:
    """Run Home Assistant (and the demo) until it stops; return its exit status."""
    stack = AsyncExitStack()
    try:
        skip_core_config_onboarding(config_dir)
        hass = await start_home_assistant(config_dir)
        stack.push_async_callback(stop_process, hass, HOME_ASSISTANT_STOP_TIMEOUT)
        async with aiohttp.ClientSession() as session:
            await wait_until_answering(
                session, DEVELOP_URL, hass, Deadline(START_TIMEOUT)
            )
            first_run = await needs_onboarding(session, DEVELOP_URL)
            if first_run:
                await _set_up(session, config_dir)
        path = devices_file(config_dir)
        if not path.exists() and not first_run:
            _banner(
                [
                    "The Providore demo is not set up on this instance (its setup",
                    "failed or was stopped, or the instance was made with --no-demo).",
                    "To set it up: stop Home Assistant, empty config/ (keep",
                    "configuration.yaml) and run ./scripts/develop again.",
                ]
            )
        if path.exists():
            log = stack.enter_context(
                (path.parent / "simulator.log").open("a", encoding="utf-8")
            )
            simulator = await Simulator.start(
                DEVELOP_URL,
                path,
                esphome_devices_file(config_dir),
                DEVICE_INTERVAL,
                _writer(log),
                NOTICE_PORT,
            )
            stack.push_async_callback(simulator.stop)
            _banner(_instructions(config_dir))
        return await hass.wait()
    finally:
        await stack.aclose()


async def _set_up(session: aiohttp.ClientSession, config_dir: Path) -> None:
    """Onboard the development user and set up the demo; a failure leaves HA running."""
    _banner(
        [
            "This is a DEVELOPMENT instance: onboarding it with a fixed user,",
            f"user name '{DEVELOPMENT_LOGIN.username}', "
            f"password '{DEVELOPMENT_LOGIN.password}'.",
            "Setting up the Providore demo...",
        ]
    )
    try:
        rest = HomeAssistantRest(
            session, DEVELOP_URL, await onboard(session, DEVELOP_URL, DEVELOPMENT_LOGIN)
        )
        await wait_until_running(rest, Deadline(START_TIMEOUT))
        await set_up_demo(rest, config_dir, NOTICE_PORT)
    except (DemoError, aiohttp.ClientError, OSError) as err:
        _banner(
            [
                f"The demo could not be set up: {err}",
                "Home Assistant keeps running. To start over: stop it, empty config/",
                "(keep configuration.yaml) and run ./scripts/develop again.",
            ]
        )


def _instructions(config_dir: Path) -> list[str]:
    names = ", ".join(device.name for device in DEMO_DEVICES)
    return [
        f"Providore demo: twelve simulated devices ({names} and nine fleet",
        f"sensors) are calling Home Assistant every {DEVICE_INTERVAL:g} s, and an",
        "ESPHome device checks its manifest as often.",
        "",
        f"1. Open {BROWSER_URL} and log in as '{DEVELOPMENT_LOGIN.username}',",
        f"   password '{DEVELOPMENT_LOGIN.password}' (a DEVELOPMENT instance).",
        "2. Settings -> Devices & services -> Providore: open a device. It is",
        "   connected, has fetched its configuration and holds a certificate.",
        f"3. Its Firmware update offers {NEW_VERSION}: press Update and watch the",
        "   device download it at once (a push notice), reboot and report the",
        "   new version.",
        "4. Configure on the Providore entry -> Start a rollout: the others",
        "   update in waves; follow it on the Providore device.",
        f"5. {ESPHOME_DEVICE.name} is a simulated ESPHome device: Configure -> Show",
        "   YAML gives what a real one needs; its Firmware update works the same.",
        "",
        f"Device events: {devices_file(config_dir).parent / 'simulator.log'}",
        "Ctrl+C stops Home Assistant and the devices.",
    ]


def _banner(lines: list[str]) -> None:
    rule = "=" * 72
    sys.stdout.write("\n".join([rule, *lines, rule]) + "\n")
    sys.stdout.flush()


def _writer(log: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    return write
