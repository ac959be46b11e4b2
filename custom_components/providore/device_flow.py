"""The device subentry flow: add a device with a new or its own key; change, flash or revoke."""

from __future__ import annotations

from dataclasses import dataclass
import html
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.selector import (
    BooleanSelector,
    ObjectSelector,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .certificate_authority import CertificateUsage
from .const import (
    API_BASE_PATH,
    CONF_CERTIFICATE_USAGE,
    CONF_CONFIG,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_ROTATE_KEY,
    CONF_SECRET_KEY,
)
from .pending_devices import PendingDevice
from .protocol import (
    generate_key_id,
    generate_secret_key,
    is_valid_key_id,
    is_valid_secret_key,
)
from .provisioning import (
    FLASH_SECTOR,
    MAX_SERVER_URL_BYTES,
    DeviceKeyMaterial,
    ProvisioningFile,
    is_valid_flash_offset,
    is_valid_nvs_size,
    new_encryption_key,
    parse_flash_number,
    server_url_fits,
)
from .provisioning_views import DATA_DOWNLOADS, LINK_LIFETIME
from .runtime import ProvidoreRuntime, async_get_loaded_runtime, key_ids_in_use

CONF_NVS_OFFSET: Final = "nvs_offset"
CONF_NVS_SIZE: Final = "nvs_size"
CONF_NVS_KEYS_OFFSET: Final = "nvs_keys_offset"
# What the secret key field holds after an error while the flow keeps the secret the
# user entered: never the secret itself, and never a valid secret (it is too short).
KEPT_SECRET: Final = "(kept)"  # noqa: S105 (a marker, not a secret)
# The nvs partition of ESP-IDF's default partition tables: offset 0x9000, and 0x6000
# bytes in the single-app table (the two-OTA table has 0x4000: the user says which).
DEFAULT_NVS_OFFSET: Final = "0x9000"
DEFAULT_NVS_SIZE: Final = "0x6000"
# Shown in the flash command when the user did not name the nvs_keys partition.
UNKNOWN_KEYS_OFFSET: Final = "NVS_KEYS_OFFSET"

_TEXT = TextSelector()
_USAGE = SelectSelector(
    SelectSelectorConfig(
        options=[usage.value for usage in CertificateUsage],
        translation_key=CONF_CERTIFICATE_USAGE,
        mode=SelectSelectorMode.DROPDOWN,
    )
)
_USAGE_FIELD = vol.Required(
    CONF_CERTIFICATE_USAGE, default=CertificateUsage.CLIENT.value
)
NEW_KEY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Optional(CONF_KEY_ID): _TEXT,
        vol.Optional(CONF_FIRMWARE_TYPE): _TEXT,
        _USAGE_FIELD: _USAGE,
    }
)
EXISTING_KEY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Required(CONF_KEY_ID): _TEXT,
        vol.Required(CONF_SECRET_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
        vol.Optional(CONF_FIRMWARE_TYPE): _TEXT,
        _USAGE_FIELD: _USAGE,
    }
)
SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Optional(CONF_FIRMWARE_TYPE): _TEXT,
        vol.Optional(CONF_CERTIFICATE_USAGE): _USAGE,
        vol.Optional(CONF_CONFIG): ObjectSelector(),
        vol.Required(CONF_ROTATE_KEY, default=False): BooleanSelector(),
    }
)
# Adopting a device that announced itself (the Add device flow and the repair).
ADOPT_DEVICE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Optional(CONF_FIRMWARE_TYPE): _TEXT,
        vol.Optional(CONF_SECRET_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
        _USAGE_FIELD: _USAGE,
    }
)
FLASH_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NVS_OFFSET): _TEXT,
        vol.Required(CONF_NVS_SIZE): _TEXT,
        vol.Optional(CONF_NVS_KEYS_OFFSET): _TEXT,
    }
)


