"""ESPHome mode: fetch and install firmware the way ESPHome's `http_request` update does.

Mirrors ESPHome 2026.10 (`components/http_request/update` and `ota`), independently of
the integration: a plain GET of the manifest (no custom headers; credentials in the URL
become basic auth), which must come with a Content-Length; the first build whose
`chipFamily` equals the device's; an update when the manifest's `version` is not empty
and differs, as a string, from the running version; `ota.path` resolved against the
source URL; a download with a Content-Length whose MD5, as lowercase hex, must equal
`ota.md5` exactly. `ota.sha256`, which ESPHome ignores, is checked too when present.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
import hashlib
from http import HTTPStatus
import json
import os
from pathlib import Path
import tempfile
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from .api import MAX_ANSWER_BYTES
from .errors import (
    ConnectionFailed,
    ProvidoreError,
    ResponseRejected,
    ServerError,
    SettingsError,
)
from .files import commit_file

_CHUNK: Final = 64 * 1024
# ESPHome looks for the scheme's end from the ninth character on ("https://" is 8 long).
_HOST_SEARCH_START: Final = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class EsphomeUpdate:
    """What a manifest offers a device of one chip family."""

    title: str
    latest_version: str
    firmware_url: str
    md5: str
    sha256: str | None
    summary: str | None
    release_url: str | None

    def offers_update(self, current_version: str) -> bool:
        """Return whether ESPHome would offer this build: its version is not empty and differs."""
        return self.latest_version not in ("", current_version)


@dataclass(frozen=True, slots=True)
class EsphomeFirmware:
    """A downloaded image whose digests matched the manifest."""

    size: int
    sha256_checked: bool


def check_source_url(url: str) -> str:
    """Return the manifest URL given with --source; raise SettingsError unless http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError("--source must be the manifest's http:// or https:// URL")
    return url


def resolve_firmware_url(source_url: str, path: str) -> str:
    """Return the firmware URL ESPHome builds from the source URL and `ota.path`.

    A path containing "http" is a full URL; one starting with "/" keeps only the source's
    scheme, credentials, host and port; any other is appended to the source up to its
    last "/". Plain text concatenation, as on the device.
    """
    if not path or "http" in path:
        return path
    if path.startswith("/"):
        host_end = (
            source_url.find("/", _HOST_SEARCH_START)
            if len(source_url) > _HOST_SEARCH_START
            else -1
        )
        return (source_url if host_end < 0 else source_url[:host_end]) + path
    return source_url[: source_url.rfind("/") + 1] + path


