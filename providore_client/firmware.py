"""Firmware downloads: verified over the whole file, written atomically, resumable."""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import hmac
from pathlib import Path
from typing import BinaryIO

from .api import FirmwareStream, ProvidoreClient
from .errors import ConnectionFailed, RangeNotSatisfiable, ResponseRejected
from .files import commit_file
from .protocol import ResponseVerifier

_READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Firmware:
    """A firmware image that passed every check.

    `version` is None when the server did not name it; `sha256_checked` is False when
    it gave no SHA-256, so that the signature over the whole file was the only check.
    """

    version: str | None
    size: int
    resumed_from: int
    sha256_checked: bool

    @property
    def checks(self) -> str:
        """Say which checks the file passed, for the user."""
        return "sha256 ok" if self.sha256_checked else "signature ok, no SHA-256 given"


class FirmwareCheck:
    """Check a firmware file as it arrives: size, signature and SHA-256 of all its bytes.

    The SHA-256 is checked when the server gives one (the original Providore server does not).
    """

    def __init__(self, secret: str, stream: FirmwareStream) -> None:
        """Expect the file the stream's headers describe."""
        self._stream = stream
        self._signature = ResponseVerifier(secret, stream.stamp)
        self._sha256 = hashlib.sha256()
        self.received = 0

    def update(self, chunk: bytes) -> None:
        """Add the next bytes of the file."""
        self.received += len(chunk)
        if self.received > self._stream.size:
            raise ResponseRejected("the server sent more firmware than it announced")
        self._signature.update(chunk)
        self._sha256.update(chunk)

    def verify(self) -> Firmware:
        """Raise ResponseRejected unless the whole file arrived intact."""
        if self.received != self._stream.size:
            raise ConnectionFailed(
                f"the download stopped after {self.received} of {self._stream.size} bytes"
            )
        self._signature.verify()
        expected = self._stream.sha256
        if expected is not None and not hmac.compare_digest(
            self._sha256.hexdigest(), expected
        ):
            raise ResponseRejected(
                "the firmware's SHA-256 does not match X-Firmware-SHA256"
            )
        return Firmware(
            version=self._stream.version,
            size=self.received,
            resumed_from=self._stream.offset,
            sha256_checked=expected is not None,
        )


async def receive_firmware(client: ProvidoreClient, version: str) -> Firmware:
    """Download and verify firmware `version` without keeping it, as a simulated device does.

    An answer for another version is refused before its body is read: the device would
    otherwise reboot into a version it did not ask for. An answer that names no version
    can only be taken for the one asked for.
    """
    async with client.firmware(version=version) as stream:
        if stream.version not in (None, version):
            raise ResponseRejected(
                f"the server sent firmware {stream.version}, not the requested {version}"
            )
        check = FirmwareCheck(client.secret, stream)
        async for chunk in stream.chunks:
            check.update(chunk)
        return check.verify()


def partial_path(target: Path) -> Path:
    """Return where an unfinished download of target is kept: target.part."""
    return target.with_name(target.name + ".part")


async def download_firmware(client: ProvidoreClient, target: Path) -> Firmware:
    """Download the device's firmware into target, resuming target.part if there is one.

    Bytes go to target.part as they arrive; a broken connection keeps it for the next
    run, which asks for the rest with a Range request. Only a file whose signature and
    SHA-256 match is renamed to target. A resumed file that does not verify is
    discarded and downloaded once more from the start.
    """
    partial = partial_path(target)
    try:
        try:
            return await _download(client, partial, target)
        except (ResponseRejected, RangeNotSatisfiable):
            if not partial.exists():
                raise
            partial.unlink()
            return await _download(client, partial, target)
    except ConnectionFailed as err:
        if not partial.exists():
            raise
        kept = partial.stat().st_size
        raise ConnectionFailed(
            f"{err}; {kept} bytes kept in {partial}: run the command again to resume"
        ) from None


async def _download(client: ProvidoreClient, partial: Path, target: Path) -> Firmware:
    offset = partial.stat().st_size if partial.exists() else 0
    resuming = offset > 0
    try:
        async with client.firmware(offset) as stream:
            check = FirmwareCheck(client.secret, stream)
            with _open_partial(partial, stream.offset) as file:
                if stream.offset:
                    _reread(file, check)
                async for chunk in stream.chunks:
                    check.update(chunk)
                    file.write(chunk)
            firmware = check.verify()
    except ResponseRejected:
        if not resuming:
            partial.unlink(missing_ok=True)
        raise
    commit_file(partial, target)
    return firmware


def _open_partial(partial: Path, offset: int) -> BinaryIO:
    """Open the partial file to append at offset (0 starts it over)."""
    file = partial.open("r+b" if offset else "wb")
    file.truncate(offset)
    return file


def _reread(file: BinaryIO, check: FirmwareCheck) -> None:
    """Feed the bytes already on disk to the check, leaving the file at its end."""
    file.seek(0)
    while chunk := file.read(_READ_SIZE):
        check.update(chunk)
