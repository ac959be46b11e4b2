"""The device API under /api/providore: thin views over device_auth and the runtime.

Views are registered once per Home Assistant run (they cannot be unregistered),
so each request looks up the runtime of the loaded hub and answers 404 without one.
"""

from __future__ import annotations

from abc import abstractmethod
from http import HTTPStatus

from aiohttp import hdrs, web
from homeassistant.const import CONTENT_TYPE_JSON
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util import dt as dt_util

from .certificate_authority import CSRRejected
from .certificates import IssuanceRefused
from .const import API_BASE_PATH, CA_PATH, CRL_PATH
from .device_auth import (
    UNKNOWN_ADDRESS,
    AuthenticatedRequest,
    ThrottledError,
    async_authenticate,
    signed_response,
)
from .device_hello import MAX_HELLO_BYTES, HelloMalformed, parse_hello
from .esphome_view import EsphomeView
from .firmware_delivery import async_send_firmware
from .pending_devices import AnnouncementSource
from .protocol import ProtocolError
from .request_guards import DATA_GUARDS, KeyBusy, SignatureNotSaved
from .runtime import DownloadRefused, ProvidoreRuntime, async_get_loaded_runtime

# Seconds a device whose key made too many POST requests is told to wait.
KEY_BUSY_RETRY_AFTER = 60


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


class SignedView(HomeAssistantView):
    """An endpoint a device calls with a signed request."""

    requires_auth = False

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        """Authenticate the request, then let the endpoint answer."""
        hass = request.app[KEY_HASS]
        if (runtime := async_get_loaded_runtime(hass)) is None:
            return _error(HTTPStatus.NOT_FOUND, "Providore is not set up")
        try:
            device = await async_authenticate(hass, request, runtime)
        except ThrottledError as err:
            return _error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many failed requests",
                {"Retry-After": str(err.retry_after)},
            )
        except ProtocolError as err:
            return _error(err.status, err.reason)
        except KeyBusy:
            return _error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many requests with this key",
                {"Retry-After": str(KEY_BUSY_RETRY_AFTER)},
            )
        except SignatureNotSaved:
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, "request not recorded")
        return await self.respond(device)

    @abstractmethod
    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Answer an authenticated request."""


class SignedGetView(SignedView):
    """An endpoint a device calls with a signed GET."""

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, then answer."""
        return await self._serve(request)


class ConfigView(SignedGetView):
    """GET /config: the device's configuration document."""

    url = f"{API_BASE_PATH}/config"
    name = "api:providore:config"

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Return the document for the version the device runs."""
        body = device.runtime.config_body(device.key_id, device.firmware_version)
        if body is None:
            return _error(HTTPStatus.NOT_FOUND, "no configuration for this device")
        return signed_response(device, body, CONTENT_TYPE_JSON)


class FirmwareCheckView(SignedGetView):
    """GET /firmware/check: whether the device should install another firmware."""

    url = f"{API_BASE_PATH}/firmware/check"
    name = "api:providore:firmware:check"

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Redirect to the pending build, or say there is nothing to do."""
        build = device.runtime.firmware.pending(device.key_id)
        if build is None:
            return web.Response(status=HTTPStatus.NO_CONTENT)
        location = device.request.url.with_path(FirmwareView.url).with_query(
            version=build.version
        )
        return web.Response(
            status=HTTPStatus.FOUND, headers={hdrs.LOCATION: str(location)}
        )


