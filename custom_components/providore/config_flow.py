"""Config flows: the hub entry, its settings, and one subentry per device."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from homeassistant.components.file_upload import process_uploaded_file
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.selector import (
    AreaSelector,
    AreaSelectorConfig,
    BooleanSelector,
    DeviceSelector,
    DeviceSelectorConfig,
    DurationSelector,
    EntityFilterSelectorConfig,
    FileSelector,
    FileSelectorConfig,
    LabelSelector,
    LabelSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from .certificate_authority import CAImportError
from .const import (
    API_BASE_PATH,
    CA_PATH,
    CONF_ANSWER_PROVIDORE_LOCAL,
    CONF_AREAS,
    CONF_BUILD,
    CONF_CA_CERTIFICATE,
    CONF_CA_PRIVATE_KEY,
    CONF_CERTIFICATE_VALIDITY,
    CONF_DEVICES,
    CONF_FIRMWARE_FILE,
    CONF_FIRMWARE_TYPE,
    CONF_HEALTHY_FOR,
    CONF_HOSTS,
    CONF_KEY_ID,
    CONF_LABELS,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_FAILED_PERCENT,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_NOTIFY_MQTT,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_BROADCAST,
    CONF_NOTIFY_UDP_PORT,
    CONF_ONLINE_INTERVAL,
    CONF_RELEASE_NOTES,
    CONF_RELEASE_URL,
    CONF_ROLLOUT,
    CONF_ROLLOUT_ACTION,
    CONF_UPDATE_TIMEOUT,
    CONF_VERSION,
    CONF_WAVES,
    CONF_WINDOW_END,
    CONF_WINDOW_START,
    DEFAULT_CERTIFICATE_VALIDITY,
    DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_MAX_REQUEST_LIFETIME,
    DEFAULT_ONLINE_INTERVAL,
    DEFAULT_UPDATE_TIMEOUT,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
    SUBENTRY_TYPE_ESPHOME_DEVICE,
)
from .device_flow import DeviceSubentryFlow
from .device_hello import HelloMalformed, hello_from_txt
from .esphome_flow import EsphomeDeviceSubentryFlow
from .firmware_catalog import Firmware, FirmwareError, is_valid_name
from .firmware_manager import BuildUsage
from .firmware_overview import (
    build_choice,
    names_text,
    size_text,
    table_rows,
    uploaded_text,
)
from .notice import DEFAULT_UDP_PORT
from .rollouts import (
    DEFAULT_HEALTHY_FOR,
    DEFAULT_MAX_FAILED_PERCENT,
    DEFAULT_WAVES,
    MAX_HEALTHY_FOR,
    RolloutError,
    RolloutRequest,
    Rollouts,
)
from .runtime import ProvidoreRuntime, async_get_loaded_runtime
from .server_certificate import InvalidHosts, parse_hosts

# The name Home Assistant announces itself under on the local network.
MDNS_HOST: Final = "homeassistant.local"


def _seconds(minimum: int, maximum: int, unit: str = "s") -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=maximum,
            step=1,
            mode=NumberSelectorMode.BOX,
            unit_of_measurement=unit,
        )
    )


SETTINGS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MAX_CLOCK_SKEW): _seconds(0, 3600),
        vol.Required(CONF_MAX_REQUEST_LIFETIME): _seconds(60, 86400),
        vol.Required(CONF_ONLINE_INTERVAL): _seconds(60, 86400),
        vol.Required(CONF_UPDATE_TIMEOUT): _seconds(60, 86400),
        vol.Required(CONF_CERTIFICATE_VALIDITY): _seconds(1, 3650, "d"),
    }
)
DEFAULT_SETTINGS = {
    CONF_MAX_CLOCK_SKEW: DEFAULT_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME: DEFAULT_MAX_REQUEST_LIFETIME,
    CONF_ONLINE_INTERVAL: DEFAULT_ONLINE_INTERVAL,
    CONF_UPDATE_TIMEOUT: DEFAULT_UPDATE_TIMEOUT,
    CONF_CERTIFICATE_VALIDITY: DEFAULT_CERTIFICATE_VALIDITY,
}
# The hub options that only the Settings step of the options flow offers.
DISCOVERY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NOTIFY_MQTT): BooleanSelector(),
        vol.Required(CONF_NOTIFY_UDP): BooleanSelector(),
        vol.Required(CONF_NOTIFY_UDP_PORT): NumberSelector(
            NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
        ),
        vol.Required(CONF_NOTIFY_UDP_BROADCAST): BooleanSelector(),
        vol.Required(CONF_ANSWER_PROVIDORE_LOCAL): BooleanSelector(),
    }
)
DEFAULT_DISCOVERY_SETTINGS = {
    CONF_NOTIFY_MQTT: False,
    CONF_NOTIFY_UDP: False,
    CONF_NOTIFY_UDP_PORT: DEFAULT_UDP_PORT,
    CONF_NOTIFY_UDP_BROADCAST: False,
    CONF_ANSWER_PROVIDORE_LOCAL: False,
}
OPTIONS_SETTINGS_SCHEMA = SETTINGS_SCHEMA.extend(DISCOVERY_SCHEMA.schema)
_MULTILINE = TextSelector(TextSelectorConfig(multiline=True))
IMPORT_CA_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CA_CERTIFICATE): _MULTILINE,
        vol.Required(CONF_CA_PRIVATE_KEY): _MULTILINE,
        vol.Optional(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)
# The form field each CA import error belongs to (others show on the whole form).
IMPORT_CA_ERROR_FIELDS = {
    "unreadable_certificate": CONF_CA_CERTIFICATE,
    "not_a_ca": CONF_CA_CERTIFICATE,
    "expired": CONF_CA_CERTIFICATE,
    "unreadable_key": CONF_CA_PRIVATE_KEY,
    "unsupported_key": CONF_CA_PRIVATE_KEY,
    "password_required": CONF_PASSWORD,
    "wrong_password": CONF_PASSWORD,
}

SERVER_CERTIFICATE_SCHEMA = vol.Schema(
    {vol.Required(CONF_HOSTS): TextSelector(TextSelectorConfig(multiple=True))}
)


def suggested_hosts(hass: HomeAssistant) -> list[str]:
    """Return the host of Home Assistant's local URL (when it has one), and its mDNS name."""
    try:
        url = get_url(hass, allow_cloud=False, allow_external=False)
    except NoURLAvailableError:
        return [MDNS_HOST]
    return list(dict.fromkeys([urlsplit(url).hostname or MDNS_HOST, MDNS_HOST]))


