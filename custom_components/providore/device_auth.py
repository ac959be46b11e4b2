"""Authentication of device requests: throttling, signature checks, replay refusal.

The protocol rules themselves live in `protocol`; this module applies them to an
aiohttp request and keeps the state that spans requests (failure counts per
client address, accepted POST signatures). That state lives for as long as Home
Assistant runs, so reloading the entry never re-opens a window for a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    API_BASE_PATH,
    DOMAIN,
    LOGGER,
    THROTTLE_LIMIT,
    THROTTLE_WINDOW_SECONDS,
)
from .guards import FailureThrottle, ReplayCache
from .protocol import (
    MAX_BODY_BYTES,
    DeviceKey,
    PayloadTooLarge,
    ProtocolError,
    Unauthorized,
    check_validity,
    is_valid_key_id,
    parse_signed_request,
    response_headers,
    verify_request,
)
from .runtime import ProvidoreRuntime
from .stores import StoreUnreadable, async_load, providore_store

BODY_METHODS = frozenset({"POST", "PUT"})
# Seconds an accepted POST signature may wait before it is written to disk.
REPLAY_SAVE_DELAY = 1
UNKNOWN_ADDRESS = "unknown"


class RequestGuards:
    """State kept across requests to refuse floods and replays.

    Accepted POST signatures are also saved, so that a restart of Home Assistant
    does not reopen their replay window either.
    """

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with nothing throttled; call async_load for the saved signatures."""
        self.throttle = FailureThrottle(
            THROTTLE_LIMIT, timedelta(seconds=THROTTLE_WINDOW_SECONDS)
        )
        self.replay = ReplayCache()
        self._hass = hass
        self._replay_store: Store[dict[str, str]] = providore_store(hass, "replay")

    async def async_load(self) -> None:
        """Refuse again the signatures accepted before a restart, until they expire.

        An unreadable store costs only that memory (Home Assistant raises its own
        repair issue for it); it never keeps Providore from starting.
        """
        now = dt_util.utcnow()
        try:
            saved = await async_load(self._hass, self._replay_store) or {}
        except StoreUnreadable as err:
            LOGGER.warning("Starting without the saved request signatures: %s", err)
            saved = {}
        for signature, expiry in saved.items():
            if (moment := dt_util.parse_datetime(expiry)) is not None:
                self.replay.remember(signature, moment, now)

    @callback
    def remember(self, signature: str, expiry: datetime, now: datetime) -> bool:
        """Return False for a replayed signature, else remember it and save soon."""
        if not self.replay.remember(signature, expiry, now):
            return False
        # A snapshot taken here: the store may call for its data in another thread.
        snapshot = {
            remembered: moment.isoformat()
            for remembered, moment in self.replay.remembered(now).items()
        }
        self._replay_store.async_delay_save(lambda: snapshot, REPLAY_SAVE_DELAY)
        return True

    async def async_remove(self) -> None:
        """Delete the saved signatures (when the hub is removed)."""
        await self._replay_store.async_remove()


DATA_GUARDS: HassKey[RequestGuards] = HassKey(f"{DOMAIN}_guards")


class ThrottledError(Exception):
    """The client address failed too often and must wait."""

    def __init__(self, retry_after: int) -> None:
        """Note how many seconds the client must wait."""
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
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
    """Check a device request; raise ThrottledError or ProtocolError when it is refused."""
    guards = hass.data[DATA_GUARDS]
    address = request.remote or UNKNOWN_ADDRESS
    now = dt_util.utcnow()
    if (retry_after := guards.throttle.retry_after(address, now)) is not None:
        raise ThrottledError(retry_after)

    key_id: str | None = None
    try:
        signed = parse_signed_request(request.headers)
        key_id = signed.key_id
        body = await _read_body(request) if request.method in BODY_METHODS else None
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
        if request.method in BODY_METHODS and not guards.remember(
            signed.signature, signed.expiry, now
        ):
            raise Unauthorized("request already used")
    except ProtocolError as err:
        _record_failure(hass, guards, address, key_id, err, now)
        raise

    runtime.record_contact(signed.key_id, signed, request.remote, now)
    return AuthenticatedRequest(
        request=request,
        runtime=runtime,
        key_id=signed.key_id,
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


def _signed_path(request: web.Request) -> str:
    """Return the path the device signed: relative to the base, without the query."""
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


@callback
def _record_failure(
    hass: HomeAssistant,
    guards: RequestGuards,
    address: str,
    key_id: str | None,
    err: ProtocolError,
    now: datetime,
) -> None:
    """Count a refused request; tell the user once when its address is throttled."""
    LOGGER.debug("Refused a device request from %s: %s", address, err.reason)
    if not guards.throttle.record_failure(address, now):
        return
    tried = key_id if key_id is not None and is_valid_key_id(key_id) else "-"
    LOGGER.warning(
        "Throttling device requests from %s after %s failures (last key id tried: %s)",
        address,
        THROTTLE_LIMIT,
        tried,
    )
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"throttled_{address}",
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="address_throttled",
        translation_placeholders={"address": address, "key_id": tried},
        data={"address": address},
    )