def adoption_suggestions(device: PendingDevice) -> dict[str, str]:
    """Return what the adopt form offers: the announced firmware type, unconfirmed."""
    return {
        CONF_NAME: f"{device.firmware_type or 'Device'} {device.key_id}",
        CONF_FIRMWARE_TYPE: device.firmware_type or "",
    }


def read_adoption(
    user_input: dict[str, Any],
) -> tuple[tuple[str, str, str, CertificateUsage] | None, dict[str, str]]:
    """Check the adopt form: (name, firmware type, secret key, usage), or the errors.

    An empty secret key means a new one is generated, to be flashed onto the device.
    """
    errors: dict[str, str] = {}
    name = user_input[CONF_NAME].strip()
    secret_key = user_input.get(CONF_SECRET_KEY) or generate_secret_key()
    if not name:
        errors[CONF_NAME] = "invalid_name"
    if not is_valid_secret_key(secret_key):
        errors[CONF_SECRET_KEY] = "invalid_secret_key"
    if errors:
        return None, errors
    usage = CertificateUsage(user_input[CONF_CERTIFICATE_USAGE])
    firmware_type = user_input.get(CONF_FIRMWARE_TYPE, "").strip()
    return (name, firmware_type, secret_key, usage), errors


class EnteredSecret:
    """The secret key typed into a form, kept across the form's errors.

    Once valid, it never goes back to the browser: the field shows KEPT_SECRET, and
    submitting KEPT_SECRET again means "the key I typed before".
    """

    def __init__(self) -> None:
        """Start with no key typed."""
        self.kept: str | None = None

    def read(self, user_input: dict[str, Any]) -> str:
        """Return the key the form now holds ("" for none); keep it when it is valid."""
        entered: str = user_input.get(CONF_SECRET_KEY, "")
        if entered == KEPT_SECRET and self.kept is not None:
            return self.kept
        self.kept = entered if is_valid_secret_key(entered) else None
        return entered

    def shown_again(self, user_input: dict[str, Any]) -> dict[str, Any]:
        """Return what the form shows after an error: what was typed, the key hidden."""
        shown = {k: v for k, v in user_input.items() if k != CONF_SECRET_KEY}
        if self.kept is not None:
            shown[CONF_SECRET_KEY] = KEPT_SECRET
        return shown


