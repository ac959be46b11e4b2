"""Tests for the Providore config flow, options flow and device subentry flow."""

from __future__ import annotations

import re
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.providore.certificates import IssuedCertificate
from custom_components.providore.const import (
    CONF_ANSWER_PROVIDORE_LOCAL,
    CONF_CERTIFICATE_USAGE,
    CONF_CERTIFICATE_VALIDITY,
    CONF_CONFIG,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_NOTIFY_MQTT,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_BROADCAST,
    CONF_NOTIFY_UDP_PORT,
    CONF_ONLINE_INTERVAL,
    CONF_ROTATE_KEY,
    CONF_SECRET_KEY,
    CONF_UPDATE_TIMEOUT,
    DEFAULT_CERTIFICATE_VALIDITY,
    DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_MAX_REQUEST_LIFETIME,
    DEFAULT_ONLINE_INTERVAL,
    DEFAULT_UPDATE_TIMEOUT,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)

from .conftest import DEVICE_NAME, FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .pki import ec_key, make_csr

SECRETS_STORE = f"{DOMAIN}.secrets"
DOCUMENTS_STORE = f"{DOMAIN}.documents"
NEW_SECRET = "Ab1Cd2Ef3Gh4Ij5K"  # 16 characters, the shortest valid key
GENERATED_KEY_ID = re.compile(r"[0-9a-f]{8}")
GENERATED_SECRET = re.compile(r"[A-Za-z0-9]{32}")
CERTIFICATE_STATUS = "sensor.garden_sensor_certificate"


