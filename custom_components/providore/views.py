"""The device API under /api/providore: thin views over device_auth and the hub.

Views are registered once per Home Assistant run (they cannot be unregistered),
so each request looks up the hub of the loaded entry and answers 404 without one.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from http import HTTPStatus

from aiohttp import hdrs, web
from homeassistant.const import CONTENT_TYPE_JSON
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.helpers.json import json_bytes
from homeassistant.util import dt as dt_util

from .certificate_authority import CSRRejected
from .certificates import IssuanceRefused
from .const import API_BASE_PATH, CA_PATH, CRL_PATH
from .device_auth import (
    AuthenticatedRequest,
    ThrottledError,
    async_authenticate,
    signed_response,
)
from .firmware_delivery import async_send_firmware
from .hub import ProvidoreHub, async_get_loaded_hub
from .protocol import ProtocolError


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
        if (hub := async_get_loaded_hub(hass)) is None:
            return _error(HTTPStatus.NOT_FOUND, "Providore is not set up")
        try:
            device = await async_authenticate(hass, request, hub)
        except ThrottledError as err:
            return _error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many failed requests",
                {"Retry-After": str(err.retry_after)},
            )
        except ProtocolError as err:
            return _error(err.status, err.reason)
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
        document = device.hub.config_document(device.key_id, device.firmware_version)
        if document is None:
            return _error(HTTPStatus.NOT_FOUND, "no configuration for this device")
        return signed_response(device, json_bytes(document), CONTENT_TYPE_JSON)


class FirmwareCheckView(SignedGetView):
    """GET /firmware/check: whether the device should install another firmware."""

    url = f"{API_BASE_PATH}/firmware/check"
    name = "api:providore:firmware:check"

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Redirect to the pending build, or say there is nothing to do."""
        build = device.hub.firmware.pending(device.key_id)
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
        """Stream the assigned build; the unsigned query may only confirm it."""
        firmware = device.hub.firmware
        build = firmware.assigned(device.key_id)
        if build is None:
            return _error(HTTPStatus.NOT_FOUND, "no firmware assigned to this device")
        asked = device.request.query.get("version")
        if asked is not None and asked != build.version:
            return _error(HTTPStatus.CONFLICT, "that version is not assigned")
        path = firmware.catalog.path(build)
        hass = device.request.app[KEY_HASS]
        try:
            signer = await firmware.signatures.async_signer(
                hass, device.key_id, device.secret_key, build, path
            )
            return await async_send_firmware(
                hass,
                device.request,
                build,
                path,
                signer,
                partial(firmware.download_progressed, device.key_id, build),
                partial(firmware.download_stopped, device.key_id),
            )
        except FileNotFoundError:
            return _error(HTTPStatus.NOT_FOUND, "firmware file is missing")


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
        hub = device.hub
        try:
            issued = await hub.certificates.async_issue(
                device.key_id,
                device.body or b"",
                hub.devices[device.key_id].certificate_usage,
                hub.settings.certificate_validity,
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
        current = device.hub.certificates.current(device.key_id, dt_util.utcnow())
        if current is None:
            return _error(HTTPStatus.NOT_FOUND, "no certificate for this device")
        return signed_response(device, current.pem.encode(), CONTENT_TYPE_PEM)


class PublicCertificateFileView(HomeAssistantView):
    """A public, unsigned file of the CA: for devices and brokers to trust it."""

    requires_auth = False

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Serve the file while the hub is loaded."""
        if (hub := async_get_loaded_hub(request.app[KEY_HASS])) is None:
            return _error(HTTPStatus.NOT_FOUND, "Providore is not set up")
        return web.Response(text=self.content(hub), content_type=CONTENT_TYPE_PEM)

    @abstractmethod
    def content(self, hub: ProvidoreHub) -> str:
        """Return the PEM to serve."""


class CACertificateView(PublicCertificateFileView):
    """GET /certificates/ca.pem: the CA certificate."""

    url = f"{API_BASE_PATH}{CA_PATH}"
    name = "api:providore:certificates:ca"

    def content(self, hub: ProvidoreHub) -> str:
        """Return the CA certificate."""
        return hub.certificates.authority.certificate_pem


class CRLView(PublicCertificateFileView):
    """GET /certificates/crl.pem: the current certificate revocation list."""

    url = f"{API_BASE_PATH}{CRL_PATH}"
    name = "api:providore:certificates:crl"

    def content(self, hub: ProvidoreHub) -> str:
        """Return the revocation list."""
        return hub.certificates.crl_pem


VIEWS: tuple[type[HomeAssistantView], ...] = (
    ConfigView,
    FirmwareCheckView,
    FirmwareView,
    CertificateRequestView,
    CertificateView,
    CACertificateView,
    CRLView,
)
