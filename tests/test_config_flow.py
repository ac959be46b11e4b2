"""Tests for the Providore hub flow and its settings (devices: test_device_flow.py)."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.providore.const import (
    CONF_ANSWER_PROVIDORE_LOCAL,
    CONF_CERTIFICATE_VALIDITY,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_NOTIFY_MQTT,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_BROADCAST,
    CONF_NOTIFY_UDP_PORT,
    CONF_ONLINE_INTERVAL,
    CONF_UPDATE_TIMEOUT,
    DEFAULT_CERTIFICATE_VALIDITY,
    DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_MAX_REQUEST_LIFETIME,
    DEFAULT_ONLINE_INTERVAL,
    DEFAULT_UPDATE_TIMEOUT,
    DOMAIN,
)


def _suggested_values(schema: vol.Schema) -> dict[str, Any]:
    """Return the suggested value of every field that has one."""
    return {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


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


@pytest.mark.parametrize("step", ["upload_firmware", "import_ca"])
async def test_options_that_need_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry, step: str
) -> None:
    await hass.config_entries.async_unload(init_integration.entry_id)
    result = await hass.config_entries.options.async_init(init_integration.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"