def _suggested_values(schema: vol.Schema) -> dict[str, Any]:
    """Return the suggested value of every field that has one."""
    return {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def _device_subentry(entry: MockConfigEntry, key_id: str) -> ConfigSubentry:
    """Return the device subentry with this key ID."""
    matches = [
        subentry
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_TYPE_DEVICE
        and subentry.unique_id == key_id
    ]
    assert len(matches) == 1
    return matches[0]


async def _stored_secrets(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> dict[str, str]:
    """Return what the private secret store holds on (mock) disk."""
    await hass.async_block_till_done()
    return dict(hass_storage[SECRETS_STORE]["data"])


# The hub.


async def test_user_flow(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] is None
    assert _suggested_values(result["data_schema"]) == {
        CONF_MAX_CLOCK_SKEW: DEFAULT_MAX_CLOCK_SKEW,
        CONF_MAX_REQUEST_LIFETIME: DEFAULT_MAX_REQUEST_LIFETIME,
        CONF_ONLINE_INTERVAL: DEFAULT_ONLINE_INTERVAL,
        CONF_UPDATE_TIMEOUT: DEFAULT_UPDATE_TIMEOUT,
        CONF_CERTIFICATE_VALIDITY: DEFAULT_CERTIFICATE_VALIDITY,
    }

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_MAX_CLOCK_SKEW: 120.0,
            CONF_MAX_REQUEST_LIFETIME: 1800.0,
            CONF_ONLINE_INTERVAL: 300.0,
            CONF_UPDATE_TIMEOUT: 900.0,
            CONF_CERTIFICATE_VALIDITY: 90.0,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Providore"
    assert result["data"] == {}
    assert result["options"] == {
        CONF_MAX_CLOCK_SKEW: 120,
        CONF_MAX_REQUEST_LIFETIME: 1800,
        CONF_ONLINE_INTERVAL: 300,
        CONF_UPDATE_TIMEOUT: 900,
        CONF_CERTIFICATE_VALIDITY: 90,
    }
    assert all(type(value) is int for value in result["options"].values())
    # Plain string keys: the options are stored as JSON.
    assert all(type(key) is str for key in result["options"])
    entry = result["result"]
    assert entry.unique_id == DOMAIN
    assert dict(entry.options) == result["options"]
    assert entry.subentries == {}
    assert entry.state is ConfigEntryState.LOADED
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_user_flow_single_instance(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    mock_config_entry.add_to_hass(hass)

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )

    # The manifest's single_config_entry: Home Assistant refuses before the flow starts.
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "single_instance_allowed"
    assert hass.config_entries.async_entries(DOMAIN) == [mock_config_entry]


async def test_user_flow_aborts_when_configured_during_flow(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM

    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_MAX_CLOCK_SKEW: 300.0,
            CONF_MAX_REQUEST_LIFETIME: 900.0,
            CONF_ONLINE_INTERVAL: 600.0,
            CONF_UPDATE_TIMEOUT: 600.0,
            CONF_CERTIFICATE_VALIDITY: 365.0,
        },
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert hass.config_entries.async_entries(DOMAIN) == [mock_config_entry]


# The hub's options.


async def _open_settings(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """Open the options menu and choose the settings form."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "init"
    assert result["menu_options"] == [
        "settings",
        "upload_firmware",
        "firmware_builds",
        "start_rollout",
        "manage_rollout",
        "import_ca",
        "server_certificate",
    ]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "settings"
    return result


async def test_options_flow_shows_current_values(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        options={CONF_MAX_CLOCK_SKEW: 30, CONF_ONLINE_INTERVAL: 120},
    )
    entry.add_to_hass(hass)

    result = await _open_settings(hass, entry)

    # Current values win; a setting the entry lacks falls back to its default.
    assert _suggested_values(result["data_schema"]) == {
        CONF_MAX_CLOCK_SKEW: 30,
        CONF_MAX_REQUEST_LIFETIME: DEFAULT_MAX_REQUEST_LIFETIME,
        CONF_ONLINE_INTERVAL: 120,
        CONF_UPDATE_TIMEOUT: DEFAULT_UPDATE_TIMEOUT,
        CONF_CERTIFICATE_VALIDITY: DEFAULT_CERTIFICATE_VALIDITY,
        # Push notices and the providore.local name are off until turned on.
        CONF_NOTIFY_MQTT: False,
        CONF_NOTIFY_UDP: False,
        CONF_NOTIFY_UDP_PORT: 4870,
        CONF_NOTIFY_UDP_BROADCAST: False,
        CONF_ANSWER_PROVIDORE_LOCAL: False,
    }


async def test_options_flow_saves(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    entry = init_integration
    result = await _open_settings(hass, entry)
    assert result["type"] is FlowResultType.FORM

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_MAX_CLOCK_SKEW: 60.0,
            CONF_MAX_REQUEST_LIFETIME: 3600.0,
            CONF_ONLINE_INTERVAL: 1200.0,
            CONF_UPDATE_TIMEOUT: 300.0,
            CONF_CERTIFICATE_VALIDITY: 30.0,
            CONF_NOTIFY_MQTT: True,
            CONF_NOTIFY_UDP: False,
            CONF_NOTIFY_UDP_PORT: 5000.0,
            CONF_NOTIFY_UDP_BROADCAST: False,
            CONF_ANSWER_PROVIDORE_LOCAL: True,
        },
    )
    await hass.async_block_till_done()

    expected = {
        CONF_MAX_CLOCK_SKEW: 60,
        CONF_MAX_REQUEST_LIFETIME: 3600,
        CONF_ONLINE_INTERVAL: 1200,
        CONF_UPDATE_TIMEOUT: 300,
        CONF_CERTIFICATE_VALIDITY: 30,
        CONF_NOTIFY_MQTT: True,
        CONF_NOTIFY_UDP: False,
        CONF_NOTIFY_UDP_PORT: 5000,
        CONF_NOTIFY_UDP_BROADCAST: False,
        CONF_ANSWER_PROVIDORE_LOCAL: True,
    }
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == expected
    assert dict(entry.options) == expected
    assert all(type(value) in (int, bool) for value in entry.options.values())
    assert type(entry.options[CONF_NOTIFY_UDP_PORT]) is int
    assert all(type(key) is str for key in entry.options)
    # The update listener reloaded the entry with the new settings.
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.settings.online_interval.total_seconds() == 1200
    assert entry.runtime_data.settings.max_clock_skew.total_seconds() == 60
    assert entry.runtime_data.settings.certificate_validity.days == 30
    assert entry.runtime_data.settings.notify_udp_port == 5000
    assert entry.runtime_data.settings.answer_providore_local


# Adding a device.


async def _start_add_device(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    assert _suggested_values(result["data_schema"]) == {}
    return result["flow_id"]


async def test_add_device_generates_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    flow_id = await _start_add_device(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_NAME: "Porch light"}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Porch light"
    key_id = result["data"][CONF_KEY_ID]
    assert GENERATED_KEY_ID.fullmatch(key_id)
    assert key_id != KEY_ID
    assert result["data"] == {
        CONF_KEY_ID: key_id,
        CONF_FIRMWARE_TYPE: "",
        CONF_CERTIFICATE_USAGE: "client",
    }
    assert result["unique_id"] == key_id
    assert result["description_placeholders"] == {
        "name": "Porch light",
        "key_id": key_id,
    }

    subentry = _device_subentry(entry, key_id)
    assert subentry.title == "Porch light"
    assert dict(subentry.data) == result["data"]
    assert CONF_SECRET_KEY not in subentry.data
    assert len(entry.subentries) == 2

    secrets = await _stored_secrets(hass, hass_storage)
    assert set(secrets) == {KEY_ID, key_id}
    assert secrets[KEY_ID] == SECRET_KEY
    assert GENERATED_SECRET.fullmatch(secrets[key_id])
    assert secrets[key_id] not in str(entry.as_dict())
    runtime = loaded_runtime(hass)
    assert runtime.secret(key_id) == secrets[key_id]

    # The update listener reloaded the hub, which now has the new device.
    assert entry.state is ConfigEntryState.LOADED
    assert key_id in entry.runtime_data.devices
    assert hass.states.get("sensor.porch_light_status") is not None
    entity = entity_registry.async_get("sensor.porch_light_status")
    assert entity is not None
    assert entity.config_subentry_id == subentry.subentry_id
    device = device_registry.async_get_device(identifiers={(DOMAIN, key_id)})
    assert device is not None
    assert device.name == "Porch light"
    assert device.serial_number == key_id


async def test_add_device_with_given_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    flow_id = await _start_add_device(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        flow_id,
        {
            CONF_NAME: "  Porch light \t",
            CONF_KEY_ID: "  Porch_Light-1 ",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_FIRMWARE_TYPE: " esp32c3-relay ",
            CONF_CERTIFICATE_USAGE: "both",
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Porch light"
    assert result["unique_id"] == "Porch_Light-1"
    assert result["data"] == {
        CONF_KEY_ID: "Porch_Light-1",
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "both",
    }
    assert result["description_placeholders"] == {
        "name": "Porch light",
        "key_id": "Porch_Light-1",
    }
    subentry = _device_subentry(entry, "Porch_Light-1")
    assert subentry.title == "Porch light"
    assert dict(subentry.data) == result["data"]
    assert (await _stored_secrets(hass, hass_storage))["Porch_Light-1"] == NEW_SECRET
    assert hass.states.get("sensor.porch_light_status") is not None


async def test_add_device_regenerates_colliding_key_id(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    flow_id = await _start_add_device(hass, entry)

    with patch(
        "custom_components.providore.config_flow.generate_key_id",
        side_effect=[KEY_ID, "0badc0de"],
    ) as mock_generate:
        result = await hass.config_entries.subentries.async_configure(
            flow_id, {CONF_NAME: "Porch light"}
        )
    await hass.async_block_till_done()

    assert mock_generate.call_count == 2
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_KEY_ID] == "0badc0de"
    assert result["unique_id"] == "0badc0de"
    # The existing device keeps its key.
    assert _device_subentry(entry, KEY_ID).title == DEVICE_NAME
    secrets = await _stored_secrets(hass, hass_storage)
    assert secrets[KEY_ID] == SECRET_KEY
    assert GENERATED_SECRET.fullmatch(secrets["0badc0de"])


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_KEY_ID: "a" * 33}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: "porch light"}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: "porchü"}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: "a/b"}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: KEY_ID}, {CONF_KEY_ID: "key_id_in_use"}),
        ({CONF_KEY_ID: f" {KEY_ID} "}, {CONF_KEY_ID: "key_id_in_use"}),
        ({CONF_SECRET_KEY: "a" * 15}, {CONF_SECRET_KEY: "invalid_secret_key"}),
        ({CONF_SECRET_KEY: "a" * 33}, {CONF_SECRET_KEY: "invalid_secret_key"}),
        (
            {CONF_SECRET_KEY: "Zq3v9XkP2mRt7Lw Y4nHc8JdF6sGb1Ta"},
            {CONF_SECRET_KEY: "invalid_secret_key"},
        ),
        (
            {CONF_SECRET_KEY: "Zq3v9XkP2mRt7LwéY4nHc8JdF6sGb1Ta"},
            {CONF_SECRET_KEY: "invalid_secret_key"},
        ),
        ({CONF_NAME: ""}, {CONF_NAME: "invalid_name"}),
        ({CONF_NAME: "   "}, {CONF_NAME: "invalid_name"}),
        (
            {CONF_NAME: " ", CONF_KEY_ID: "a/b", CONF_SECRET_KEY: "short"},
            {
                CONF_NAME: "invalid_name",
                CONF_KEY_ID: "invalid_key_id",
                CONF_SECRET_KEY: "invalid_secret_key",
            },
        ),
    ],
)
async def test_add_device_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    user_input: dict[str, str],
    errors: dict[str, str],
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    flow_id = await _start_add_device(hass, entry)
    user_input = {
        CONF_NAME: "Porch light",
        CONF_KEY_ID: "porch",
        CONF_SECRET_KEY: NEW_SECRET,
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
    } | user_input

    result = await hass.config_entries.subentries.async_configure(flow_id, user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == errors
    # The form comes back with what was typed, except the secret.
    suggested = _suggested_values(result["data_schema"])
    assert CONF_SECRET_KEY not in suggested
    assert suggested == {
        key: value for key, value in user_input.items() if key != CONF_SECRET_KEY
    } | {CONF_CERTIFICATE_USAGE: "client"}
    # Nothing was added or stored.
    assert len(entry.subentries) == 1
    assert set(await _stored_secrets(hass, hass_storage)) == {KEY_ID}

    result = await hass.config_entries.subentries.async_configure(
        flow_id,
        {
            CONF_NAME: "Porch light",
            CONF_KEY_ID: "porch",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_FIRMWARE_TYPE: "esp32c3-relay",
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        CONF_KEY_ID: "porch",
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "client",
    }
    assert _device_subentry(entry, "porch").title == "Porch light"
    assert (await _stored_secrets(hass, hass_storage))["porch"] == NEW_SECRET
    assert entry.state is ConfigEntryState.LOADED


async def test_add_device_error_without_secret(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    entry = init_integration
    flow_id = await _start_add_device(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_NAME: "", CONF_FIRMWARE_TYPE: "esp32c3-relay"}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_NAME: "invalid_name"}
    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: "",
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "client",
    }
    assert len(entry.subentries) == 1


# Reconfiguring a device.


async def _open_reconfigure_menu(
    hass: HomeAssistant, entry: MockConfigEntry
) -> dict[str, Any]:
    """Press Configure on the device's row: its menu opens."""
    subentry = _device_subentry(entry, KEY_ID)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "reconfigure"
    assert result["menu_options"] == ["settings", "revoke_certificate"]
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": DEVICE_NAME,
    }
    return result


async def _start_reconfigure(
    hass: HomeAssistant, entry: MockConfigEntry
) -> dict[str, Any]:
    """Open the device's settings form from its Reconfigure menu."""
    result = await _open_reconfigure_menu(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "settings"
    assert result["errors"] == {}
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": DEVICE_NAME,
    }
    return result


async def test_reconfigure_form_suggests_current_values(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _start_reconfigure(hass, init_integration)

    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: DEVICE_NAME,
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE: "client",
    }


async def test_reconfigure_form_suggests_default_document(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 60})
    await runtime.async_set_config(KEY_ID, {"interval": 5}, "1.2.0")

    result = await _start_reconfigure(hass, init_integration)

    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: DEVICE_NAME,
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE: "client",
        CONF_CONFIG: {"interval": 60},
    }


