"""The ESPHome device subentry flow: add one, change it, give it firmware, show its YAML.

An ESPHome device is known by its MAC (offered from the ESPHome devices Home Assistant
already has), its chip family and its ESPHome project name. Its firmware type is made
of the project name and the chip family, so that devices of one project on one chip
share their builds, and a build is never offered to another chip.
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any, Final

from homeassistant.components.file_upload import process_uploaded_file
from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.selector import (
    FileSelector,
    FileSelectorConfig,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .const import (
    API_BASE_PATH,
    CA_PATH,
    CONF_CHIP_FAMILY,
    CONF_FIRMWARE_FILE,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAC,
    CONF_MANIFEST_FILE,
    CONF_PROJECT_NAME,
    CONF_RELEASE_NOTES,
    CONF_RELEASE_URL,
    CONF_VERSION,
    ESPHOME_DOMAIN,
    SUBENTRY_TYPE_ESPHOME_DEVICE,
)
from .esphome_image import ChipFamily
from .esphome_manifest import MAX_CI_MANIFEST_BYTES
from .esphome_tokens import generate_token
from .firmware_catalog import MAX_NAME_LENGTH, Firmware, FirmwareError, is_valid_name
from .runtime import ProvidoreRuntime, async_get_loaded_runtime, new_key_id

_MAC_RE: Final = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.ASCII)
# The firmware type adds "-" and the longest variant name (esp32c61) to the project name.
MAX_PROJECT_NAME_LENGTH: Final = (
    MAX_NAME_LENGTH - 1 - max(len(family.variant) for family in ChipFamily)
)

_TEXT = TextSelector()
_CHIP_FAMILY = SelectSelector(
    SelectSelectorConfig(
        options=[family.value for family in ChipFamily],
        mode=SelectSelectorMode.DROPDOWN,
    )
)
SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Required(CONF_CHIP_FAMILY): _CHIP_FAMILY,
        vol.Required(CONF_PROJECT_NAME): _TEXT,
    }
)
UPLOAD_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_FIRMWARE_FILE): FileSelector(
            FileSelectorConfig(accept=".bin,application/octet-stream")
        ),
        vol.Optional(CONF_MANIFEST_FILE): FileSelector(
            FileSelectorConfig(accept=".json,application/json")
        ),
        vol.Optional(CONF_VERSION): _TEXT,
        vol.Optional(CONF_RELEASE_NOTES): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Optional(CONF_RELEASE_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        ),
    }
)
RECONFIGURE_MENU: Final = [
    "show_yaml",
    "upload_firmware",
    "settings",
    "rotate_token",
    "revoke_token",
]


def esphome_firmware_type(project_name: str, chip_family: ChipFamily) -> str:
    """Return the firmware type of an ESPHome project's builds for one chip family."""
    return f"{project_name}-{chip_family.variant}"


def _is_valid_project_name(name: str) -> bool:
    """ESPHome's author.name, in the characters a firmware type may hold."""
    return (
        name.count(".") == 1
        and len(name) <= MAX_PROJECT_NAME_LENGTH
        and is_valid_name(name)
        and not name.endswith(".")
    )


def _mac(value: str) -> str | None:
    """Return a MAC as the device registry keeps it (lowercase, colons), else None."""
    mac = dr.format_mac(value.strip())
    return mac if _MAC_RE.fullmatch(mac) else None


def esphome_macs(hass: HomeAssistant) -> list[SelectOptionDict]:
    """Return the MAC of every device ESPHome's integration has, with its name."""
    registry = dr.async_get(hass)
    options: list[SelectOptionDict] = []
    for entry in hass.config_entries.async_entries(ESPHOME_DOMAIN):
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
            name = device.name_by_user or device.name or entry.title
            options.extend(
                SelectOptionDict(value=mac, label=f"{name} ({mac})")
                for kind, mac in sorted(device.connections)
                if kind == dr.CONNECTION_NETWORK_MAC
            )
    return options


