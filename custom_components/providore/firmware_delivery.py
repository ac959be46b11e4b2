"""Sending a firmware file to a device: signed, sent by the kernel, resumable.

The response signature covers the whole file, so it must be known before the
first byte is sent. Computing it costs a pass over the file; the HMAC state after
the file's bytes is kept per device key and build, so a repeated or resumed
download only adds its two timestamps, and the body itself never passes through
Python: it goes from the file to the socket with sendfile, slice by slice so that
the progress of the download can be followed. An ESPHome device, which cannot check
a signature, gets the same answer without one.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
import re
from typing import BinaryIO, Final

from aiohttp import hdrs, web
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .firmware_catalog import Firmware
from .protocol import DeviceKey, ResponseSigner

CHUNK_SIZE: Final = 256 * 1024
# Bytes handed to sendfile at a time (progress is reported after each slice): about a
# sixteenth of the file, so that a large build costs few calls and a small one still
# shows its progress.
MIN_SEND_SLICE: Final = 256 * 1024
MAX_SEND_SLICE: Final = 8 * 1024 * 1024
MAX_CACHED_SIGNERS: Final = 64
HEADER_FIRMWARE_VERSION: Final = "X-Firmware-Version"
HEADER_FIRMWARE_SHA256: Final = "X-Firmware-SHA256"
CONTENT_TYPE_FIRMWARE: Final = "application/octet-stream"
_RANGE_RE: Final = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)


def _sign_file(key: DeviceKey, path: Path) -> ResponseSigner:
    """Feed a whole file to a new signer (blocking: run it in the executor)."""
    signer = ResponseSigner(key)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            signer.update(chunk)
    return signer


class FirmwareSignatures:
    """Signers that already hold a build's bytes, per device and build (LRU)."""

    def __init__(self) -> None:
        """Start empty."""
        self._signers: OrderedDict[
            tuple[str, str], tuple[DeviceKey, ResponseSigner]
        ] = OrderedDict()

    async def async_signer(
        self,
        hass: HomeAssistant,
        key_id: str,
        key: DeviceKey,
        build: Firmware,
        path: Path,
    ) -> ResponseSigner:
        """Return a signer holding the build's bytes, reading the file only once.

        A signer made with another key of the device (before a rotation) is never reused.
        """
        cache_key = (key_id, build.sha256)
        if (cached := self._signers.get(cache_key)) is not None and cached[0] is key:
            self._signers.move_to_end(cache_key)
            return cached[1]
        signer = await hass.async_add_executor_job(_sign_file, key, path)
        self._signers[cache_key] = (key, signer)
        while len(self._signers) > MAX_CACHED_SIGNERS:
            self._signers.popitem(last=False)
        return signer

    def forget(self, key_id: str) -> None:
        """Drop the signers of a device (removed, or its key replaced)."""
        for cache_key in [k for k in self._signers if k[0] == key_id]:
            del self._signers[cache_key]


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareDownload:
    """A build on its way to a device, and whom to tell how far it got."""

    build: Firmware
    path: Path
    # None for a device that checks no signature (ESPHome).
    signer: ResponseSigner | None
    # Called with the start of the range and the file offset the device reached.
    on_progress: Callable[[int, int], None]
    # Called when the device went away before it had every byte it asked for.
    on_broken_off: Callable[[], None]


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the [start, end) bytes a Range header asks for; None for the whole file.

    A missing, malformed or multi-range header is ignored (RFC 9110 allows it);
    ValueError means a well-formed range that no byte of the file satisfies.
    """
    if header is None or (match := _RANGE_RE.fullmatch(header.strip())) is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        if (suffix := int(last)) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    return start, min(int(last) + 1 if last else size, size)


async def _async_send_slice(
    request: web.Request, file: BinaryIO, path: Path, offset: int, count: int
) -> None:
    """Send `count` bytes of the file from `offset`, by sendfile where the socket allows.

    A file shorter than its catalog size breaks the download off.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the device went away")
    sent = await asyncio.get_running_loop().sendfile(transport, file, offset, count)
    if sent < count:
        raise ConnectionError(f"{path.name} is shorter than its catalog size")


async def async_send_firmware(
    hass: HomeAssistant, request: web.Request, download: FirmwareDownload
) -> web.StreamResponse:
    """Send a build (or the requested range of it) with the whole file's signature."""
    build, path = download.build, download.path
    signature = download.signer.headers(dt_util.utcnow()) if download.signer else {}
    headers = {
        **signature,
        HEADER_FIRMWARE_VERSION: build.version,
        HEADER_FIRMWARE_SHA256: build.sha256,
        hdrs.ACCEPT_RANGES: "bytes",
    }
    try:
        byte_range = _requested_range(request.headers.get(hdrs.RANGE), build.size)
    except ValueError:
        return web.Response(
            status=HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
            headers={hdrs.CONTENT_RANGE: f"bytes */{build.size}"},
        )
    start, end = byte_range or (0, build.size)
    response = web.StreamResponse(
        status=HTTPStatus.OK if byte_range is None else HTTPStatus.PARTIAL_CONTENT,
        headers=headers,
    )
    if byte_range is not None:
        response.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end - 1}/{build.size}"
    response.content_type = CONTENT_TYPE_FIRMWARE
    response.content_length = end - start

    file: BinaryIO = await hass.async_add_executor_job(path.open, "rb")
    try:
        await response.prepare(request)
        offset = start
        send_slice = min(max(build.size // 16, MIN_SEND_SLICE), MAX_SEND_SLICE)
        try:
            while offset < end:
                count = min(send_slice, end - offset)
                await _async_send_slice(request, file, path, offset, count)
                offset += count
                download.on_progress(start, offset)
        except (ConnectionError, asyncio.CancelledError):
            # Home Assistant cancels the handler of a client that disconnects.
            download.on_broken_off()
            raise
        await response.write_eof()
    finally:
        await hass.async_add_executor_job(file.close)
    return response