async def test_reconfigure_without_firmware_type(
    hass: HomeAssistant, stored_secrets: dict[str, str]
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        subentries_data=[
            ConfigSubentryData(
                data={CONF_KEY_ID: KEY_ID},
                subentry_type=SUBENTRY_TYPE_DEVICE,
                title=DEVICE_NAME,
                unique_id=KEY_ID,
            )
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    result = await _start_reconfigure(hass, entry)
    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: DEVICE_NAME,
        CONF_FIRMWARE_TYPE: "",
        CONF_CERTIFICATE_USAGE: "client",
    }

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: DEVICE_NAME, CONF_ROTATE_KEY: False}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(_device_subentry(entry, KEY_ID).data) == {
        CONF_KEY_ID: KEY_ID,
        CONF_FIRMWARE_TYPE: "",
        CONF_CERTIFICATE_USAGE: "client",
    }


async def test_reconfigure_rename(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.name == DEVICE_NAME
    assert device.model == FIRMWARE_TYPE
    result = await _start_reconfigure(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "  Shed sensor ",
            CONF_FIRMWARE_TYPE: " esp32c6-sensor ",
            CONF_CERTIFICATE_USAGE: "server",
            CONF_ROTATE_KEY: False,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert result["description_placeholders"] == {"key_id": KEY_ID}
    subentry = _device_subentry(entry, KEY_ID)
    assert subentry.title == "Shed sensor"
    assert dict(subentry.data) == {
        CONF_KEY_ID: KEY_ID,
        CONF_FIRMWARE_TYPE: "esp32c6-sensor",
        CONF_CERTIFICATE_USAGE: "server",
    }
    # The key and documents are untouched.
    assert (await _stored_secrets(hass, hass_storage)) == {KEY_ID: SECRET_KEY}
    runtime = loaded_runtime(hass)
    assert runtime.documents(KEY_ID) == {}
    # The reload renamed the device.
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.devices[KEY_ID].name == "Shed sensor"
    assert entry.runtime_data.devices[KEY_ID].certificate_usage == "server"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.name == "Shed sensor"
    assert device.model == "esp32c6-sensor"


async def test_reconfigure_sets_document(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 5}, "1.2.0")
    result = await _start_reconfigure(hass, entry)
    document = {"interval": 60, "ssid": "garden", "sensors": ["temp", "rh"]}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: DEVICE_NAME,
            CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
            CONF_CONFIG: document,
            CONF_ROTATE_KEY: False,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert runtime.documents(KEY_ID) == {
        "default": document,
        "versions": {"1.2.0": {"interval": 5}},
    }
    assert runtime.config_document(KEY_ID, None) == document
    assert runtime.config_document(KEY_ID, "1.3.0") == document
    assert hass_storage[DOCUMENTS_STORE]["data"][KEY_ID]["default"] == document
    subentry = _device_subentry(entry, KEY_ID)
    assert subentry.title == DEVICE_NAME
    assert (await _stored_secrets(hass, hass_storage)) == {KEY_ID: SECRET_KEY}

    # The next reconfigure offers the new document.
    result = await _start_reconfigure(hass, entry)
    assert _suggested_values(result["data_schema"])[CONF_CONFIG] == document


@pytest.mark.parametrize("document", [["interval", 60], "interval: 60", 60, True])
async def test_reconfigure_invalid_document(
    hass: HomeAssistant, init_integration: MockConfigEntry, document: Any
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _start_reconfigure(hass, entry)
    user_input = {
        CONF_NAME: "Shed sensor",
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CONFIG: document,
        CONF_ROTATE_KEY: True,
    }

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], user_input
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "settings"
    assert result["errors"] == {CONF_CONFIG: "invalid_config"}
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": DEVICE_NAME,
    }
    assert _suggested_values(result["data_schema"]) == user_input
    # Nothing changed: no document, no new key, no rename.
    assert runtime.documents(KEY_ID) == {}
    assert runtime.secret(KEY_ID) == SECRET_KEY
    assert _device_subentry(entry, KEY_ID).title == DEVICE_NAME

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Shed sensor",
            CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
            CONF_CONFIG: {"interval": 60},
            CONF_ROTATE_KEY: False,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert runtime.documents(KEY_ID) == {"default": {"interval": 60}}
    assert _device_subentry(entry, KEY_ID).title == "Shed sensor"


