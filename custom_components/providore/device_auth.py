"""Authentication of device requests: the request first, then throttling and replays.

The protocol rules themselves live in `protocol`; this module applies them to an
aiohttp request. The request is checked (window, then signature) before the failure
throttle is consulted, so a correctly signed request is never throttled: a flood of
bad requests from a device's address (one NAT, one proxy) cannot lock it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from multidict import CIMultiDictProxy

from .const import API_BASE_PATH, LOGGER
from .protocol import (
    MAX_BODY_BYTES,
    SIGNED_HEADERS,
    DeviceKey,
    MalformedRequest,
    PayloadTooLarge,
    ProtocolError,
    Unauthorized,
    check_validity,
    parse_signed_request,
    response_headers,
    verify_request,
)
from .request_guards import DATA_GUARDS
from .runtime import ProvidoreRuntime

BODY_METHODS = frozenset({"POST", "PUT"})
UNKNOWN_ADDRESS = "unknown"


class ThrottledError(Exception):
    """The request was refused and its address failed too often: it must wait."""

    def __init__(self, retry_after: int) -> None:
        """Note how many seconds the client must wait."""
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(slots=True, kw_only=True)
class AuthenticatedRequest:
    """A device request whose signature and validity were checked."""

    request: web.Request
    runtime: ProvidoreRuntime
    key_id: str
    key: DeviceKey
    firmware_version: str
    body: bytes | None


async def async_authenticate(
    hass: HomeAssistant, request: web.Request, runtime: ProvidoreRuntime
) -> AuthenticatedRequest:
    """Check a device request; raise ThrottledError or ProtocolError when it is refused.

    A POST's signature is saved before this returns (KeyBusy, SignatureNotSaved
    when it cannot be).
    """
    guards = hass.data[DATA_GUARDS]
    address = request.remote or UNKNOWN_ADDRESS
    now = dt_util.utcnow()
    key_id: str | None = None
    try:
        signed = parse_signed_request(_signed_headers(request.headers))
        key_id = signed.key_id
        body = await _read_body(request) if request.method in BODY_METHODS else None
        # The window first: it needs no key, so its answer tells nothing of one.
        settings = runtime.settings
        check_validity(
            signed, now, settings.max_clock_skew, settings.max_request_lifetime
        )
        key = verify_request(
            signed,
            runtime.device_key(key_id),
            request.method,
            _signed_path(request),
            body,
        )
        if request.method in BODY_METHODS and not await guards.async_remember(
            key_id, signed.signature, signed.expiry, now
        ):
            raise Unauthorized("request already used")
    except ProtocolError as err:
        LOGGER.debug("Refused a device request from %s: %s", address, err.reason)
        if (retry_after := guards.retry_after(address, now)) is not None:
            raise ThrottledError(retry_after) from err
        guards.record_failure(address, key_id, now)
        raise

    runtime.record_contact(key_id, signed, request.remote, now)
    return AuthenticatedRequest(
        request=request,
        runtime=runtime,
        key_id=key_id,
        key=key,
        firmware_version=signed.firmware_version,
        body=body,
    )


def signed_response(
    device: AuthenticatedRequest, body: bytes, content_type: str
) -> web.Response:
    """Return a 200 response signed with the device's key, as the protocol wants."""
    headers = response_headers(device.key, body, dt_util.utcnow())
    return web.Response(body=body, content_type=content_type, headers=headers)


def _signed_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """Return the signed headers sent, refusing one sent twice (which was signed?)."""
    sent: dict[str, str] = {}
    for name in SIGNED_HEADERS:
        if values := headers.getall(name, ()):
            if len(values) > 1:
                raise MalformedRequest(f"repeated {name} header")
            sent[name] = values[0]
    return sent


def _signed_path(request: web.Request) -> str:
    """Return the path the device signed: relative to the base, without the query."""
    target = request.raw_path
    if target.startswith(API_BASE_PATH) and "#" not in target:
        # The usual origin-form target, read without building a URL object.
        return target.partition("?")[0].removeprefix(API_BASE_PATH)
    return request.rel_url.raw_path.removeprefix(API_BASE_PATH)


async def _read_body(request: web.Request) -> bytes:
    """Read the body, refusing it as soon as it is larger than the protocol allows."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge("body larger than 64 KiB")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge("body larger than 64 KiB")
    return bytes(body)
