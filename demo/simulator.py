"""The simulated devices: `providore-client simulate` as a child process, its events followed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
import sys
from typing import cast

from .devices_file import read_devices, record_version
from .events import DeviceEvents
from .processes import start_process, stop_process

STOP_TIMEOUT = 5.0


class Simulator:
    """Running simulated devices: their progress, and each event line handed to `echo`."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        events: DeviceEvents,
        devices_path: Path,
        echo: Callable[[str], None],
    ) -> None:
        """Follow a started simulator process."""
        self.events = events
        self._process = process
        self._devices_path = devices_path
        self._echo = echo
        self._reader = asyncio.create_task(self._follow())

    @classmethod
    async def start(
        cls,
        url: str,
        devices_path: Path,
        interval: float,
        echo: Callable[[str], None],
        notice_port: int,
    ) -> Simulator:
        """Start every device of the devices file against Home Assistant at `url`.

        The devices also listen for push notices on UDP `notice_port` of 127.0.0.1.
        """
        devices = await asyncio.to_thread(read_devices, devices_path)
        process = await start_process(
            sys.executable,
            "-m",
            "providore_client",
            "simulate",
            "--server",
            f"{url}/api/providore",
            "--devices-file",
            str(devices_path),
            "--interval",
            f"{interval:g}",
            "--listen",
            "--udp-address",
            "127.0.0.1",
            "--udp-port",
            str(notice_port),
            stdout=asyncio.subprocess.PIPE,
        )
        events = DeviceEvents([device.id for device in devices])
        return cls(process, events, devices_path, echo)

    async def _follow(self) -> None:
        """Read event lines until the simulator ends; remember each device's new version."""
        # Started with stdout=PIPE, so the process has a stdout reader.
        lines = cast(asyncio.StreamReader, self._process.stdout)
        async for raw in lines:
            line = raw.decode(errors="replace").rstrip()
            self._echo(line)
            if rebooted := self.events.feed(line):
                await asyncio.to_thread(record_version, self._devices_path, *rebooted)

    async def stop(self) -> None:
        """Stop the simulated devices and wait until their last line is read."""
        await stop_process(self._process, STOP_TIMEOUT)
        await self._reader