class DeviceSubentryFlow(ConfigSubentryFlow):
    """Add a device with its key, change it, or put its key onto it."""

    def __init__(self) -> None:
        """Start with no secret key entered and no found device chosen."""
        self._secret = EnteredSecret()
        self._adopting = ""

    # --- Add device ----------------------------------------------------------------

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask whether the device gets a new key or keeps the one it holds.

        Devices that announced themselves are offered for adoption first.
        """
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        options = ["new_key", "existing_key"]
        if runtime.pending_devices.devices():
            options.insert(0, "adopt")
        return self.async_show_menu(step_id="user", menu_options=options)

    async def async_step_adopt(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose one of the devices that announced themselves."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if user_input is not None:
            self._adopting = user_input[CONF_KEY_ID]
            return await self.async_step_adopt_device()
        if not (pending := runtime.pending_devices.devices()):
            return self.async_abort(reason="no_pending_device")
        choices = [
            SelectOptionDict(value=device.key_id, label=device.describe())
            for device in pending
        ]
        return self.async_show_form(
            step_id="adopt",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_KEY_ID): SelectSelector(
                        SelectSelectorConfig(
                            options=choices, mode=SelectSelectorMode.LIST
                        )
                    )
                }
            ),
        )

    async def async_step_adopt_device(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Name the chosen device and give it its key: the one it holds, or a new one.

        As in existing_key, a valid secret key survives an error in another field.
        """
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        key_id = self._adopting
        if key_id in self._key_ids_in_use():
            return self.async_abort(reason="already_adopted")
        errors: dict[str, str] = {}
        suggested: dict[str, Any] = {}
        if user_input is not None:
            secret_key = self._secret.read(user_input)
            adoption, errors = read_adoption(user_input | {CONF_SECRET_KEY: secret_key})
            if adoption is not None:
                message = "existing_key" if secret_key else "default"
                return await self._async_add_device(
                    runtime, user_input, key_id, adoption[2], message
                )
            suggested = self._secret.shown_again(user_input)
        elif (device := runtime.pending_devices.get(key_id)) is not None:
            suggested = adoption_suggestions(device)
        return self.async_show_form(
            step_id="adopt_device",
            data_schema=self.add_suggested_values_to_schema(
                ADOPT_DEVICE_SCHEMA, suggested
            ),
            errors=errors,
            description_placeholders={CONF_KEY_ID: key_id},
        )

    async def async_step_new_key(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add a device with a secret key Providore generates."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        if user_input is not None:
            key_id = user_input.get(CONF_KEY_ID, "").strip() or self._new_key_id()
            errors = self._profile_errors(user_input) | self._key_id_errors(key_id)
            if not errors:
                return await self._async_add_device(
                    runtime, user_input, key_id, generate_secret_key(), "default"
                )
        return self.async_show_form(
            step_id="new_key",
            data_schema=self.add_suggested_values_to_schema(
                NEW_KEY_SCHEMA, user_input or {}
            ),
            errors=errors,
        )

    async def async_step_existing_key(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add a device that already holds a key: its key ID and secret key.

        A valid secret key survives an error in another field without going back
        to the browser: the flow keeps it and the field shows KEPT_SECRET.
        """
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        suggested: dict[str, Any] = {}
        if user_input is not None:
            key_id = user_input[CONF_KEY_ID].strip()
            self._secret.read(user_input)
            errors = self._profile_errors(user_input) | self._key_id_errors(key_id)
            if self._secret.kept is None:
                errors[CONF_SECRET_KEY] = "invalid_secret_key"
            elif not errors:
                return await self._async_add_device(
                    runtime, user_input, key_id, self._secret.kept, "existing_key"
                )
            suggested = self._secret.shown_again(user_input)
        return self.async_show_form(
            step_id="existing_key",
            data_schema=self.add_suggested_values_to_schema(
                EXISTING_KEY_SCHEMA, suggested
            ),
            errors=errors,
        )

    async def _async_add_device(
        self,
        runtime: ProvidoreRuntime,
        user_input: dict[str, Any],
        key_id: str,
        secret_key: str,
        message: str,
    ) -> SubentryFlowResult:
        """Save the key (before the device exists: never a device without it), add it."""
        await runtime.async_store_secrets({key_id: secret_key})
        name = user_input[CONF_NAME].strip()
        return self.async_create_entry(
            title=name,
            data={
                CONF_KEY_ID: key_id,
                CONF_FIRMWARE_TYPE: user_input.get(CONF_FIRMWARE_TYPE, "").strip(),
                CONF_CERTIFICATE_USAGE: user_input[CONF_CERTIFICATE_USAGE],
            },
            unique_id=key_id,
            description=message,
            description_placeholders={"name": name, "key_id": key_id},
        )

    @staticmethod
    def _profile_errors(user_input: dict[str, Any]) -> dict[str, str]:
        if not user_input[CONF_NAME].strip():
            return {CONF_NAME: "invalid_name"}
        return {}

    def _key_id_errors(self, key_id: str) -> dict[str, str]:
        if not is_valid_key_id(key_id):
            return {CONF_KEY_ID: "invalid_key_id"}
        if key_id in self._key_ids_in_use():
            return {CONF_KEY_ID: "key_id_in_use"}
        return {}

    def _key_ids_in_use(self) -> set[str]:
        return key_ids_in_use(self._get_entry())

    def _new_key_id(self) -> str:
        in_use = self._key_ids_in_use()
        while (key_id := generate_key_id()) in in_use:
            continue
        return key_id

    # --- Configure -----------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Offer the device's settings, or what flashing it takes."""
        if async_get_loaded_runtime(self.hass) is None:
            return self.async_abort(reason="not_loaded")
        return self.async_show_menu(
            step_id="reconfigure",
            menu_options=["settings", "flash", "revoke_certificate"],
            description_placeholders=self._device_placeholders(),
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename the device, change its firmware type or document, or rotate its key."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        subentry = self._get_reconfigure_subentry()
        key_id: str = subentry.data[CONF_KEY_ID]
        usage: str = subentry.data.get(
            CONF_CERTIFICATE_USAGE, CertificateUsage.CLIENT.value
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            name = user_input[CONF_NAME].strip()
            document = user_input.get(CONF_CONFIG)
            if not name:
                errors[CONF_NAME] = "invalid_name"
            if document is not None and not isinstance(document, dict):
                errors[CONF_CONFIG] = "invalid_config"
            if not errors:
                if document is not None:
                    await runtime.async_set_config(key_id, document)
                rotate = user_input[CONF_ROTATE_KEY]
                if rotate:
                    await runtime.async_rotate_key(key_id)
                self.hass.config_entries.async_update_subentry(
                    self._get_entry(),
                    subentry,
                    title=name,
                    data=subentry.data
                    | {
                        CONF_FIRMWARE_TYPE: user_input.get(
                            CONF_FIRMWARE_TYPE, ""
                        ).strip(),
                        CONF_CERTIFICATE_USAGE: user_input.get(
                            CONF_CERTIFICATE_USAGE, usage
                        ),
                    },
                )
                return self.async_abort(
                    reason="key_rotated" if rotate else "reconfigure_successful",
                    description_placeholders={"key_id": key_id, "name": name},
                )
        suggested: dict[str, Any] = {
            CONF_NAME: subentry.title,
            CONF_FIRMWARE_TYPE: subentry.data.get(CONF_FIRMWARE_TYPE, ""),
            CONF_CERTIFICATE_USAGE: usage,
        }
        if (default := runtime.documents(key_id).get("default")) is not None:
            suggested[CONF_CONFIG] = default
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(
                SETTINGS_SCHEMA, user_input or suggested
            ),
            errors=errors,
            description_placeholders=self._device_placeholders(),
        )

    async def async_step_flash(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the device's NVS partitions, then show its key and the downloads."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        placeholders = self._device_placeholders()
        key_id = placeholders["key_id"]
        if (secret_key := runtime.secret(key_id)) is None:
            return self.async_abort(
                reason="missing_secret", description_placeholders=placeholders
            )
        try:
            base_url = get_url(self.hass, allow_cloud=False, prefer_external=False)
        except NoURLAvailableError:
            return self.async_abort(reason="no_url")
        server_url = f"{base_url}{API_BASE_PATH}"
        placeholders |= {
            "server_url": server_url,
            "max_length": str(MAX_SERVER_URL_BYTES),
        }
        errors: dict[str, str] = {}
        if user_input is not None:
            layout, errors = _partition_layout(user_input)
            if layout is not None:
                material = DeviceKeyMaterial(
                    key_id, secret_key, layout.nvs_size, new_encryption_key()
                )
                links = self.hass.data[DATA_DOWNLOADS].async_offer(self.hass, material)
                return self.async_abort(
                    reason="flash_ready",
                    description_placeholders=placeholders
                    | _flash_placeholders(material, layout, links),
                )
        if not server_url_fits(server_url):
            errors["base"] = "server_url_too_long"
        return self.async_show_form(
            step_id="flash",
            data_schema=self.add_suggested_values_to_schema(
                FLASH_SCHEMA,
                user_input
                or {
                    CONF_NVS_OFFSET: DEFAULT_NVS_OFFSET,
                    CONF_NVS_SIZE: DEFAULT_NVS_SIZE,
                },
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_revoke_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the device's certificate and revoke it once the user confirms."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        placeholders = self._device_placeholders()
        key_id = placeholders["key_id"]
        if user_input is not None:
            try:
                await runtime.async_revoke_certificates(key_id)
            except ServiceValidationError:  # revoked meanwhile, or expired
                return self.async_abort(
                    reason="no_certificate", description_placeholders=placeholders
                )
            return self.async_abort(
                reason="certificate_revoked", description_placeholders=placeholders
            )
        if (current := runtime.current_certificate(key_id)) is None:
            return self.async_abort(
                reason="no_certificate", description_placeholders=placeholders
            )
        return self.async_show_form(
            step_id="revoke_certificate",
            data_schema=vol.Schema({}),
            description_placeholders=placeholders
            | {
                "serial": current.serial_hex,
                "expires": current.not_after.date().isoformat(),
            },
        )

    def _device_placeholders(self) -> dict[str, str]:
        subentry = self._get_reconfigure_subentry()
        return {"name": subentry.title, "key_id": subentry.data[CONF_KEY_ID]}


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    """Where the device's NVS partitions are, as its partition table says."""

    nvs_offset: int
    nvs_size: int
    keys_offset: int | None


def _partition_layout(
    user_input: dict[str, Any],
) -> tuple[PartitionLayout | None, dict[str, str]]:
    """Return the partition layout the user entered, or the errors by field."""
    offset = parse_flash_number(user_input[CONF_NVS_OFFSET])
    size = parse_flash_number(user_input[CONF_NVS_SIZE])
    keys_text = user_input.get(CONF_NVS_KEYS_OFFSET, "").strip()
    keys_offset = parse_flash_number(keys_text) if keys_text else None
    errors: dict[str, str] = {}
    if offset is None or not is_valid_flash_offset(offset):
        errors[CONF_NVS_OFFSET] = "invalid_flash_offset"
    if size is None or not is_valid_nvs_size(size):
        errors[CONF_NVS_SIZE] = "invalid_nvs_size"
    if keys_text and (keys_offset is None or not is_valid_flash_offset(keys_offset)):
        errors[CONF_NVS_KEYS_OFFSET] = "invalid_flash_offset"
    if offset is None or size is None or errors:
        return None, errors
    if keys_offset is not None and offset - FLASH_SECTOR < keys_offset < offset + size:
        return None, {CONF_NVS_KEYS_OFFSET: "nvs_keys_overlap"}
    return PartitionLayout(offset, size, keys_offset), {}


def _flash_placeholders(
    material: DeviceKeyMaterial,
    layout: PartitionLayout,
    links: dict[ProvisioningFile, str],
) -> dict[str, str]:
    """Return what the flash_ready message shows, safe to render as Markdown."""
    key_id = material.key_id
    keys_offset = layout.keys_offset
    return {
        "secret_key": _literal(material.secret_key),
        "nvs_offset": f"{layout.nvs_offset:#x}",
        "nvs_size": f"{layout.nvs_size:#x}",
        "keys_offset": UNKNOWN_KEYS_OFFSET
        if keys_offset is None
        else f"{keys_offset:#x}",
        "minutes": str(int(LINK_LIFETIME.total_seconds() // 60)),
        **{f"{kind}_file": kind.filename(key_id) for kind in ProvisioningFile},
        **{
            f"{kind}_link": _download_link(links[kind], kind.filename(key_id))
            for kind in ProvisioningFile
        },
    }


def _literal(text: str) -> str:
    """Return text as inline code that Markdown shows exactly as it is.

    A secret key may hold any printable character, Markdown's own included, so each
    one that is not a letter or digit becomes an HTML character reference.
    """
    escaped = "".join(
        c if c.isascii() and c.isalnum() else f"&#{ord(c)};" for c in text
    )
    return f"<code>{escaped}</code>"


def _download_link(path: str, filename: str) -> str:
    """Return a link the frontend lets the browser follow (it opens its own tab)."""
    return f'<a href="{html.escape(path)}" target="_blank">{html.escape(filename)}</a>'
