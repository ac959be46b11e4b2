"""The device API over HTTP: signed requests, verified answers, one-line failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
import json
from pathlib import Path
import re
import ssl
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import aiohttp

from . import __version__
from .errors import (
    ConnectionFailed,
    RangeNotSatisfiable,
    ResponseRejected,
    ServerError,
)
from .protocol import ResponseStamp, request_headers, utc_now, verify_response

MAX_ANSWER_BYTES: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024
_SHA256_RE: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_CONTENT_RANGE_RE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+)", re.ASCII)
_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=15, sock_read=30)
_MESSAGE_LENGTH: Final = 200
_REFUSAL_PEEK: Final = 4096
_TEXT_TYPES: Final = ("application/json", "application/problem+json")


def open_session(ca: Path | None = None) -> aiohttp.ClientSession:
    """Return an HTTP session; `ca` is a CA file to trust for HTTPS servers."""
    context: ssl.SSLContext | bool = True
    if ca is not None:
        try:
            context = ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as err:
            raise ConnectionFailed(f"cannot load the CA file {ca}: {err}") from None
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context),
        timeout=_TIMEOUT,
        headers={"User-Agent": f"providore-client/{__version__}"},
    )


@dataclass(frozen=True, slots=True)
class FirmwareStream:
    """A firmware answer whose headers were checked; its body is still to come.

    `offset` is where the body starts in the file: 0 for a 200, the range start for a 206.
    `version` and `sha256` are None when the server does not name them (the original
    Providore server never does): the signature over the whole file is then the only check.
    """

    version: str | None
    sha256: str | None
    size: int
    offset: int
    stamp: ResponseStamp
    chunks: AsyncIterator[bytes]


class ProvidoreClient:
    """One device talking to a Providore server."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        device_id: str,
        secret: str,
        firmware_version: str,
        clock: Callable[[], datetime] = utc_now,
        *,
        accept_expiry_at_creation: bool = False,
    ) -> None:
        """Talk to base_url (…/api/providore) as device_id, reporting firmware_version.

        `accept_expiry_at_creation` holds answers whose expiry equals their created-at
        (the original Providore server's fault) valid for 15 minutes instead of refusing them.
        """
        self._session = session
        self._base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.secret = secret
        self.firmware_version = firmware_version
        self._clock = clock
        self._accept_expiry_at_creation = accept_expiry_at_creation

    def url(self, path: str) -> str:
        """Return the URL of an endpoint."""
        return self._base_url + path

    async def fetch_config(self) -> dict[str, Any] | None:
        """Return the verified configuration document, or None when there is none (404)."""
        async with self._signed("GET", "/config") as response:
            if response.status == HTTPStatus.NOT_FOUND:
                return None
            body = await self._verified_body(response)
        try:
            document = json.loads(body)
        except ValueError:
            raise ResponseRejected("the configuration is not valid JSON") from None
        if not isinstance(document, dict):
            raise ResponseRejected("the configuration is not a JSON object")
        return document

    async def fetch_certificate(self) -> bytes | None:
        """Return the device's current certificate (verified PEM), or None when it has none."""
        async with self._signed("GET", "/certificate") as response:
            if response.status == HTTPStatus.NOT_FOUND:
                return None
            return await self._verified_body(response)

    async def check_firmware(self) -> str | None:
        """Return the version the device should run, or None when it is up to date."""
        async with self._signed("GET", "/firmware/check") as response:
            if response.status == HTTPStatus.NO_CONTENT:
                return None
            if response.status != HTTPStatus.FOUND:
                raise await _refusal(response)
            location = response.headers.get("Location", "")
        versions = parse_qs(urlsplit(location).query).get("version", [])
        if len(versions) != 1 or not versions[0]:
            raise ResponseRejected(
                "the firmware check answer names no version in its Location"
            )
        return _printable_version(versions[0], "the firmware check answer")

    @asynccontextmanager
    async def firmware(
        self, offset: int = 0, version: str | None = None
    ) -> AsyncIterator[FirmwareStream]:
        """Open GET /firmware, from byte `offset` on when it is not 0.

        The answer's headers and validity window are checked before the body is read;
        its signature covers the whole file and is the caller's to check at the end.
        """
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        params = {"version": version} if version else None
        async with self._signed(
            "GET", "/firmware", params=params, headers=headers
        ) as response:
            if response.status == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
                raise RangeNotSatisfiable(response.status, "range not satisfiable")
            if response.status not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
                raise await _refusal(response)
            stamp = ResponseStamp.from_headers(response.headers)
            stamp.check_window(
                self._clock(), accept_expiry_at_creation=self._accept_expiry_at_creation
            )
            start, size = _body_extent(response, offset)
            yield FirmwareStream(
                version=_firmware_version(response),
                sha256=_firmware_sha256(response),
                size=size,
                offset=start,
                stamp=stamp,
                chunks=response.content.iter_chunked(_CHUNK),
            )

    async def request_certificate(self, csr_pem: bytes) -> bytes:
        """Send a PEM CSR; return the verified PEM certificate the server issued.

        The CSR goes as text/plain: the original Providore server reads no other body.
        """
        async with self._signed(
            "POST",
            "/certificates/request",
            body=csr_pem,
            headers={"Content-Type": "text/plain"},
        ) as response:
            return await self._verified_body(response)

    @asynccontextmanager
    async def _signed(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a signed request; network failures become ConnectionFailed."""
        signed = request_headers(
            key_id=self.device_id,
            secret=self.secret,
            method=method,
            path=path,
            firmware_version=self.firmware_version,
            now=self._clock(),
            body=body,
        )
        url = self._base_url + path
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=body,
                headers={**signed, **(headers or {})},
                allow_redirects=False,
            ) as response:
                yield response
        except aiohttp.ClientPayloadError:
            raise ConnectionFailed("the connection broke during the answer") from None
        except aiohttp.ClientConnectorCertificateError as err:
            raise ConnectionFailed(
                f"the server's certificate is not trusted ({_one_line(err.certificate_error)}): give its CA with --ca"
            ) from None
        except aiohttp.ClientError as err:
            raise ConnectionFailed(
                f"cannot reach {url}: {_one_line(err) or type(err).__name__}"
            ) from None
        except TimeoutError:
            raise ConnectionFailed(f"{url} did not answer in time") from None

    async def _verified_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Return the body of a 200 answer after checking its signature."""
        if response.status != HTTPStatus.OK:
            raise await _refusal(response)
        body = await _read_limited(response)
        verify_response(
            self.secret,
            body,
            response.headers,
            self._clock(),
            accept_expiry_at_creation=self._accept_expiry_at_creation,
        )
        return body


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    body = await response.content.read(MAX_ANSWER_BYTES + 1)
    while len(body) <= MAX_ANSWER_BYTES and (
        chunk := await response.content.read(_CHUNK)
    ):
        body += chunk
    if len(body) > MAX_ANSWER_BYTES:
        raise ResponseRejected("the answer is larger than 1 MiB")
    return body


async def _refusal(response: aiohttp.ClientResponse) -> ServerError:
    """Describe an unexpected answer in one line, with the server's message."""
    message = await _server_message(response)
    status = f"{response.status} {response.reason or ''}".strip()
    what = f"the server answered {status}"
    if response.status == HTTPStatus.NOT_FOUND:
        what += f" from {response.url} (wrong --server?)"
    if message:
        what += f": {message}"
    if response.status == HTTPStatus.TOO_MANY_REQUESTS:
        retry_after = _one_line(response.headers.get("Retry-After", "?"))
        what += f" (retry after {retry_after} s)"
    return ServerError(response.status, what)


async def _server_message(response: aiohttp.ClientResponse) -> str:
    """Return an unexpected answer's message, quoted only when the body is text."""
    try:
        body = await response.content.read(_REFUSAL_PEEK + 1)
    except (aiohttp.ClientError, TimeoutError):
        return ""
    if not body:
        return ""
    content_type = response.content_type
    if not content_type.startswith("text/") and content_type not in _TEXT_TYPES:
        if response.content_length is not None:
            return f"<{response.content_length} bytes of binary>"
        if len(body) > _REFUSAL_PEEK:
            return f"<more than {_REFUSAL_PEEK} bytes of binary>"
        return f"<{len(body)} bytes of binary>"
    text = body[:_REFUSAL_PEEK].decode("utf-8", "replace")
    try:
        message = json.loads(text).get("message", "")
    except (ValueError, AttributeError):
        message = text
    return _one_line(message)


def _one_line(value: object) -> str:
    """Return server or library text as one short line of printable characters."""
    text = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in " ".join(str(value).split())
    )
    return text if len(text) <= _MESSAGE_LENGTH else text[: _MESSAGE_LENGTH - 1] + "…"


