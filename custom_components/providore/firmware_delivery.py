"""Sending a firmware file to a device: signed, streamed from disk, resumable.

The response signature covers the whole file, so it must be known before the
first byte is sent. Computing it costs a pass over the file; the HMAC state after
the file's bytes is kept per device key and build, so a repeated or resumed
download only adds its two timestamps.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
import hmac
from http import HTTPStatus
from pathlib import Path
import re
from typing import BinaryIO, Final

from aiohttp import hdrs, web
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .firmware_catalog import Firmware
from .protocol import ResponseSigner

CHUNK_SIZE: Final = 256 * 1024
MAX_CACHED_SIGNERS: Final = 64
HEADER_FIRMWARE_VERSION: Final = "X-Firmware-Version"
HEADER_FIRMWARE_SHA256: Final = "X-Firmware-SHA256"
CONTENT_TYPE_FIRMWARE: Final = "application/octet-stream"
_RANGE_RE: Final = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)


def _sign_file(secret_key: str, path: Path) -> ResponseSigner:
    """Feed a whole file to a new signer (blocking: run it in the executor)."""
    signer = ResponseSigner(secret_key)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            signer.update(chunk)
    return signer


class FirmwareSignatures:
    """Signers that already hold a build's bytes, per device and build (LRU)."""

    def __init__(self) -> None:
        """Start empty."""
        self._signers: OrderedDict[tuple[str, str], tuple[str, ResponseSigner]] = (
            OrderedDict()
        )

    async def async_signer(
        self,
        hass: HomeAssistant,
        key_id: str,
        secret_key: str,
        build: Firmware,
        path: Path,
    ) -> ResponseSigner:
        """Return a signer holding the build's bytes, reading the file only once."""
        cache_key = (key_id, build.sha256)
        if (cached := self._signers.get(cache_key)) is not None and hmac.compare_digest(
            cached[0], secret_key
        ):
            self._signers.move_to_end(cache_key)
            return cached[1]
        signer = await hass.async_add_executor_job(_sign_file, secret_key, path)
        self._signers[cache_key] = (secret_key, signer)
        while len(self._signers) > MAX_CACHED_SIGNERS:
            self._signers.popitem(last=False)
        return signer


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


async def _async_read_chunk(
    hass: HomeAssistant, file: BinaryIO, path: Path, size: int
) -> bytes:
    """Read the next bytes; a file shorter than its catalog size breaks the download."""
    if not (chunk := await hass.async_add_executor_job(file.read, size)):
        raise ConnectionError(f"{path.name} is shorter than its catalog size")
    return chunk


async def async_send_firmware(
    hass: HomeAssistant,
    request: web.Request,
    build: Firmware,
    path: Path,
    signer: ResponseSigner,
    on_progress: Callable[[int, int], None],
    on_broken_off: Callable[[], None],
) -> web.StreamResponse:
    """Stream a build (or the requested range of it) with the whole file's signature.

    `on_progress` is called with the start of the range and the file offset
    reached after every chunk the device accepted; `on_broken_off` when the
    device went away before it had every byte it asked for.
    """
    headers = {
        **signer.headers(dt_util.utcnow()),
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
        await hass.async_add_executor_job(file.seek, start)
        await response.prepare(request)
        offset = start
        try:
            while offset < end:
                chunk = await _async_read_chunk(
                    hass, file, path, min(CHUNK_SIZE, end - offset)
                )
                await response.write(chunk)
                offset += len(chunk)
                on_progress(start, offset)
        except (ConnectionError, asyncio.CancelledError):
            # Home Assistant cancels the handler of a client that disconnects.
            on_broken_off()
            raise
        await response.write_eof()
    finally:
        await hass.async_add_executor_job(file.close)
    return response
