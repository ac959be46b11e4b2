"""GET /api/providore/esphome/<token>/<file>: an ESPHome device's manifest and firmware.

ESPHome's `http_request` update sends no header of Providore's, so the token in the
path is the device's only credential. An unknown or revoked token gets the same 404,
and counts as a failure of the address for throttling, like a bad signature; a known
token is never throttled. Both answers carry a Content-Length (ESPHome reads exactly
that many bytes and cannot read a chunked answer).
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus

from aiohttp import web
from homeassistant.const import CONTENT_TYPE_JSON
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util import dt as dt_util

from .const import API_BASE_PATH, ESPHOME_MANIFEST_NAME, ESPHOME_PATH
from .device_auth import UNKNOWN_ADDRESS
from .firmware_delivery import async_send_firmware
from .request_guards import DATA_GUARDS
from .runtime import async_get_loaded_runtime


def _not_found() -> web.Response:
    return web.json_response({"message": "not found"}, status=HTTPStatus.NOT_FOUND)


class EsphomeView(HomeAssistantView):
    """An ESPHome device's manifest, and the firmware file it names."""

    url = f"{API_BASE_PATH}{ESPHOME_PATH}/{{token}}/{{name}}"
    name = "api:providore:esphome"
    requires_auth = False

    async def get(
        self, request: web.Request, token: str, name: str
    ) -> web.StreamResponse:
        """Answer with the manifest or the firmware, or 404 for an unknown token."""
        hass = request.app[KEY_HASS]
        if (runtime := async_get_loaded_runtime(hass)) is None:
            return _not_found()
        now = dt_util.utcnow()
        if (key_id := runtime.esphome.device_for_token(token)) is None:
            return _refused(hass, request, now)
        if name == ESPHOME_MANIFEST_NAME:
            body = runtime.esphome.manifest(key_id, request.remote, now)
            return web.Response(body=body, content_type=CONTENT_TYPE_JSON)
        if (download := runtime.esphome.prepare_download(key_id, name)) is None:
            return _not_found()
        try:
            return await async_send_firmware(hass, request, download)
        except FileNotFoundError:
            return _not_found()


def _refused(hass: HomeAssistant, request: web.Request, now: datetime) -> web.Response:
    """Answer an unknown (or revoked) token: 404, or 429 once its address failed too often."""
    guards = hass.data[DATA_GUARDS]
    address = request.remote or UNKNOWN_ADDRESS
    if (retry_after := guards.retry_after(address, now)) is not None:
        return web.json_response(
            {"message": "too many failed requests"},
            status=HTTPStatus.TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    guards.record_failure(address, None, now)
    return _not_found()
