"""Simulated devices: many in one process, each doing what the real firmware does.

Each round a device fetches its configuration, checks for firmware, downloads and
verifies it, reboots into it (and then starts over once, reporting the new version,
as a real device does after a reboot), and requests a certificate when it has none
or it expires soon. Every step prints one event line, "<device id> <event>" (device ids
never contain spaces); the README lists the events, and the demo parses them.

Listening, the devices also pull what a verified push notice names as soon as it
arrives (one pull at a time per device, never during a round).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
import yaml

from .api import ProvidoreClient
from .certificates import (
    generate_key,
    needs_renewal,
    obtain_certificate,
    refresh_certificate,
)
from .errors import ProvidoreError, SettingsError
from .firmware import receive_firmware
from .listener import (
    ListenOptions,
    NoticeInbox,
    NoticeRouter,
    WarningLimiter,
    notice_event,
    pulls_for,
    receiving,
)
from .notice import Change, Notice
from .protocol import format_time
from .pulls import certificate_event
from .settings import check_credentials, check_firmware_version

type Emit = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A simulated device's identity and the firmware it starts with."""

    device_id: str
    secret: str
    version: str
    firmware_type: str = "simulated"


def load_devices(path: Path, default_version: str) -> list[DeviceSpec]:
    """Read a YAML or JSON list of devices: id, secret, optional firmware_type and version.

    The list may stand alone or under a `devices` key.
    """
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SettingsError(f"cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError:
        raise SettingsError(f"{path} is neither valid YAML nor JSON") from None
    if isinstance(content, dict):
        content = content.get("devices")
    if not isinstance(content, list) or not content:
        raise SettingsError(f"{path} must list at least one device")
    specs = [_device_spec(path, entry, default_version) for entry in content]
    ids = [spec.device_id for spec in specs]
    if len(set(ids)) != len(ids):
        raise SettingsError(f"{path} lists a device id twice")
    return specs


def _device_spec(path: Path, entry: Any, default_version: str) -> DeviceSpec:
    if not isinstance(entry, dict) or not {"id", "secret"} <= entry.keys():
        raise SettingsError(f"{path}: every device needs an id and a secret")
    if unknown := sorted(
        str(key)
        for key in entry
        if key not in ("id", "secret", "firmware_type", "version")
    ):
        raise SettingsError(f"{path}: unknown device fields {', '.join(unknown)}")
    values = {key: value for key, value in entry.items() if value is not None}
    if not all(isinstance(value, str) for value in values.values()):
        raise SettingsError(f"{path}: device fields must be text (quote versions)")
    check_credentials(values["id"], values["secret"])
    version = values.get("version", default_version)
    check_firmware_version(version)
    return DeviceSpec(
        device_id=values["id"],
        secret=values["secret"],
        version=version,
        firmware_type=values.get("firmware_type", "simulated"),
    )


class SimulatedDevice:
    """One simulated device: its key and certificate live in memory."""

    def __init__(
        self,
        spec: DeviceSpec,
        client: ProvidoreClient,
        emit: Emit,
        renew_within: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        """Prepare the device; it makes no request before its first round."""
        self._spec = spec
        self._client = client
        self._emit_line = emit
        self._renew_within = renew_within
        self._clock = clock
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._certificate: x509.Certificate | None = None
        # A round and a notice's pull never run at the same time.
        self._busy = asyncio.Lock()

    @property
    def version(self) -> str:
        """Return the firmware version the device runs (and reports)."""
        return self._client.firmware_version

    async def run(self, rounds: int | None, interval: float) -> bool:
        """Run `rounds` rounds (None: until cancelled); return whether all succeeded."""
        self._emit(f"started ({self._spec.firmware_type}, firmware {self.version})")
        succeeded = True
        number = 0
        while rounds is None or number < rounds:
            number += 1
            succeeded = await self.run_round(number) and succeeded
            if rounds is None or number < rounds:
                await asyncio.sleep(interval)
        return succeeded

    async def run_round(self, number: int) -> bool:
        """Do what the firmware does between two sleeps; return whether every step worked."""
        async with self._busy:
            return await self._round(number)

    async def on_notice(self, notice: Notice, source: str) -> None:
        """Pull what a verified notice names, as the firmware does on receiving one."""
        steps: dict[Change, tuple[str, Callable[[], Awaitable[None]]]] = {
            Change.CONFIG: ("config", self._fetch_config),
            Change.FIRMWARE: ("firmware", self._update_firmware),
            Change.CERTIFICATE: ("certificate", self._refresh_certificate),
        }
        async with self._busy:
            self._emit(notice_event(notice, source))
            results = [
                await self._attempt(*steps[change])
                for change in pulls_for(notice.changes)
            ]
            self._emit(
                f"notice {notice.counter} {'done' if all(results) else 'failed'}"
            )

    async def _round(self, number: int) -> bool:
        results: list[bool] = []
        for _boot in range(2):
            running = self.version
            results.append(await self._attempt("config", self._fetch_config))
            results.append(await self._attempt("firmware", self._update_firmware))
            if self.version == running:
                break
        results.append(await self._attempt("certificate", self._renew_certificate))
        succeeded = all(results)
        self._emit(f"round {number} {'done' if succeeded else 'failed'}")
        return succeeded

    async def _fetch_config(self) -> None:
        document = await self._client.fetch_config()
        self._emit("config missing" if document is None else "config fetched")

    async def _update_firmware(self) -> None:
        version = await self._client.check_firmware()
        if version is None:
            self._emit("firmware up to date")
            return
        self._emit(f"firmware {version} available")
        firmware = await receive_firmware(self._client, version)
        self._emit(
            f"firmware {version} downloaded ({firmware.size} bytes, {firmware.checks})"
        )
        self._client.firmware_version = version
        self._emit(f"rebooted into {version}")

    async def _renew_certificate(self) -> None:
        if self._key is None:
            self._key = await asyncio.to_thread(generate_key)
        current = self._certificate
        if current is not None and not needs_renewal(
            current, self._key, self._clock(), self._renew_within
        ):
            expires = format_time(current.not_valid_after_utc)
            self._emit(f"certificate valid until {expires}")
            return
        self._certificate, _pem = await obtain_certificate(self._client, self._key)
        expires = format_time(self._certificate.not_valid_after_utc)
        self._emit(f"certificate issued, expires {expires}")

    async def _refresh_certificate(self) -> None:
        if self._key is None:
            self._key = await asyncio.to_thread(generate_key)
        self._certificate, _pem, outcome = await refresh_certificate(
            self._client, self._key, self._certificate, self._clock()
        )
        self._emit(certificate_event(self._certificate, outcome))

    async def _attempt(self, step: str, action: Callable[[], Awaitable[None]]) -> bool:
        try:
            await action()
        except ProvidoreError as err:
            self._emit(f"failed {step}: {err}")
            return False
        return True

    def _emit(self, event: str) -> None:
        self._emit_line(f"{self._spec.device_id} {event}")


async def simulate(
    session: aiohttp.ClientSession,
    base_url: str,
    specs: list[DeviceSpec],
    *,
    emit: Emit,
    rounds: int | None,
    interval: float,
    renew_within: timedelta,
    clock: Callable[[], datetime],
    accept_expiry_at_creation: bool = False,
    listen: ListenOptions | None = None,
    inform: Emit | None = None,
) -> bool:
    """Run every device concurrently; return whether every round of every device worked.

    With `listen`, the devices also pull on push notices, and `inform` (default: emit)
    gets a line for each notice that is ignored and about the broker connection.
    """
    devices = [
        SimulatedDevice(
            spec,
            ProvidoreClient(
                session,
                base_url,
                spec.device_id,
                spec.secret,
                spec.version,
                clock,
                accept_expiry_at_creation=accept_expiry_at_creation,
            ),
            emit,
            renew_within,
            clock,
        )
        for spec in specs
    ]
    if listen is None:
        return await _run_all(devices, rounds, interval)
    inform = inform or emit
    router = NoticeRouter(
        [
            NoticeInbox(spec.device_id, spec.secret, device.on_notice, clock)
            for spec, device in zip(specs, devices, strict=True)
        ],
        WarningLimiter(inform),
    )
    ids = [spec.device_id for spec in specs]
    async with receiving(router, listen, ids, inform) as where:
        for device_id in ids:
            emit(f"{device_id} listening on {', '.join(where)}")
        return await _run_all(devices, rounds, interval)


async def _run_all(
    devices: list[SimulatedDevice], rounds: int | None, interval: float
) -> bool:
    results = await asyncio.gather(
        *(device.run(rounds, interval) for device in devices)
    )
    return all(results)