def _printable_version(version: str, where: str) -> str:
    """Refuse a firmware version that cannot be shown as it is."""
    if not version.isprintable():
        raise ResponseRejected(
            f"{where} names a version with unprintable characters: {_one_line(version)}"
        )
    return version


def _firmware_version(response: aiohttp.ClientResponse) -> str | None:
    """Return the version a firmware answer names, None when it names none."""
    value = response.headers.get("X-Firmware-Version")
    if value is None:
        return None
    if not value:
        raise ResponseRejected("the firmware answer's X-Firmware-Version is empty")
    return _printable_version(value, "the firmware answer")


def _firmware_sha256(response: aiohttp.ClientResponse) -> str | None:
    """Return the SHA-256 a firmware answer names, None when it names none."""
    value = response.headers.get("X-Firmware-SHA256")
    if value is None:
        return None
    if _SHA256_RE.fullmatch(value) is None:
        raise ResponseRejected(
            "the firmware answer's X-Firmware-SHA256 is not a SHA-256"
        )
    return value.lower()


def _body_extent(response: aiohttp.ClientResponse, offset: int) -> tuple[int, int]:
    """Return (where the body starts, size of the whole file) of a firmware answer."""
    if response.status == HTTPStatus.OK:
        if response.content_length is None:
            raise ResponseRejected("the firmware answer has no Content-Length")
        return 0, response.content_length
    match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
    if match is None:
        raise ResponseRejected("the partial firmware answer has no valid Content-Range")
    first, last, size = (int(group) for group in match.groups())
    if first != offset or last != size - 1:
        raise ResponseRejected(
            f"the server sent bytes {first}-{last} of {size}, not {offset} onwards"
        )
    return first, size
