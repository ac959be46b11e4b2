"""The device API under /api/providore: thin views over device_auth and the hub.

Views are registered once per Home Assistant run (they cannot be unregistered),
so each request looks up the hub of the loaded entry and answers 404 without one.
"""

from __future__ import annotations

from abc import abstractmethod
from http import HTTPStatus

from aiohttp import web
from homeassistant.const import CONTENT_TYPE_JSON
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.helpers.json import json_bytes

from .const import API_BASE_PATH
from .device_auth import (
    AuthenticatedRequest,
    ThrottledError,
    async_authenticate,
    signed_response,
)
from .hub import async_get_loaded_hub
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


class ConfigView(SignedView):
    """GET /config: the device's configuration document."""

    url = f"{API_BASE_PATH}/config"
    name = "api:providore:config"

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Serve the configuration document."""
        return await self._serve(request)

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Return the document for the version the device runs."""
        document = device.hub.config_document(device.key_id, device.firmware_version)
        if document is None:
            return _error(HTTPStatus.NOT_FOUND, "no configuration for this device")
        return signed_response(device, json_bytes(document), CONTENT_TYPE_JSON)


VIEWS: tuple[type[SignedView], ...] = (ConfigView,)
