"""Service actions: enrol devices, hand one its key, set its documents, manage firmware."""

from __future__ import annotations

import csv
import io
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
from homeassistant.util.json import JsonValueType
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
from .device_import import ImportRefused, parse_devices
from .notice import Change
from .readable_files import readable_file
from .runtime import ProvidoreRuntime, async_get_loaded_runtime

SERVICE_PROVISIONING_BUNDLE = "provisioning_bundle"
SERVICE_SET_CONFIG = "set_config"
SERVICE_UPLOAD_FIRMWARE = "upload_firmware"
SERVICE_DELETE_FIRMWARE = "delete_firmware"
SERVICE_CANCEL_FIRMWARE_UPDATE = "cancel_firmware_update"
SERVICE_IMPORT_DEVICES = "import_devices"
# A device list larger than this is refused before it is read.
MAX_IMPORT_BYTES = 1024 * 1024

SERVICE_REVOKE_CERTIFICATE = "revoke_certificate"
SERVICE_NOTIFY_DEVICE = "notify_device"
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
IMPORT_DEVICES_SCHEMA = vol.Schema({vol.Required(CONF_PATH): cv.string})
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
    hass.services.async_register(
        DOMAIN,
        SERVICE_IMPORT_DEVICES,
        _async_import_devices,
        schema=IMPORT_DEVICES_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REVOKE_CERTIFICATE,
        _async_revoke_certificate,
        KEY_ID_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_NOTIFY_DEVICE,
        _async_notify_device,
        schema=KEY_ID_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


async def _async_provisioning_bundle(call: ServiceCall) -> ServiceResponse:
    """Return what a device must be flashed with: its key and where to call."""
    await _async_require_admin(call)
    runtime, key_id = _runtime_and_key_id(call)
    secret_key = runtime.secret(key_id)
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
        "ca_certificate": runtime.certificate_authority.certificate_pem,
    }


async def _async_set_config(call: ServiceCall) -> None:
    """Set the document /config serves to a device."""
    runtime, key_id = _runtime_and_key_id(call)
    document: dict[str, Any] = call.data[CONF_CONFIG]
    await runtime.async_set_config(
        key_id, document, call.data.get(CONF_FIRMWARE_VERSION)
    )


async def _async_upload_firmware(call: ServiceCall) -> None:
    """Copy a firmware file Home Assistant may read into the catalog."""
    runtime = _loaded_runtime(call)
    source = await call.hass.async_add_executor_job(
        readable_file, call.hass, call.data[CONF_PATH]
    )
    await runtime.async_add_build(
        call.data[CONF_FIRMWARE_TYPE],
        call.data[CONF_VERSION],
        source,
        call.data.get(CONF_RELEASE_NOTES),
        call.data.get(CONF_RELEASE_URL),
    )


async def _async_delete_firmware(call: ServiceCall) -> None:
    """Remove a firmware build from the catalog."""
    await _loaded_runtime(call).async_delete_build(
        call.data[CONF_FIRMWARE_TYPE], call.data[CONF_VERSION]
    )


async def _async_import_devices(call: ServiceCall) -> ServiceResponse:
    """Add the devices of a CSV file in the config folder; all of them or none."""
    await _async_require_admin(call)
    runtime = _loaded_runtime(call)
    text = await call.hass.async_add_executor_job(
        _read_device_list, call.hass, call.data[CONF_PATH]
    )
    try:
        devices = parse_devices(text, runtime.devices.keys())
    except ImportRefused as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=f"import_{err.reason}",
            translation_placeholders={"line": str(err.line or "-"), **err.details},
        ) from err
    await runtime.async_import_devices(devices)
    return {
        "devices": [
            {
                "line": device.line,
                "name": device.name,
                CONF_KEY_ID: device.key_id,
                "secret_key_generated": device.secret_generated,
                CONF_FIRMWARE_TYPE: device.firmware_type,
            }
            for device in devices
        ]
    }


def _read_device_list(hass: HomeAssistant, path: str) -> str:
    """Read a device list the caller may name (blocking)."""
    source = readable_file(hass, path)
    if source.stat().st_size > MAX_IMPORT_BYTES:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="import_too_large"
        )
    try:
        return source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="import_unreadable_csv",
            translation_placeholders={"line": "-"},
        ) from err


async def _async_cancel_firmware_update(call: ServiceCall) -> None:
    """Withdraw a device's pending firmware update."""
    runtime, key_id = _runtime_and_key_id(call)
    await runtime.async_cancel_update(key_id)


async def _async_revoke_certificate(call: ServiceCall) -> None:
    """Revoke a device's valid certificates."""
    runtime, key_id = _runtime_and_key_id(call)
    await runtime.async_revoke_certificates(key_id)


async def _async_notify_device(call: ServiceCall) -> ServiceResponse:
    """Send a device a push notice asking it to check in now."""
    await _async_require_admin(call)
    runtime, key_id = _runtime_and_key_id(call)
    if not runtime.notices_enabled:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="notices_off"
        )
    if runtime.secret(key_id) is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="missing_secret",
            translation_placeholders={"key_id": key_id},
        )
    sent: list[JsonValueType] = [*await runtime.async_notify(key_id, {Change.CHECK})]
    if not sent:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="notice_not_sent",
            translation_placeholders={"key_id": key_id},
        )
    return {"sent_to": sent} if call.return_response else None


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


def _loaded_runtime(call: ServiceCall) -> ProvidoreRuntime:
    """Return the runtime of the loaded hub, else refuse the call."""
    if (runtime := async_get_loaded_runtime(call.hass)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="not_loaded"
        )
    return runtime


def _runtime_and_key_id(call: ServiceCall) -> tuple[ProvidoreRuntime, str]:
    """Return the loaded runtime and the key id of a device configured on it."""
    runtime = _loaded_runtime(call)
    key_id: str = call.data[CONF_KEY_ID]
    if key_id not in runtime.devices:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"key_id": key_id},
        )
    return runtime, key_id