_TEXT = TextSelector()
# The form field each firmware error belongs to once the file was used (others: the file).
UPLOAD_ERROR_FIELDS = {"duplicate_firmware": CONF_VERSION}


START_ROLLOUT_DEFAULTS = {
    CONF_WAVES: DEFAULT_WAVES,
    CONF_HEALTHY_FOR: {
        "hours": DEFAULT_HEALTHY_FOR.seconds // 3600,
        "minutes": DEFAULT_HEALTHY_FOR.seconds // 60 % 60,
        "seconds": DEFAULT_HEALTHY_FOR.seconds % 60,
    },
    CONF_MAX_FAILED_PERCENT: DEFAULT_MAX_FAILED_PERCENT,
}
START_ROLLOUT_FIELDS = {
    # Only Providore's devices have a firmware update entity (the hub has none).
    vol.Optional(CONF_DEVICES): DeviceSelector(
        DeviceSelectorConfig(
            multiple=True,
            entity=EntityFilterSelectorConfig(integration=DOMAIN, domain="update"),
        )
    ),
    vol.Optional(CONF_AREAS): AreaSelector(AreaSelectorConfig(multiple=True)),
    vol.Optional(CONF_LABELS): LabelSelector(LabelSelectorConfig(multiple=True)),
    vol.Required(CONF_WAVES): _TEXT,
    vol.Required(CONF_HEALTHY_FOR): DurationSelector(),
    vol.Required(CONF_MAX_FAILED_PERCENT): NumberSelector(
        NumberSelectorConfig(
            min=0, max=100, step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="%"
        )
    ),
    vol.Optional(CONF_WINDOW_START): TimeSelector(),
    vol.Optional(CONF_WINDOW_END): TimeSelector(),
}
# Each action of the manage step, and the message that confirms it.
ROLLOUT_ACTIONS = {
    "pause": "rollout_paused",
    "resume": "rollout_resumed",
    "cancel": "rollout_cancelled",
}


