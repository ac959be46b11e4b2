"""What `providore-client listen` pulls for a notice, and where it writes what it gets.

Each pull is the normal signed request of protocol version 1, verified as the other
commands verify it; every step prints one event line, "<device id> <event>".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
import json
from pathlib import Path

from cryptography import x509

from .api import ProvidoreClient
from .certificates import (
    CERTIFICATE_MODE,
    Refresh,
    load_certificate,
    load_or_create_key,
    refresh_certificate,
)
from .errors import ProvidoreError, ResponseRejected
from .files import write_atomically
from .firmware import download_firmware
from .listener import notice_event, pulls_for
from .notice import Change, Notice
from .protocol import format_time

type Emit = Callable[[str], None]

# A configuration document may hold passwords for the device.
CONFIG_MODE = 0o600


def certificate_event(certificate: x509.Certificate, outcome: Refresh) -> str:
    """Return the event line of a certificate step."""
    expires = format_time(certificate.not_valid_after_utc)
    if outcome is Refresh.UNCHANGED:
        return f"certificate valid until {expires}"
    return f"certificate {outcome}, expires {expires}"


class FilePuller:
    """Pulls what each notice names; writes it to the files given, else only reports it."""

    def __init__(
        self,
        client: ProvidoreClient,
        emit: Emit,
        clock: Callable[[], datetime],
        *,
        config_out: Path | None = None,
        firmware_out: Path | None = None,
        key_path: Path | None = None,
        cert_path: Path | None = None,
        count: int | None = None,
    ) -> None:
        """Prepare; `count` notices handled set `finished` (None: never)."""
        self._client = client
        self._emit_line = emit
        self._clock = clock
        self._config_out = config_out
        self._firmware_out = firmware_out
        self._key_path = key_path
        self._cert_path = cert_path
        self._count = count
        self._written_version: str | None = None
        self.handled = 0
        self.all_succeeded = True
        self.finished = asyncio.Event()

    async def pull(self, notice: Notice, source: str) -> None:
        """Pull every change the notice names, each step on its own."""
        self._emit(notice_event(notice, source))
        steps: dict[Change, Callable[[], Awaitable[None]]] = {
            Change.CONFIG: self._config,
            Change.FIRMWARE: self._firmware,
            Change.CERTIFICATE: self._certificate,
        }
        results = [
            await self._attempt(change, steps[change])
            for change in pulls_for(notice.changes)
        ]
        succeeded = all(results)
        self._emit(f"notice {notice.counter} {'done' if succeeded else 'failed'}")
        self.handled += 1
        self.all_succeeded = self.all_succeeded and succeeded
        if self._count is not None and self.handled >= self._count:
            self.finished.set()

    async def _config(self) -> None:
        document = await self._client.fetch_config()
        if document is None:
            self._emit("config missing")
            return
        if self._config_out is None:
            self._emit("config fetched")
            return
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        write_atomically(self._config_out, text.encode("utf-8"), CONFIG_MODE)
        self._emit(f"config fetched, written to {self._config_out}")

    async def _firmware(self) -> None:
        version = await self._client.check_firmware()
        if version is None:
            self._emit("firmware up to date")
            return
        target = self._firmware_out
        if target is None:
            self._emit(f"firmware {version} available")
            return
        if version == self._written_version:
            self._emit(f"firmware {version} already written to {target}")
            return
        firmware = await download_firmware(self._client, target)
        self._written_version = firmware.version
        self._emit(
            f"firmware {firmware.version} written to {target} "
            f"({firmware.size} bytes, sha256 ok)"
        )

    async def _certificate(self) -> None:
        if self._key_path is None or self._cert_path is None:
            pem = await self._client.fetch_certificate()
            if pem is None:
                self._emit("certificate missing")
                return
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise ResponseRejected("the answer is not a PEM certificate") from None
            self._emit(certificate_event(certificate, Refresh.UNCHANGED))
            return
        key, _created = load_or_create_key(self._key_path)
        current = load_certificate(self._cert_path)
        certificate, pem, outcome = await refresh_certificate(
            self._client, key, current, self._clock()
        )
        if outcome is not Refresh.UNCHANGED:
            write_atomically(self._cert_path, pem, CERTIFICATE_MODE)
        self._emit(certificate_event(certificate, outcome))

    async def _attempt(
        self, change: Change, action: Callable[[], Awaitable[None]]
    ) -> bool:
        try:
            await action()
        except ProvidoreError as err:
            self._emit(f"failed {change}: {err}")
            return False
        except OSError as err:
            self._emit(f"failed {change}: {err.strerror or err}: {err.filename}")
            return False
        return True

    def _emit(self, event: str) -> None:
        self._emit_line(f"{self._client.device_id} {event}")
