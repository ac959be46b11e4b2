"""The downloads of Flash the device: short-lived, signed links to a device's key files.

Flash the device offers a device's files here; each file gets a random, opaque token,
held only in memory with the device's key material and the file's kind, and a path
under /api/providore/provisioning signed with Home Assistant's `async_sign_path` for
the administrator running the flow. Neither the key ID nor the secret key is ever
part of a URL, so a logged URL gives nothing away. The view (registered once) serves a
token's file to an administrator while the link is fresh and the device still has the
key the link was made for; building an image runs in the executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import hmac
from http import HTTPStatus
import secrets
from typing import Final

from aiohttp import hdrs, web
from homeassistant.components.http.auth import async_sign_path
from homeassistant.components.http.decorators import require_admin
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import API_BASE_PATH
from .provisioning import DeviceKeyMaterial, ProvisioningFile
from .runtime import async_get_loaded_runtime

DOWNLOAD_PATH: Final = f"{API_BASE_PATH}/provisioning/{{token}}"
LINK_LIFETIME: Final = timedelta(minutes=10)
# Links held at once (four per Flash the device); the oldest go first.
MAX_LINKS: Final = 64
DATA_DOWNLOADS: HassKey[ProvisioningDownloads] = HassKey(
    "providore_provisioning_downloads"
)


@dataclass(frozen=True, slots=True)
class _Offer:
    material: DeviceKeyMaterial
    kind: ProvisioningFile
    expires: datetime


class ProvisioningDownloads:
    """The files offered for download, by token, until their links expire."""

    def __init__(self) -> None:
        """Start with nothing offered."""
        self._offers: dict[str, _Offer] = {}

    @callback
    def async_offer(
        self, hass: HomeAssistant, material: DeviceKeyMaterial
    ) -> dict[ProvisioningFile, str]:
        """Offer every file of a device; return each one's signed path.

        Call it while handling the administrator's request: the paths are signed
        for that user's session.
        """
        self._drop_expired()
        expires = dt_util.utcnow() + LINK_LIFETIME
        links: dict[ProvisioningFile, str] = {}
        for kind in ProvisioningFile:
            token = secrets.token_urlsafe(32)
            self._offers[token] = _Offer(material, kind, expires)
            links[kind] = async_sign_path(
                hass, DOWNLOAD_PATH.format(token=token), LINK_LIFETIME
            )
        while len(self._offers) > MAX_LINKS:
            del self._offers[next(iter(self._offers))]
        return links

    @callback
    def get(self, token: str) -> _Offer | None:
        """Return what a token offers while its link is fresh."""
        self._drop_expired()
        return self._offers.get(token)

    def _drop_expired(self) -> None:
        now = dt_util.utcnow()
        for token in [t for t, offer in self._offers.items() if offer.expires <= now]:
            del self._offers[token]


class ProvisioningDownloadView(HomeAssistantView):
    """GET /api/providore/provisioning/{token}: one file of Flash the device."""

    url = DOWNLOAD_PATH
    name = "api:providore:provisioning"
    requires_auth = True

    @require_admin
    async def get(self, request: web.Request, token: str) -> web.StreamResponse:
        """Serve the file while its link is fresh and the device's key unchanged."""
        hass = request.app[KEY_HASS]
        offer = hass.data[DATA_DOWNLOADS].get(token)
        if offer is None or not _key_unchanged(hass, offer.material):
            return web.json_response(
                {
                    "message": "This download has expired. Open the device's "
                    "Configure → Flash the device again."
                },
                status=HTTPStatus.NOT_FOUND,
            )
        content = await hass.async_add_executor_job(offer.material.build, offer.kind)
        filename = offer.kind.filename(offer.material.key_id)
        return web.Response(
            body=content,
            content_type=offer.kind.content_type,
            headers={
                hdrs.CONTENT_DISPOSITION: f'attachment; filename="{filename}"',
                hdrs.CACHE_CONTROL: "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _key_unchanged(hass: HomeAssistant, material: DeviceKeyMaterial) -> bool:
    """Return whether the device still exists with the key it was offered with."""
    runtime = async_get_loaded_runtime(hass)
    secret = None if runtime is None else runtime.secret(material.key_id)
    return secret is not None and hmac.compare_digest(
        secret.encode(), material.secret_key.encode()
    )


@callback
def async_setup_provisioning_downloads(hass: HomeAssistant) -> None:
    """Hold the offered files and register their view (once per run)."""
    hass.data[DATA_DOWNLOADS] = ProvisioningDownloads()
    hass.http.register_view(ProvisioningDownloadView())
