"""Service actions: enrol devices, hand one its key, set its documents, manage firmware.

ESPHome devices have two of their own: their YAML, and their firmware uploads.
"""

from __future__ import annotations

from typing import Any

from homeassistant.const import ATTR_DEVICE_ID, CONF_PATH
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
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.service import async_register_admin_service
from homeassistant.util.json import JsonValueType
import voluptuous as vol

from .const import (
    API_BASE_PATH,
    CONF_AREAS,
    CONF_CONFIG,
    CONF_DEVICES,
    CONF_FIRMWARE_TYPE,
    CONF_FIRMWARE_VERSION,
    CONF_HEALTHY_FOR,
    CONF_KEY_ID,
    CONF_LABELS,
    CONF_MANIFEST_PATH,
    CONF_MAX_FAILED_PERCENT,
    CONF_RELEASE_NOTES,
    CONF_RELEASE_URL,
    CONF_SECRET_KEY,
    CONF_VERSION,
    CONF_WAVES,
    CONF_WINDOW_END,
    CONF_WINDOW_START,
    DOMAIN,
)
from .device_import import ImportRefused, parse_devices
from .esphome_manifest import MAX_CI_MANIFEST_BYTES
from .models import DeviceKind
from .notice import Change
from .provisioning import nvs_csv
from .readable_files import readable_file
from .rollouts import (
    DEFAULT_HEALTHY_FOR,
    DEFAULT_MAX_FAILED_PERCENT,
    DEFAULT_WAVES,
    MAX_HEALTHY_FOR,
    RolloutRequest,
)
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
SERVICE_START_ROLLOUT = "start_rollout"
SERVICE_PAUSE_ROLLOUT = "pause_rollout"
SERVICE_RESUME_ROLLOUT = "resume_rollout"
SERVICE_CANCEL_ROLLOUT = "cancel_rollout"
SERVICE_ESPHOME_YAML = "esphome_yaml"
SERVICE_UPLOAD_ESPHOME_FIRMWARE = "upload_esphome_firmware"
KEY_ID_SCHEMA = vol.Schema({vol.Required(CONF_KEY_ID): cv.string})

# An action names its device by device_id (the UI's device selector) or, for
# scripts, by key_id: exactly one of them, checked with a translated error.
DEVICE_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Optional(CONF_KEY_ID): cv.string,
    }
)

SET_CONFIG_SCHEMA = DEVICE_SCHEMA.extend(
    {
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
UPLOAD_ESPHOME_FIRMWARE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_KEY_ID): cv.string,
        vol.Required(CONF_PATH): cv.string,
        vol.Optional(CONF_MANIFEST_PATH): cv.string,
        vol.Optional(CONF_VERSION): cv.string,
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

_IDS = vol.All(cv.ensure_list, [cv.string])
START_ROLLOUT_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_FIRMWARE_TYPE): cv.string,
        vol.Optional(CONF_VERSION): cv.string,
        vol.Optional(CONF_DEVICES, default=list): _IDS,
        vol.Optional(CONF_AREAS, default=list): _IDS,
        vol.Optional(CONF_LABELS, default=list): _IDS,
        vol.Optional(CONF_WAVES, default=DEFAULT_WAVES): cv.string,
        vol.Optional(CONF_HEALTHY_FOR, default=DEFAULT_HEALTHY_FOR): vol.All(
            cv.positive_time_period, vol.Range(max=MAX_HEALTHY_FOR)
        ),
        vol.Optional(
            CONF_MAX_FAILED_PERCENT, default=DEFAULT_MAX_FAILED_PERCENT
        ): vol.All(vol.Coerce(int), vol.Range(min=0, max=100)),
        vol.Optional(CONF_WINDOW_START): cv.time,
        vol.Optional(CONF_WINDOW_END): cv.time,
    }
)
ROLLOUT_SCHEMA = vol.Schema({vol.Required(CONF_FIRMWARE_TYPE): cv.string})


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the Providore service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_PROVISIONING_BUNDLE,
        _async_provisioning_bundle,
        schema=DEVICE_SCHEMA,
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
        DEVICE_SCHEMA,
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
        DEVICE_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_NOTIFY_DEVICE,
        _async_notify_device,
        schema=DEVICE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass, DOMAIN, SERVICE_START_ROLLOUT, _async_start_rollout, START_ROLLOUT_SCHEMA
    )
    for service, control in (
        (SERVICE_PAUSE_ROLLOUT, _async_pause_rollout),
        (SERVICE_RESUME_ROLLOUT, _async_resume_rollout),
        (SERVICE_CANCEL_ROLLOUT, _async_cancel_rollout),
    ):
        async_register_admin_service(hass, DOMAIN, service, control, ROLLOUT_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_ESPHOME_YAML,
        _async_esphome_yaml,
        schema=KEY_ID_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_UPLOAD_ESPHOME_FIRMWARE,
        _async_upload_esphome_firmware,
        UPLOAD_ESPHOME_FIRMWARE_SCHEMA,
    )