class FirmwareView(SignedGetView):
    """GET /firmware: the build assigned to the device."""

    url = f"{API_BASE_PATH}/firmware"
    name = "api:providore:firmware"

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Send the assigned build; the unsigned query may only confirm it."""
        try:
            download = await device.runtime.async_prepare_download(
                device.key_id, device.key, device.request.query.get("version")
            )
        except DownloadRefused as err:
            return _error(err.status, err.reason)
        return await async_send_firmware(
            device.request.app[KEY_HASS], device.request, download
        )


CONTENT_TYPE_PEM = "application/x-pem-file"


class CertificateRequestView(SignedView):
    """POST /certificates/request: issue a certificate for the device's CSR."""

    url = f"{API_BASE_PATH}/certificates/request"
    name = "api:providore:certificates:request"

    async def post(self, request: web.Request) -> web.StreamResponse:
        """Serve the certificate request."""
        return await self._serve(request)

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Issue the certificate; a bad CSR gets 400 and issues nothing."""
        try:
            issued = await device.runtime.async_issue_certificate(
                device.key_id, device.body or b""
            )
        except CSRRejected as err:
            return _error(HTTPStatus.BAD_REQUEST, str(err))
        except IssuanceRefused as err:
            headers = None
            if err.retry_after is not None:
                headers = {"Retry-After": str(err.retry_after)}
            return _error(err.status, err.reason, headers)
        return signed_response(device, issued.pem.encode(), CONTENT_TYPE_PEM)


class CertificateView(SignedGetView):
    """GET /certificate: the device's current certificate."""

    url = f"{API_BASE_PATH}/certificate"
    name = "api:providore:certificate"

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Return the newest valid certificate of the device."""
        current = device.runtime.current_certificate(device.key_id)
        if current is None:
            return _error(HTTPStatus.NOT_FOUND, "no certificate for this device")
        return signed_response(device, current.pem.encode(), CONTENT_TYPE_PEM)


class PublicCertificateFileView(HomeAssistantView):
    """A public, unsigned file of the CA: for devices and brokers to trust it."""

    requires_auth = False

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Serve the file while the hub is loaded."""
        if (runtime := async_get_loaded_runtime(request.app[KEY_HASS])) is None:
            return _error(HTTPStatus.NOT_FOUND, "Providore is not set up")
        return web.Response(text=self.content(runtime), content_type=CONTENT_TYPE_PEM)

    @abstractmethod
    def content(self, runtime: ProvidoreRuntime) -> str:
        """Return the PEM to serve."""


class CACertificateView(PublicCertificateFileView):
    """GET /certificates/ca.pem: the CA certificate."""

    url = f"{API_BASE_PATH}{CA_PATH}"
    name = "api:providore:certificates:ca"

    def content(self, runtime: ProvidoreRuntime) -> str:
        """Return the CA certificate."""
        return runtime.certificate_authority.certificate_pem


class CRLView(PublicCertificateFileView):
    """GET /certificates/crl.pem: the current certificate revocation list."""

    url = f"{API_BASE_PATH}{CRL_PATH}"
    name = "api:providore:certificates:crl"

    def content(self, runtime: ProvidoreRuntime) -> str:
        """Return the revocation list."""
        return runtime.crl_pem


class HelloView(HomeAssistantView):
    """POST /hello: a device Providore does not know announces itself.

    Unauthenticated, so it is strict and cheap: throttled addresses and addresses
    over the announcement limits are refused first, a malformed hello counts as a
    failed request, and every hello that is read gets the same answer, whether its
    key id is new, pending, ignored or configured (it tells nothing of the keys).
    """

    url = f"{API_BASE_PATH}/hello"
    name = "api:providore:hello"
    requires_auth = False

    async def post(self, request: web.Request) -> web.Response:
        """Note the announcement; the admin adopts or ignores the device."""
        hass = request.app[KEY_HASS]
        if (runtime := async_get_loaded_runtime(hass)) is None:
            return _error(HTTPStatus.NOT_FOUND, "Providore is not set up")
        guards = hass.data[DATA_GUARDS]
        address = request.remote or UNKNOWN_ADDRESS
        now = dt_util.utcnow()
        if (wait := guards.retry_after(address, now)) is not None:
            return _error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many failed requests",
                {"Retry-After": str(wait)},
            )
        if (wait := runtime.pending_devices.retry_after(address, now)) is not None:
            return _error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many announcements",
                {"Retry-After": str(wait)},
            )
        body = await _read_at_most(request, MAX_HELLO_BYTES)
        if body is None:
            guards.record_failure(address, None, now)
            return _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a hello has at most {MAX_HELLO_BYTES} bytes",
            )
        try:
            hello = parse_hello(body)
        except HelloMalformed as err:
            guards.record_failure(address, None, now)
            return _error(HTTPStatus.BAD_REQUEST, f"malformed hello: {err}")
        runtime.pending_devices.announce(
            hello, request.remote, AnnouncementSource.HELLO, now
        )
        return web.json_response(
            {"message": "announcement received"}, status=HTTPStatus.ACCEPTED
        )


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """Return the body, or None as soon as it is longer than `limit` bytes."""
    if (request.content_length or 0) > limit:
        return None
    body = await request.content.read(limit + 1)
    return None if len(body) > limit else body


VIEWS: tuple[type[HomeAssistantView], ...] = (
    ConfigView,
    FirmwareCheckView,
    FirmwareView,
    CertificateRequestView,
    CertificateView,
    CACertificateView,
    CRLView,
    HelloView,
    EsphomeView,
)
