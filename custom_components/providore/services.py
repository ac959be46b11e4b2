"""Service actions: hand a device its key, and set the documents devices fetch."""

from __future__ import annotations

import csv
import io
from typing import Any

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.service import async_register_admin_service
import voluptuous as vol

from .const import (
    API_BASE_PATH,
    CONF_CONFIG,
    CONF_FIRMWARE_VERSION,
    CONF_KEY_ID,
    CONF_SECRET_KEY,
    DOMAIN,
    NVS_KEY_DEVICE_ID,
    NVS_KEY_PSK,
    NVS_NAMESPACE,
)
from .hub import ProvidoreHub, async_get_loaded_hub

SERVICE_PROVISIONING_BUNDLE = "provisioning_bundle"
SERVICE_SET_CONFIG = "set_config"
SERVICE_REVOKE_CERTIFICATE = "revoke_certificate"
REVOKE_CERTIFICATE_SCHEMA = vol.Schema({vol.Required(CONF_KEY_ID): cv.string})
PROVISIONING_BUNDLE_SCHEMA = vol.Schema({vol.Required(CONF_KEY_ID): cv.string})
SET_CONFIG_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_KEY_ID): cv.string,
        vol.Required(CONF_CONFIG): dict,
        vol.Optional(CONF_FIRMWARE_VERSION): cv.string,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the Providore service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_PROVISIONING_BUNDLE,
        _async_provisioning_bundle,
        schema=PROVISIONING_BUNDLE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass, DOMAIN, SERVICE_SET_CONFIG, _async_set_config, SET_CONFIG_SCHEMA
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REVOKE_CERTIFICATE,
        _async_revoke_certificate,
        REVOKE_CERTIFICATE_SCHEMA,
    )


async def _async_provisioning_bundle(call: ServiceCall) -> ServiceResponse:
    """Return what a device must be flashed with: its key and where to call."""
    await _async_require_admin(call)
    hub, key_id = _hub_and_key_id(call)
    secret_key = hub.secret(key_id)
    if secret_key is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="missing_secret",
            translation_placeholders={"key_id": key_id},
        )
    try:
        base_url = get_url(call.hass, allow_cloud=False, prefer_external=False)
    except NoURLAvailableError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="no_url"
        ) from err
    return {
        CONF_KEY_ID: key_id,
        CONF_SECRET_KEY: secret_key,
        "base_url": f"{base_url}{API_BASE_PATH}",
        "nvs_csv": nvs_csv(key_id, secret_key),
        "ca_certificate": hub.certificates.authority.certificate_pem,
    }


async def _async_set_config(call: ServiceCall) -> None:
    """Set the document /config serves to a device."""
    hub, key_id = _hub_and_key_id(call)
    document: dict[str, Any] = call.data[CONF_CONFIG]
    await hub.storage.async_set_document(
        key_id, document, call.data.get(CONF_FIRMWARE_VERSION)
    )


async def _async_revoke_certificate(call: ServiceCall) -> None:
    """Revoke a device's valid certificates."""
    hub, key_id = _hub_and_key_id(call)
    await hub.certificates.async_revoke(key_id)


def nvs_csv(key_id: str, secret_key: str) -> str:
    """Return the CSV the ESP-IDF NVS partition generator takes for a device."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(
        [
            ("key", "type", "encoding", "value"),
            (NVS_NAMESPACE, "namespace", "", ""),
            (NVS_KEY_DEVICE_ID, "data", "string", key_id),
            (NVS_KEY_PSK, "data", "string", secret_key),
        ]
    )
    return out.getvalue()


async def _async_require_admin(call: ServiceCall) -> None:
    """Refuse a call by a user who is not an administrator."""
    if call.context.user_id is None:
        return
    user = await call.hass.auth.async_get_user(call.context.user_id)
    if user is None:
        raise UnknownUser(context=call.context)
    if not user.is_admin:
        raise Unauthorized(context=call.context)


def _hub_and_key_id(call: ServiceCall) -> tuple[ProvidoreHub, str]:
    """Return the loaded hub and the key id of a device configured on it."""
    if (hub := async_get_loaded_hub(call.hass)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="not_loaded"
        )
    key_id: str = call.data[CONF_KEY_ID]
    if key_id not in hub.devices:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"key_id": key_id},
        )
    return hub, key_id