async def _async_provisioning_bundle(call: ServiceCall) -> ServiceResponse:
    """Return what a device must be flashed with: its key and where to call."""
    await _async_require_admin(call)
    runtime, key_id = _runtime_and_key_id(call)
    if runtime.devices[key_id].esphome is not None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="esphome_no_bundle",
            translation_placeholders={"key_id": key_id},
        )
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
    if runtime.devices[key_id].kind is DeviceKind.ESPHOME:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="esphome_no_notice",
            translation_placeholders={"key_id": key_id},
        )
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


async def _async_start_rollout(call: ServiceCall) -> None:
    """Start updating the devices of a firmware type in waves."""
    data = call.data
    await _loaded_runtime(call).rollouts.async_start_rollout(
        RolloutRequest(
            firmware_type=data[CONF_FIRMWARE_TYPE],
            version=data.get(CONF_VERSION),
            device_ids=data[CONF_DEVICES],
            area_ids=data[CONF_AREAS],
            label_ids=data[CONF_LABELS],
            waves=data[CONF_WAVES],
            healthy_for=data[CONF_HEALTHY_FOR],
            max_failed_percent=data[CONF_MAX_FAILED_PERCENT],
            window_start=data.get(CONF_WINDOW_START),
            window_end=data.get(CONF_WINDOW_END),
        )
    )


async def _async_pause_rollout(call: ServiceCall) -> None:
    """Start no new device of a rollout until it is resumed."""
    await _loaded_runtime(call).rollouts.async_pause(call.data[CONF_FIRMWARE_TYPE])


async def _async_resume_rollout(call: ServiceCall) -> None:
    """Let a paused rollout start devices again."""
    await _loaded_runtime(call).rollouts.async_resume(call.data[CONF_FIRMWARE_TYPE])


async def _async_cancel_rollout(call: ServiceCall) -> None:
    """Stop a rollout for good."""
    await _loaded_runtime(call).rollouts.async_cancel(call.data[CONF_FIRMWARE_TYPE])


async def _async_esphome_yaml(call: ServiceCall) -> ServiceResponse:
    """Return an ESPHome device's YAML, its secrets line and its manifest URL."""
    await _async_require_admin(call)
    runtime, key_id = _esphome_device(call)
    snippet = runtime.esphome_snippet(key_id)
    return {
        "yaml": snippet.yaml,
        "secrets": snippet.secrets,
        "secret_name": snippet.secret_name,
        "manifest_url": runtime.esphome.manifest_url(key_id),
        "ca_certificate_file": snippet.ca_certificate_file,
        "warnings": [warning.value for warning in snippet.warnings],
    }


async def _async_upload_esphome_firmware(call: ServiceCall) -> None:
    """Add a firmware.ota.bin (with a CI build's manifest.json) for an ESPHome device."""
    runtime, key_id = _esphome_device(call)
    hass = call.hass
    source = await hass.async_add_executor_job(
        readable_file, hass, call.data[CONF_PATH]
    )
    ci_manifest = None
    if manifest_path := call.data.get(CONF_MANIFEST_PATH):
        ci_manifest = await hass.async_add_executor_job(
            _read_ci_manifest, hass, manifest_path
        )
    await runtime.esphome.async_add_build(
        key_id,
        source,
        ci_manifest=ci_manifest,
        version=call.data.get(CONF_VERSION),
        release_notes=call.data.get(CONF_RELEASE_NOTES),
        release_url=call.data.get(CONF_RELEASE_URL),
    )


def _read_ci_manifest(hass: HomeAssistant, path: str) -> bytes:
    """Read a CI manifest the caller may name, up to one byte past its limit (blocking)."""
    with readable_file(hass, path).open("rb") as file:
        return file.read(MAX_CI_MANIFEST_BYTES + 1)


def _esphome_device(call: ServiceCall) -> tuple[ProvidoreRuntime, str]:
    """Return the loaded runtime and the key id of an ESPHome device configured on it."""
    runtime, key_id = _runtime_and_key_id(call)
    if runtime.devices[key_id].esphome is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_esphome_device",
            translation_placeholders={"key_id": key_id},
        )
    return runtime, key_id


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
    """Return the loaded runtime and the key ID of the device the call names."""
    runtime = _loaded_runtime(call)
    device_id: str | None = call.data.get(ATTR_DEVICE_ID)
    key_id: str | None = call.data.get(CONF_KEY_ID)
    if device_id is not None and key_id is not None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="device_and_key_id"
        )
    if device_id is not None:
        key_id = _key_id_of_device(call.hass, device_id)
    if key_id is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_device"
        )
    if key_id not in runtime.devices:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"key_id": key_id},
        )
    return runtime, key_id


def _key_id_of_device(hass: HomeAssistant, device_id: str) -> str:
    """Return the key ID of a Providore device in the device registry."""
    if (device := dr.async_get(hass).async_get(device_id)) is not None:
        for domain, identifier in device.identifiers:
            if domain == DOMAIN:
                return identifier
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_device_id",
        translation_placeholders={"device_id": device_id},
    )