async def test_reconfigure_blank_name(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _start_reconfigure(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "   ",
            CONF_FIRMWARE_TYPE: "esp32c6-sensor",
            CONF_CONFIG: {"interval": 60},
            CONF_ROTATE_KEY: True,
        },
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_NAME: "invalid_name"}
    assert runtime.documents(KEY_ID) == {}
    assert runtime.secret(KEY_ID) == SECRET_KEY
    subentry = _device_subentry(entry, KEY_ID)
    assert subentry.title == DEVICE_NAME
    assert subentry.data[CONF_FIRMWARE_TYPE] == FIRMWARE_TYPE

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_NAME: "Shed sensor", CONF_ROTATE_KEY: False},
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert _device_subentry(entry, KEY_ID).title == "Shed sensor"


async def test_reconfigure_rotate_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _start_reconfigure(hass, entry)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: DEVICE_NAME,
            CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
            CONF_ROTATE_KEY: True,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "key_rotated"
    assert result["description_placeholders"] == {"key_id": KEY_ID}
    new_secret = runtime.secret(KEY_ID)
    assert new_secret is not None
    assert new_secret != SECRET_KEY
    assert GENERATED_SECRET.fullmatch(new_secret)
    assert hass_storage[SECRETS_STORE]["data"] == {KEY_ID: new_secret}
    # The key ID, the name and the documents stay.
    subentry = _device_subentry(entry, KEY_ID)
    assert subentry.title == DEVICE_NAME
    assert dict(subentry.data) == {
        CONF_KEY_ID: KEY_ID,
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE: "client",
    }
    assert new_secret not in str(entry.as_dict())
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.secret(KEY_ID) == new_secret