def _settings(user_input: dict[str, Any]) -> dict[str, int]:
    """Return the settings as whole seconds (number selectors give floats)."""
    return {key: int(user_input[key]) for key in DEFAULT_SETTINGS}


def _discovery_settings(user_input: dict[str, Any]) -> dict[str, bool | int]:
    """Return the push and advertisement options (the port as a whole number)."""
    return {
        key: int(user_input[key]) if key == CONF_NOTIFY_UDP_PORT else user_input[key]
        for key in DEFAULT_DISCOVERY_SETTINGS
    }


class ProvidoreConfigFlow(ConfigFlow, domain=DOMAIN):
    """Create the one Providore hub."""

    VERSION = 1
    MINOR_VERSION = 2

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the hub settings, offering the defaults."""
        await self.async_set_unique_id(DOMAIN)
        self._abort_if_unique_id_configured()
        if user_input is not None:
            return self.async_create_entry(
                title="Providore", data={}, options=_settings(user_input)
            )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                SETTINGS_SCHEMA, DEFAULT_SETTINGS
            ),
        )

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """Offer to set Providore up: a device announced itself by zeroconf.

        This flow only runs while there is no hub. Once there is one, Home Assistant
        aborts every discovery flow of this `single_config_entry` integration before
        it starts, and a discovery flow could not add a device subentry anyway; the
        hub then finds devices with its own browser (`device_browser`) and offers
        them as repairs and in the Add device flow.
        """
        await self.async_set_unique_id(DOMAIN)
        self._abort_if_unique_id_configured()
        try:
            hello = hello_from_txt(discovery_info.properties)
        except HelloMalformed:
            return self.async_abort(reason="not_a_device")
        self.context["title_placeholders"] = {CONF_KEY_ID: hello.key_id}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set Providore up with the default settings once the user confirms."""
        if user_input is not None:
            return self.async_create_entry(
                title="Providore", data={}, options=DEFAULT_SETTINGS
            )
        return self.async_show_form(
            step_id="zeroconf_confirm",
            description_placeholders=self.context["title_placeholders"],
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Return the flow that changes the hub settings."""
        return ProvidoreOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Devices (Providore's and ESPHome's) are subentries of the hub."""
        return {
            SUBENTRY_TYPE_DEVICE: DeviceSubentryFlow,
            SUBENTRY_TYPE_ESPHOME_DEVICE: EsphomeDeviceSubentryFlow,
        }


class ProvidoreOptionsFlow(OptionsFlow):
    """Settings; upload, list, delete or roll out builds; the CA; HA's certificate."""

    _chosen_build: BuildUsage

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer what can be done."""
        return self.async_show_menu(
            step_id="init",
            menu_options=[
                "settings",
                "upload_firmware",
                "firmware_builds",
                "start_rollout",
                "manage_rollout",
                "import_ca",
                "server_certificate",
            ],
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the settings with their current values."""
        if user_input is not None:
            return self.async_create_entry(
                data=dict(self.config_entry.options)
                | _settings(user_input)
                | _discovery_settings(user_input)
            )
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(
                OPTIONS_SETTINGS_SCHEMA,
                DEFAULT_SETTINGS
                | DEFAULT_DISCOVERY_SETTINGS
                | dict(self.config_entry.options),
            ),
        )

    async def async_step_upload_firmware(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Take a firmware file from the browser into the catalog.

        Everything but the file is checked first, so that an error keeps the
        upload (adding it uses it up); each error shows under its field.
        """
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            errors = _upload_errors(runtime, user_input)
            if not errors:
                try:
                    build = await _async_add_uploaded_firmware(
                        self.hass, runtime, user_input
                    )
                except FirmwareError as err:
                    reason = err.translation_key or "firmware_unreadable"
                    errors[UPLOAD_ERROR_FIELDS.get(reason, CONF_FIRMWARE_FILE)] = reason
                    placeholders = err.translation_placeholders or {}
                    user_input = {
                        k: v for k, v in user_input.items() if k != CONF_FIRMWARE_FILE
                    }
                else:
                    # Like reconfigure_successful: an abort is how a flow that
                    # changes no option reports success.
                    return self.async_abort(
                        reason="firmware_uploaded",
                        description_placeholders={
                            CONF_FIRMWARE_TYPE: build.firmware_type,
                            CONF_VERSION: build.version,
                        },
                    )
        return self.async_show_form(
            step_id="upload_firmware",
            data_schema=self.add_suggested_values_to_schema(
                self._upload_schema(runtime), user_input or {}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_firmware_builds(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show every build and who runs or awaits it; choose one to delete."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        usage = {build_choice(entry.build): entry for entry in runtime.build_usage()}
        if not usage:
            return self.async_abort(reason="no_firmware_builds")
        errors: dict[str, str] = {}
        if user_input is not None:
            if (chosen := usage.get(user_input[CONF_BUILD])) is not None:
                self._chosen_build = chosen
                return await self.async_step_delete_build()
            errors[CONF_BUILD] = "build_not_found"  # deleted meanwhile
        return self.async_show_form(
            step_id="firmware_builds",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_BUILD): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(
                                    value=choice,
                                    label=f"{entry.build.firmware_type} "
                                    f"{entry.build.version}",
                                )
                                for choice, entry in usage.items()
                            ],
                            mode=SelectSelectorMode.DROPDOWN,
                        )
                    )
                }
            ),
            errors=errors,
            description_placeholders={"builds": table_rows(usage.values())},
        )

    async def async_step_delete_build(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say what deleting the chosen build does; delete it once the user confirms."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        chosen = self._chosen_build
        build = chosen.build
        placeholders = {
            CONF_FIRMWARE_TYPE: build.firmware_type,
            CONF_VERSION: build.version,
        }
        if user_input is not None:
            try:
                await runtime.async_delete_build(build.firmware_type, build.version)
            except FirmwareError:  # deleted meanwhile
                return self.async_abort(
                    reason="build_not_found", description_placeholders=placeholders
                )
            return self.async_abort(
                reason="firmware_deleted", description_placeholders=placeholders
            )
        return self.async_show_form(
            step_id="delete_build",
            data_schema=vol.Schema({}),
            description_placeholders=placeholders
            | {
                "size": size_text(build.size),
                "uploaded": uploaded_text(build),
                "running": names_text(chosen.running),
                "assigned": names_text(chosen.assigned),
            },
        )

    async def async_step_import_ca(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Replace Providore's CA with the user's own certificate and key."""
        errors: dict[str, str] = {}
        suggested: dict[str, Any] = {}
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if user_input is not None:
            try:
                await runtime.async_import_ca(
                    user_input[CONF_CA_CERTIFICATE],
                    user_input[CONF_CA_PRIVATE_KEY],
                    user_input.get(CONF_PASSWORD),
                )
            except CAImportError as err:
                errors[IMPORT_CA_ERROR_FIELDS.get(err.code, "base")] = err.code
                # Only the certificate goes back to the browser: it is public.
                suggested = {CONF_CA_CERTIFICATE: user_input[CONF_CA_CERTIFICATE]}
            else:
                return self.async_abort(reason="ca_imported")
        return self.async_show_form(
            step_id="import_ca",
            data_schema=self.add_suggested_values_to_schema(
                IMPORT_CA_SCHEMA, suggested
            ),
            errors=errors,
        )

    async def async_step_start_rollout(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose a build, its devices, waves, health gate and window; start."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        builds = {
            f"{build.firmware_type} {build.version}": build
            for firmware_type in runtime.firmware_types()
            for build in reversed(runtime.builds(firmware_type))
        }
        if not builds:
            return self.async_abort(reason="no_builds")
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                rollout = await runtime.rollouts.async_start_rollout(
                    _rollout_request(builds, user_input)
                )
            except RolloutError as err:
                errors[err.field] = err.translation_key or "unknown"
                placeholders = dict(err.translation_placeholders or {})
            else:
                return self.async_abort(
                    reason="rollout_started",
                    description_placeholders={
                        CONF_FIRMWARE_TYPE: rollout.firmware_type,
                        CONF_VERSION: rollout.version,
                        "devices": str(len(rollout.devices)),
                        "waves": str(len(rollout.waves)),
                    },
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_BUILD): SelectSelector(
                    SelectSelectorConfig(
                        options=list(builds), mode=SelectSelectorMode.DROPDOWN
                    )
                ),
                **START_ROLLOUT_FIELDS,
            }
        )
        return self.async_show_form(
            step_id="start_rollout",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or START_ROLLOUT_DEFAULTS
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_manage_rollout(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pause, resume or cancel a running rollout."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        rollouts = runtime.rollouts
        active = [
            firmware_type
            for firmware_type in rollouts.firmware_types()
            if rollouts.rollout(firmware_type).active
        ]
        if not active:
            return self.async_abort(reason="no_active_rollout")
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            firmware_type = user_input[CONF_ROLLOUT]
            action = user_input[CONF_ROLLOUT_ACTION]
            try:
                await _async_control(rollouts, firmware_type, action)
            except RolloutError as err:
                errors[CONF_ROLLOUT_ACTION] = err.translation_key or "unknown"
                placeholders = dict(err.translation_placeholders or {})
            else:
                return self.async_abort(
                    reason=ROLLOUT_ACTIONS[action],
                    description_placeholders={CONF_FIRMWARE_TYPE: firmware_type},
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_ROLLOUT): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(
                                value=firmware_type,
                                label=f"{firmware_type} "
                                f"{rollouts.rollout(firmware_type).version}",
                            )
                            for firmware_type in active
                        ],
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                vol.Required(CONF_ROLLOUT_ACTION): SelectSelector(
                    SelectSelectorConfig(
                        options=list(ROLLOUT_ACTIONS),
                        translation_key=CONF_ROLLOUT_ACTION,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="manage_rollout",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or {CONF_ROLLOUT: active[0]}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_server_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Issue Home Assistant's HTTPS certificate from Providore's CA."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        errors: dict[str, str] = {}
        placeholders = {"host": "", "error": ""}
        if user_input is not None:
            try:
                issued, certificate, key = await runtime.async_issue_server_certificate(
                    parse_hosts(user_input[CONF_HOSTS])
                )
            except InvalidHosts as err:
                errors[CONF_HOSTS] = "invalid_hosts"
                placeholders["host"] = err.host
            except OSError as err:
                errors["base"] = "server_certificate_unwritable"
                placeholders["error"] = err.strerror or str(err)
            else:
                return self.async_abort(
                    reason="server_certificate_issued",
                    description_placeholders={
                        "hosts": ", ".join(issued.hosts),
                        "expires": issued.not_after.date().isoformat(),
                        "certificate": str(certificate),
                        "key": str(key),
                        "ca_path": f"{API_BASE_PATH}{CA_PATH}",
                    },
                )
        return self.async_show_form(
            step_id="server_certificate",
            data_schema=self.add_suggested_values_to_schema(
                SERVER_CERTIFICATE_SCHEMA,
                user_input or {CONF_HOSTS: suggested_hosts(self.hass)},
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _upload_schema(self, runtime: ProvidoreRuntime) -> vol.Schema:
        """Offer the firmware types of the hub's devices and of the catalog."""
        types = {device.firmware_type for device in runtime.devices.values()}
        types.update(runtime.firmware_types())
        return vol.Schema(
            {
                vol.Required(CONF_FIRMWARE_FILE): FileSelector(
                    FileSelectorConfig(accept=".bin,application/octet-stream")
                ),
                vol.Required(CONF_FIRMWARE_TYPE): SelectSelector(
                    SelectSelectorConfig(
                        options=sorted(t for t in types if t),
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                vol.Required(CONF_VERSION): _TEXT,
                vol.Optional(CONF_RELEASE_NOTES): TextSelector(
                    TextSelectorConfig(multiline=True)
                ),
                vol.Optional(CONF_RELEASE_URL): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.URL)
                ),
            }
        )


def _upload_errors(
    runtime: ProvidoreRuntime, user_input: dict[str, Any]
) -> dict[str, str]:
    """Check an upload's fields, not its file; return the errors by field."""
    errors: dict[str, str] = {}
    firmware_type = user_input[CONF_FIRMWARE_TYPE].strip()
    version = user_input[CONF_VERSION].strip()
    if not is_valid_name(firmware_type):
        errors[CONF_FIRMWARE_TYPE] = "invalid_firmware_name"
    if not is_valid_name(version):
        errors[CONF_VERSION] = "invalid_firmware_name"
    elif any(build.version == version for build in runtime.builds(firmware_type)):
        errors[CONF_VERSION] = "duplicate_firmware"
    if url := user_input.get(CONF_RELEASE_URL):
        try:
            cv.url(url)
        except vol.Invalid:
            errors[CONF_RELEASE_URL] = "invalid_release_url"
    return errors


def _rollout_request(
    builds: dict[str, Firmware], user_input: dict[str, Any]
) -> RolloutRequest:
    """Read the start form into a rollout request."""
    if (build := builds.get(user_input[CONF_BUILD])) is None:
        raise RolloutError("rollout_unknown_build", CONF_BUILD)
    healthy_for = cv.time_period_dict(user_input[CONF_HEALTHY_FOR])
    if healthy_for > MAX_HEALTHY_FOR:
        raise RolloutError("rollout_healthy_for_too_long", CONF_HEALTHY_FOR)
    start, end = user_input.get(CONF_WINDOW_START), user_input.get(CONF_WINDOW_END)
    return RolloutRequest(
        firmware_type=build.firmware_type,
        version=build.version,
        device_ids=user_input.get(CONF_DEVICES, []),
        area_ids=user_input.get(CONF_AREAS, []),
        label_ids=user_input.get(CONF_LABELS, []),
        waves=user_input[CONF_WAVES],
        healthy_for=healthy_for,
        max_failed_percent=int(user_input[CONF_MAX_FAILED_PERCENT]),
        window_start=cv.time(start) if start else None,
        window_end=cv.time(end) if end else None,
    )


async def _async_control(rollouts: Rollouts, firmware_type: str, action: str) -> None:
    """Pause, resume or cancel the rollout of a firmware type."""
    if action == "pause":
        await rollouts.async_pause(firmware_type)
    elif action == "resume":
        await rollouts.async_resume(firmware_type)
    else:
        await rollouts.async_cancel(firmware_type)


async def _async_add_uploaded_firmware(
    hass: HomeAssistant, runtime: ProvidoreRuntime, user_input: dict[str, Any]
) -> Firmware:
    """Copy a file uploaded through the browser into the catalog.

    The upload's context manager deletes the temporary file on exit (blocking),
    so it is entered and left in the executor.
    """
    uploaded = process_uploaded_file(hass, user_input[CONF_FIRMWARE_FILE])
    try:
        path = await hass.async_add_executor_job(uploaded.__enter__)
    except ValueError as err:
        raise FirmwareError("firmware_unreadable", error=str(err)) from err
    try:
        return await runtime.async_add_build(
            user_input[CONF_FIRMWARE_TYPE].strip(),
            user_input[CONF_VERSION].strip(),
            path,
            user_input.get(CONF_RELEASE_NOTES),
            user_input.get(CONF_RELEASE_URL),
        )
    finally:
        await hass.async_add_executor_job(uploaded.__exit__, None, None, None)
