"""Service actions: hand a device its key, set the documents it fetches, manage firmware."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from homeassistant.const import CONF_PATH
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
    CONF_FIRMWARE_TYPE,
    CONF_FIRMWARE_VERSION,
    CONF_KEY_ID,
    CONF_RELEASE_NOTES,
    CONF_RELEASE_URL,
    CONF_SECRET_KEY,
    CONF_VERSION,
    DOMAIN,
    NVS_KEY_DEVICE_ID,
    NVS_KEY_PSK,
    NVS_NAMESPACE,
)
from .firmware_catalog import FirmwareError
from .hub import ProvidoreHub, async_get_loaded_hub

# Files and folders of the config folder that are never read as firmware.
PRIVATE_FILES = frozenset({"secrets.yaml", DOMAIN})

SERVICE_PROVISIONING_BUNDLE = "provisioning_bundle"
SERVICE_SET_CONFIG = "set_config"
SERVICE_UPLOAD_FIRMWARE = "upload_firmware"
SERVICE_DELETE_FIRMWARE = "delete_firmware"
SERVICE_CANCEL_FIRMWARE_UPDATE = "cancel_firmware_update"

SERVICE_REVOKE_CERTIFICATE = "revoke_certificate"
KEY_ID_SCHEMA = vol.Schema({vol.Required(CONF_KEY_ID): cv.string})

SET_CONFIG_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_KEY_ID): cv.string,
        vol.Required(CONF_CONFIG): dict,
        vol.Optional(CONF_FIRMWARE_VERSION): cv.string,
    }
)

UPLOAD_FIRMWARE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_FIRMWARE_TYPE): cv.string,
        vol.Required(CONF_VERSION): cv.string,
        vol.Required(CONF_PATH): cv.string,
        vol.Optional(CONF_RELEASE_NOTES): cv.string,
        vol.Optional(CONF_RELEASE_URL): cv.url,
    }
)
DELETE_FIRMWARE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_FIRMWARE_TYPE): cv.string,
        vol.Required(CONF_VERSION): cv.string,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the Providore service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_PROVISIONING_BUNDLE,
        _async_provisioning_bundle,
        schema=KEY_ID_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass, DOMAIN, SERVICE_SET_CONFIG, _async_set_config, SET_CONFIG_SCHEMA
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_UPLOAD_FIRMWARE,
        _async_upload_firmware,
        UPLOAD_FIRMWARE_SCHEMA,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_DELETE_FIRMWARE,
        _async_delete_firmware,
        DELETE_FIRMWARE_SCHEMA,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_CANCEL_FIRMWARE_UPDATE,
        _async_cancel_firmware_update,
        KEY_ID_SCHEMA,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REVOKE_CERTIFICATE,
        _async_revoke_certificate,
        KEY_ID_SCHEMA,
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


async def _async_upload_firmware(call: ServiceCall) -> None:
    """Copy a firmware file Home Assistant may read into the catalog."""
    hub = _loaded_hub(call)
    source = await call.hass.async_add_executor_job(
        _readable_source, call.hass, call.data[CONF_PATH]
    )
    await hub.firmware.catalog.async_add(
        call.data[CONF_FIRMWARE_TYPE],
        call.data[CONF_VERSION],
        source,
        call.data.get(CONF_RELEASE_NOTES),
        call.data.get(CONF_RELEASE_URL),
    )


async def _async_delete_firmware(call: ServiceCall) -> None:
    """Remove a firmware build from the catalog."""
    await _loaded_hub(call).firmware.catalog.async_delete(
        call.data[CONF_FIRMWARE_TYPE], call.data[CONF_VERSION]
    )


def _readable_source(hass: HomeAssistant, path: str) -> Path:
    """Resolve a path inside the config folder or an allowed directory (blocking)."""
    try:
        source = Path(hass.config.path(path)).resolve()
    except (OSError, ValueError) as err:  # e.g. a NUL byte, a symlink loop
        raise FirmwareError("firmware_not_found", path=path) from err
    config_dir = Path(hass.config.config_dir).resolve()
    if source.is_relative_to(config_dir):
        parts = source.relative_to(config_dir).parts
        # Never hand a device Home Assistant's private data: .storage (keys, the
        # CA, users), secrets.yaml, or Providore's own folder.
        if any(part.startswith(".") for part in parts) or (
            parts and parts[0] in PRIVATE_FILES
        ):
            raise FirmwareError("path_private", path=path)
    elif not hass.config.is_allowed_path(str(source)):
        raise FirmwareError("path_not_allowed", path=path)
    if not source.is_file():
        raise FirmwareError("firmware_not_found", path=path)
    return source


async def _async_cancel_firmware_update(call: ServiceCall) -> None:
    """Withdraw a device's pending firmware update."""
    hub, key_id = _hub_and_key_id(call)
    await hub.firmware.async_cancel(key_id)


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


def _loaded_hub(call: ServiceCall) -> ProvidoreHub:
    """Return the loaded hub, else refuse the call."""
    if (hub := async_get_loaded_hub(call.hass)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="not_loaded"
        )
    return hub


def _hub_and_key_id(call: ServiceCall) -> tuple[ProvidoreHub, str]:
    """Return the loaded hub and the key id of a device configured on it."""
    hub = _loaded_hub(call)
    key_id: str = call.data[CONF_KEY_ID]
    if key_id not in hub.devices:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"key_id": key_id},
        )
    return hub, key_id