@pytest.mark.parametrize("step", ["upload_firmware", "import_ca"])
async def test_options_steps_abort_while_not_loaded(
    hass: HomeAssistant, init_integration: MockConfigEntry, step: str
) -> None:
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert await hass.config_entries.async_unload(init_integration.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_device_flows_abort_while_not_loaded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    entry = init_integration
    assert await hass.config_entries.async_unload(entry.entry_id)

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["reason"] == "not_loaded"
    # Reconfiguring opens its menu: test_reconfigure_steps_need_a_loaded_hub.


# Revoking a device's certificate from its Reconfigure menu.


async def _issue_certificate(hass: HomeAssistant) -> IssuedCertificate:
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    issued = await loaded_runtime(hass).async_issue_certificate(KEY_ID, csr)
    await hass.async_block_till_done()
    return issued


async def _choose_revoke(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await _open_reconfigure_menu(hass, entry)
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "revoke_certificate"}
    )


async def test_revoke_certificate_asks_first(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    issued = await _issue_certificate(hass)
    result = await _choose_revoke(hass, init_integration)

    # Nothing is revoked until the user confirms.
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "revoke_certificate"
    assert result["description_placeholders"] == {
        "name": DEVICE_NAME,
        "key_id": KEY_ID,
        "serial": issued.serial_hex,
        "expires": issued.not_after.date().isoformat(),
    }
    assert loaded_runtime(hass).certificate_status(KEY_ID) == "valid"
    assert hass.states.get(CERTIFICATE_STATUS).state == "valid"

    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "certificate_revoked"
    assert result["description_placeholders"] == {
        "name": DEVICE_NAME,
        "key_id": KEY_ID,
    }
    assert loaded_runtime(hass).current_certificate(KEY_ID) is None
    assert hass.states.get(CERTIFICATE_STATUS).state == "revoked"
    # The device and its settings are untouched.
    assert _device_subentry(init_integration, KEY_ID).title == DEVICE_NAME
    assert loaded_runtime(hass).secret(KEY_ID) == SECRET_KEY


async def test_revoke_certificate_without_one(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _choose_revoke(hass, init_integration)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_certificate"
    assert result["description_placeholders"] == {
        "name": DEVICE_NAME,
        "key_id": KEY_ID,
    }


async def test_revoke_certificate_revoked_meanwhile(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await _issue_certificate(hass)
    result = await _choose_revoke(hass, init_integration)
    assert result["step_id"] == "revoke_certificate"
    # Revoked by the action while the confirmation was open.
    await hass.services.async_call(
        DOMAIN, "revoke_certificate", {CONF_KEY_ID: KEY_ID}, blocking=True
    )

    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_certificate"


async def test_reconfigure_steps_need_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    for step in ("settings", "revoke_certificate"):
        result = await _open_reconfigure_menu(hass, init_integration)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": step}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "not_loaded"