def display_url(url: str) -> str:
    """Return `url` fit for a message: no credentials, and of the path only its last part.

    A Providore source URL carries the device's token in its path.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        if parts.port is not None:
            host += f":{parts.port}"
    except ValueError:
        host += ":?"
    path = parts.path
    if path.count("/") > 1:
        path = "/…/" + path.rsplit("/", 1)[1]
    return f"{parts.scheme}://{host}{path}"


async def fetch_update(
    session: aiohttp.ClientSession, source_url: str, chip_family: str
) -> EsphomeUpdate:
    """Fetch the manifest and return the build it offers `chip_family` (e.g. "ESP32-C3")."""
    async with _get(session, source_url, "manifest") as response:
        body = await _read_manifest(response)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ResponseRejected("the manifest is not valid JSON") from None
    return _parse_manifest(document, source_url, chip_family)


async def download_update(
    session: aiohttp.ClientSession, update: EsphomeUpdate, target: Path
) -> EsphomeFirmware:
    """Download the offered image to `target`; it replaces the file only when it is intact."""
    temporary = _temporary_beside(target)
    try:
        async with _get(session, update.firmware_url, "firmware") as response:
            if response.content_length is None:
                raise ResponseRejected(
                    "the firmware answer has no Content-Length: ESPHome would read nothing"
                )
            md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
            received = 0
            with temporary.open("wb") as file:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    md5.update(chunk)
                    sha256.update(chunk)
                    file.write(chunk)
        _check_digests(update, md5.hexdigest(), sha256.hexdigest())
        commit_file(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return EsphomeFirmware(size=received, sha256_checked=update.sha256 is not None)


def _parse_manifest(document: Any, source_url: str, chip_family: str) -> EsphomeUpdate:
    """Read the manifest as ESPHome does: the required fields, then the first matching build."""
    if not isinstance(document, dict) or not (
        isinstance(document.get("name"), str)
        and isinstance(document.get("version"), str)
        and isinstance(document.get("builds"), list)
    ):
        raise ResponseRejected(
            "the manifest lacks a text name, a text version or a list of builds"
        )
    for build in document["builds"]:
        if not isinstance(build, dict) or not isinstance(build.get("chipFamily"), str):
            raise ResponseRejected("a build in the manifest has no chipFamily")
        if build["chipFamily"] != chip_family:
            continue
        ota = build.get("ota")
        if not isinstance(ota, dict) or not (
            isinstance(ota.get("path"), str) and isinstance(ota.get("md5"), str)
        ):
            raise ResponseRejected(
                f"the {chip_family} build has no ota object with a text path and md5"
            )
        firmware_url = resolve_firmware_url(source_url, ota["path"])
        if not _is_acceptable_url(firmware_url):
            raise ResponseRejected(
                f"the {chip_family} build's ota.path {ota['path'][:80]!r} gives no "
                "http(s) URL: ESPHome would refuse to install it"
            )
        return EsphomeUpdate(
            title=document["name"],
            latest_version=document["version"],
            firmware_url=firmware_url,
            md5=ota["md5"],
            sha256=_text(ota, "sha256"),
            summary=_text(ota, "summary"),
            release_url=_text(ota, "release_url"),
        )
    raise ResponseRejected(f"the manifest has no build for {chip_family}")


def _check_digests(update: EsphomeUpdate, md5: str, sha256: str) -> None:
    # ESPHome compares the first 32 characters of its lowercase hex MD5 with ota.md5.
    if md5 != update.md5[:32]:
        hint = (
            ": ESPHome compares lowercase hex, and the manifest's is not"
            if md5 == update.md5.lower()
            else ""
        )
        raise ResponseRejected(
            f"the firmware's MD5 {md5} is not the manifest's {update.md5[:32]!r}{hint}"
        )
    if update.sha256 is not None and sha256 != update.sha256.lower():
        raise ResponseRejected("the firmware's SHA-256 does not match ota.sha256")


def _is_acceptable_url(url: str) -> bool:
    """Return whether ESPHome's OTA takes the URL: "http" first, "://" somewhere, 8 long."""
    return len(url) >= 8 and url.startswith("http") and "://" in url


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


async def _read_manifest(response: aiohttp.ClientResponse) -> bytes:
    """Read the manifest body as ESPHome does: exactly Content-Length bytes."""
    length = response.content_length
    if length is None:
        raise ResponseRejected(
            "the manifest answer has no Content-Length, which ESPHome needs"
        )
    if length > MAX_ANSWER_BYTES:
        raise ResponseRejected("the manifest is larger than 1 MiB")
    return await response.content.readexactly(length)


@asynccontextmanager
async def _get(
    session: aiohttp.ClientSession, url: str, what: str
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET `url` with no header of ours; anything but 200 is an error naming `what`."""
    shown = display_url(url)
    try:
        async with session.get(url) as response:
            if response.status != HTTPStatus.OK:
                status = f"{response.status} {response.reason or ''}".strip()
                raise ServerError(
                    response.status, f"the {what} request to {shown} got {status}"
                )
            yield response
    except ProvidoreError:
        raise
    except aiohttp.ClientConnectorCertificateError:
        raise ConnectionFailed(
            f"the certificate of {shown} is not trusted: give its CA with --ca"
        ) from None
    except (aiohttp.ClientPayloadError, ConnectionError):
        raise ConnectionFailed(f"the connection to {shown} broke") from None
    except aiohttp.ClientError as err:
        raise ConnectionFailed(f"cannot reach {shown}: {type(err).__name__}") from None
    except TimeoutError:
        raise ConnectionFailed(f"{shown} did not answer in time") from None


def _temporary_beside(target: Path) -> Path:
    try:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{target.name}.", dir=target.parent
        )
    except OSError as err:
        raise ProvidoreError(f"cannot write {target}: {err.strerror or err}") from None
    os.close(descriptor)
    return Path(name)