class EsphomeDeviceSubentryFlow(ConfigSubentryFlow):
    """Add an ESPHome device, or change one, upload its firmware, show its YAML."""

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask which ESPHome device (by MAC), its name, chip family and project."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self._checked_settings(user_input, errors)
            mac = _mac(user_input[CONF_MAC])
            if mac is None:
                errors[CONF_MAC] = "invalid_mac"
            elif mac in self._macs_in_use():
                errors[CONF_MAC] = "mac_in_use"
            if not errors:
                key_id = new_key_id(self._get_entry())
                # Saved before the device exists: never a device without its token.
                await runtime.esphome.async_store_token(key_id, generate_token())
                return self.async_create_entry(
                    title=user_input[CONF_NAME].strip(),
                    data={CONF_KEY_ID: key_id, CONF_MAC: mac, **data},
                    unique_id=key_id,
                    description_placeholders={"name": user_input[CONF_NAME].strip()},
                )
        schema = SETTINGS_SCHEMA.extend(
            {
                vol.Required(CONF_MAC): SelectSelector(
                    SelectSelectorConfig(
                        options=esphome_macs(self.hass),
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Offer what can be done with the device."""
        if async_get_loaded_runtime(self.hass) is None:
            return self.async_abort(reason="not_loaded")
        return self.async_show_menu(
            step_id="reconfigure",
            menu_options=RECONFIGURE_MENU,
            description_placeholders=self._placeholders(),
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename the device, or correct its chip family or project."""
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self._checked_settings(user_input, errors)
            if not errors:
                self.hass.config_entries.async_update_subentry(
                    self._get_entry(),
                    subentry,
                    title=user_input[CONF_NAME].strip(),
                    data=subentry.data | data,
                )
                return self.async_abort(reason="reconfigure_successful")
        suggested = user_input or {CONF_NAME: subentry.title, **subentry.data}
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(SETTINGS_SCHEMA, suggested),
            errors=errors,
            description_placeholders=self._placeholders(),
        )

    async def async_step_upload_firmware(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Take a firmware.ota.bin (and a CI build's manifest.json) for the device."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        placeholders = self._placeholders()
        if user_input is not None:
            try:
                if url := user_input.get(CONF_RELEASE_URL):
                    cv.url(url)
                build = await _async_add_uploaded_build(
                    self.hass, runtime, self._key_id(), user_input
                )
            except vol.Invalid:
                errors[CONF_RELEASE_URL] = "invalid_release_url"
            except FirmwareError as err:
                errors["base"] = err.translation_key or "firmware_unreadable"
                placeholders |= err.translation_placeholders or {}
            else:
                return self.async_abort(
                    reason="firmware_uploaded",
                    description_placeholders=placeholders
                    | {CONF_VERSION: build.version},
                )
            user_input = {
                key: value
                for key, value in user_input.items()
                if key not in (CONF_FIRMWARE_FILE, CONF_MANIFEST_FILE)
            }
        return self.async_show_form(
            step_id="upload_firmware",
            data_schema=self.add_suggested_values_to_schema(
                UPLOAD_SCHEMA, user_input or {}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_show_yaml(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the YAML to paste into the device's configuration, and its secret line."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if user_input is not None:
            return self.async_abort(
                reason="yaml_shown", description_placeholders=self._placeholders()
            )
        try:
            snippet = runtime.esphome_snippet(self._key_id())
        except HomeAssistantError as err:
            return self.async_abort(
                reason=err.translation_key or "no_url",
                description_placeholders=self._placeholders(),
            )
        return self.async_show_form(
            step_id="show_yaml",
            # ESPHome's warnings, shown above the YAML (the form has nothing to fill in).
            errors={"base": snippet.warnings[0].value} if snippet.warnings else {},
            description_placeholders=self._placeholders()
            | {
                "yaml": snippet.yaml,
                "secrets": snippet.secrets,
                "ca_path": f"{API_BASE_PATH}{CA_PATH}",
            },
        )

    async def async_step_rotate_token(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Give the device a new token once the user confirms."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if user_input is not None:
            await runtime.esphome.async_rotate_token(self._key_id())
            return self.async_abort(
                reason="token_rotated", description_placeholders=self._placeholders()
            )
        return self.async_show_form(
            step_id="rotate_token", description_placeholders=self._placeholders()
        )

    async def async_step_revoke_token(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Take the device's token away once the user confirms."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if user_input is not None:
            await runtime.esphome.async_revoke_token(self._key_id())
            return self.async_abort(
                reason="token_revoked", description_placeholders=self._placeholders()
            )
        return self.async_show_form(
            step_id="revoke_token", description_placeholders=self._placeholders()
        )

    def _checked_settings(
        self, user_input: dict[str, Any], errors: dict[str, str]
    ) -> dict[str, str]:
        """Check the name, chip family and project; return them as subentry data."""
        if not user_input[CONF_NAME].strip():
            errors[CONF_NAME] = "invalid_name"
        chip_family = ChipFamily(user_input[CONF_CHIP_FAMILY])
        project_name = user_input[CONF_PROJECT_NAME].strip()
        if not _is_valid_project_name(project_name):
            errors[CONF_PROJECT_NAME] = "invalid_project_name"
        return {
            CONF_CHIP_FAMILY: chip_family.value,
            CONF_PROJECT_NAME: project_name,
            CONF_FIRMWARE_TYPE: esphome_firmware_type(project_name, chip_family),
        }

    def _macs_in_use(self) -> set[str]:
        return {
            subentry.data[CONF_MAC]
            for subentry in self._get_entry().subentries.values()
            if subentry.subentry_type == SUBENTRY_TYPE_ESPHOME_DEVICE
        }

    def _key_id(self) -> str:
        key_id: str = self._get_reconfigure_subentry().data[CONF_KEY_ID]
        return key_id

    def _placeholders(self) -> dict[str, str]:
        subentry = self._get_reconfigure_subentry()
        return {
            "name": subentry.title,
            CONF_KEY_ID: subentry.data[CONF_KEY_ID],
            CONF_MAC: subentry.data[CONF_MAC],
            CONF_FIRMWARE_TYPE: subentry.data[CONF_FIRMWARE_TYPE],
        }


async def _async_add_uploaded_build(
    hass: HomeAssistant,
    runtime: ProvidoreRuntime,
    key_id: str,
    user_input: dict[str, Any],
) -> Firmware:
    """Add the uploaded firmware (and read the uploaded CI manifest) for a device.

    An upload's context manager deletes its temporary file on exit (blocking), so it is
    entered and left in the executor.
    """
    ci_manifest = None
    if manifest_id := user_input.get(CONF_MANIFEST_FILE):
        ci_manifest = await hass.async_add_executor_job(
            _read_uploaded, hass, manifest_id
        )
    uploaded = process_uploaded_file(hass, user_input[CONF_FIRMWARE_FILE])
    try:
        path: Path = await hass.async_add_executor_job(uploaded.__enter__)
    except ValueError as err:
        raise FirmwareError("firmware_unreadable", error=str(err)) from err
    try:
        return await runtime.esphome.async_add_build(
            key_id,
            path,
            ci_manifest=ci_manifest,
            version=user_input.get(CONF_VERSION, "").strip() or None,
            release_notes=user_input.get(CONF_RELEASE_NOTES),
            release_url=user_input.get(CONF_RELEASE_URL),
        )
    finally:
        await hass.async_add_executor_job(uploaded.__exit__, None, None, None)


def _read_uploaded(hass: HomeAssistant, file_id: str) -> bytes:
    """Read an uploaded CI manifest, no more than one byte past its limit (blocking)."""
    try:
        with (
            process_uploaded_file(hass, file_id) as path,
            path.open("rb") as file,
        ):
            return file.read(MAX_CI_MANIFEST_BYTES + 1)
    except (ValueError, OSError) as err:
        raise FirmwareError("firmware_unreadable", error=str(err)) from err
