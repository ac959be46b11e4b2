"""The simulated devices as child processes, their events followed.

`providore-client simulate` plays the Providore devices, `providore-client esphome
simulate` each ESPHome device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
import sys
from typing import cast

from .devices_file import (
    read_devices,
    read_esphome_devices,
    record_esphome_version,
    record_version,
)
from .events import DeviceEvents
from .processes import start_process, stop_process

STOP_TIMEOUT = 5.0


class Simulator:
    """Running simulated devices: their progress, and each event line handed to `echo`."""

    def __init__(
        self,
        processes: list[tuple[asyncio.subprocess.Process, Callable[[str, str], None]]],
        events: DeviceEvents,
        echo: Callable[[str], None],
    ) -> None:
        """Follow started simulator processes, each with how to record a new version."""
        self.events = events
        self._processes = [process for process, _ in processes]
        self._echo = echo
        self._readers = [
            asyncio.create_task(self._follow(process, record))
            for process, record in processes
        ]

    @classmethod
    async def start(
        cls,
        url: str,
        devices_path: Path,
        esphome_path: Path,
        interval: float,
        echo: Callable[[str], None],
        notice_port: int,
    ) -> Simulator:
        """Start every device of the devices files against Home Assistant at `url`.

        The Providore devices also listen for push notices on UDP `notice_port` of
        127.0.0.1.
        """
        devices = await asyncio.to_thread(read_devices, devices_path)
        esphome_devices = await asyncio.to_thread(read_esphome_devices, esphome_path)
        processes = [
            (
                await _start_client(
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
                ),
                lambda device_id, version: record_version(
                    devices_path, device_id, version
                ),
            )
        ]
        for device in esphome_devices:
            process = await _start_client(
                "esphome",
                "simulate",
                "--source",
                device.source,
                "--chip-family",
                device.chip_family,
                "--firmware-version",
                device.version,
                "--name",
                device.name,
                "--interval",
                f"{interval:g}",
            )
            processes.append(
                (
                    process,
                    lambda name, version: record_esphome_version(
                        esphome_path, name, version
                    ),
                )
            )
        events = DeviceEvents(
            [device.id for device in devices],
            tuple(device.name for device in esphome_devices),
        )
        return cls(processes, events, echo)

    async def _follow(
        self,
        process: asyncio.subprocess.Process,
        record: Callable[[str, str], None],
    ) -> None:
        """Read event lines until the process ends; remember each device's new version."""
        # Started with stdout=PIPE, so the process has a stdout reader.
        lines = cast(asyncio.StreamReader, process.stdout)
        async for raw in lines:
            line = raw.decode(errors="replace").rstrip()
            self._echo(line)
            if rebooted := self.events.feed(line):
                await asyncio.to_thread(record, *rebooted)

    async def stop(self) -> None:
        """Stop the simulated devices and wait until their last lines are read."""
        for process in self._processes:
            await stop_process(process, STOP_TIMEOUT)
        for reader in self._readers:
            await reader


async def _start_client(*arguments: str) -> asyncio.subprocess.Process:
    return await start_process(
        sys.executable,
        "-m",
        "providore_client",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
    )
