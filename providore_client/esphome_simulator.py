"""A simulated ESPHome device: it checks its manifest, installs what it is offered, reboots.

It does what an ESPHome device with `update: platform: http_request` does when an
automation installs every update at once: each round it reads its manifest; when a
version other than the running one is offered it downloads the image, checks the MD5,
"reboots" into the version and checks again, as ESPHome does once it booted. Every
step prints one line, "<name> <event>", like `simulate` (the demo parses both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
import tempfile

import aiohttp

from .errors import ProvidoreError
from .esphome import download_update, fetch_update

type Emit = Callable[[str], None]


class SimulatedEsphomeDevice:
    """One ESPHome device: its chip family and the project version it runs."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        source: str,
        chip_family: str,
        version: str,
        *,
        name: str,
        emit: Emit,
    ) -> None:
        """Prepare the device; it makes no request before its first round."""
        self._session = session
        self._source = source
        self._chip_family = chip_family
        self.version = version
        self._name = name
        self._emit_line = emit

    async def run(self, rounds: int | None, interval: float) -> bool:
        """Run `rounds` rounds (None: until cancelled); return whether all succeeded."""
        self._emit(f"started (esphome {self._chip_family}, firmware {self.version})")
        succeeded = True
        number = 0
        while rounds is None or number < rounds:
            number += 1
            succeeded = await self.run_round(number) and succeeded
            if rounds is None or number < rounds:
                await asyncio.sleep(interval)
        return succeeded

    async def run_round(self, number: int) -> bool:
        """Check (and after an install, check again once booted); return whether it worked."""
        succeeded = True
        for _boot in range(2):
            running = self.version
            try:
                await self._check_and_install()
            except ProvidoreError as err:
                self._emit(f"failed firmware: {err}")
                succeeded = False
            if self.version == running:
                break
        self._emit(f"round {number} {'done' if succeeded else 'failed'}")
        return succeeded

    async def _check_and_install(self) -> None:
        update = await fetch_update(self._session, self._source, self._chip_family)
        if not update.offers_update(self.version):
            self._emit("firmware up to date")
            return
        version = update.latest_version
        self._emit(f"firmware {version} available")
        with tempfile.TemporaryDirectory(prefix="providore-esphome-") as folder:
            firmware = await download_update(
                self._session, update, Path(folder) / "firmware.ota.bin"
            )
        checks = "md5 and sha256 ok" if firmware.sha256_checked else "md5 ok"
        self._emit(f"firmware {version} downloaded ({firmware.size} bytes, {checks})")
        self.version = version
        self._emit(f"rebooted into {version}")

    def _emit(self, event: str) -> None:
        self._emit_line(f"{self._name} {event}")
