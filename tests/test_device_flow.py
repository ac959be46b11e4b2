"""The device subentry flow: Add device (new or existing key) and Configure (settings, flash)."""

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
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.network import NoURLAvailableError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.providore.certificates import IssuedCertificate
from custom_components.providore.const import (
    CONF_CERTIFICATE_USAGE,
    CONF_CONFIG,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_ROTATE_KEY,
    CONF_SECRET_KEY,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.device_flow import KEPT_SECRET
from custom_components.providore.provisioning import MAX_SERVER_URL_BYTES

from .conftest import DEVICE_NAME, FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .pki import ec_key, make_csr

SECRETS_STORE = f"{DOMAIN}.secrets"
DOCUMENTS_STORE = f"{DOMAIN}.documents"
NEW_SECRET = "Ab1Cd2Ef3Gh4Ij5K"  # 16 characters, the shortest valid key
OTHER_SECRET = "Zz9Yy8Xx7Ww6Vv5Uu4"
GENERATED_KEY_ID = re.compile(r"[0-9a-f]{8}")
GENERATED_SECRET = re.compile(r"[A-Za-z0-9]{32}")
INTERNAL_URL = "http://homeassistant.local:8123"
GENERATE = "custom_components.providore.device_flow.generate_secret_key"


def _long_host(length: int) -> str:
    """Return a host name of `length` characters, in labels DNS allows."""
    return (("x" * 39 + ".") * 4)[: length - 1] + "x"


def _suggested_values(schema: vol.Schema) -> dict[str, Any]:
    """Return the suggested value of every field that has one."""
    return {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def _fields(schema: vol.Schema) -> list[str]:
    return [key.schema for key in schema.schema]


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


# Add device: the first step asks which key.


async def _start_add_device(
    hass: HomeAssistant, entry: MockConfigEntry, path: str
) -> dict[str, Any]:
    """Open Add device and choose a path: new_key or existing_key."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["new_key", "existing_key"]
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": path}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == path
    assert result["errors"] == {}
    return result


async def test_add_device_needs_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await hass.config_entries.async_unload(init_integration.entry_id)

    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_TYPE_DEVICE),
        context={"source": SOURCE_USER},
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


@pytest.mark.parametrize("path", ["new_key", "existing_key"])
async def test_add_device_when_the_hub_unloads_meanwhile(
    hass: HomeAssistant, init_integration: MockConfigEntry, path: str
) -> None:
    result = await _start_add_device(hass, init_integration, path)
    await hass.config_entries.async_unload(init_integration.entry_id)
    user_input = {CONF_NAME: "Porch light", CONF_KEY_ID: "porch"}
    if path == "existing_key":
        user_input[CONF_SECRET_KEY] = NEW_SECRET

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], user_input
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


# Add device with a new key.


async def test_new_key_form_has_no_secret(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _start_add_device(hass, init_integration, "new_key")

    assert _fields(result["data_schema"]) == [
        CONF_NAME,
        CONF_KEY_ID,
        CONF_FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE,
    ]
    assert _suggested_values(result["data_schema"]) == {}


async def test_new_key_generates_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    result = await _start_add_device(hass, entry, "new_key")

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Porch light", CONF_CERTIFICATE_USAGE: "client"}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Porch light"
    assert result["description"] == "default"
    key_id = result["data"][CONF_KEY_ID]
    assert GENERATED_KEY_ID.fullmatch(key_id)
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
    assert len(entry.subentries) == 2

    secrets = await _stored_secrets(hass, hass_storage)
    assert set(secrets) == {KEY_ID, key_id}
    assert secrets[KEY_ID] == SECRET_KEY
    assert GENERATED_SECRET.fullmatch(secrets[key_id])
    assert secrets[key_id] not in str(entry.as_dict())
    assert secrets[key_id] not in str(result)
    assert loaded_runtime(hass).secret(key_id) == secrets[key_id]

    # The hub follows the new device in place.
    assert entry.state is ConfigEntryState.LOADED
    assert key_id in entry.runtime_data.devices
    entity = entity_registry.async_get("sensor.porch_light_status")
    assert entity is not None
    assert entity.config_subentry_id == subentry.subentry_id
    device = device_registry.async_get_device(identifiers={(DOMAIN, key_id)})
    assert device is not None
    assert device.name == "Porch light"
    assert device.serial_number == key_id


async def test_new_key_with_a_chosen_key_id(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    result = await _start_add_device(hass, init_integration, "new_key")

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "  Porch light \t",
            CONF_KEY_ID: "  Porch_Light-1 ",
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
    secrets = await _stored_secrets(hass, hass_storage)
    assert GENERATED_SECRET.fullmatch(secrets["Porch_Light-1"])


async def test_new_key_regenerates_a_colliding_key_id(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    result = await _start_add_device(hass, entry, "new_key")

    with patch(
        "custom_components.providore.device_flow.generate_key_id",
        side_effect=[KEY_ID, "0badc0de"],
    ) as mock_generate:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {CONF_NAME: "Porch light", CONF_CERTIFICATE_USAGE: "client"},
        )
    await hass.async_block_till_done()

    assert mock_generate.call_count == 2
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_KEY_ID] == "0badc0de"
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
        ({CONF_NAME: ""}, {CONF_NAME: "invalid_name"}),
        ({CONF_NAME: "   "}, {CONF_NAME: "invalid_name"}),
        (
            {CONF_NAME: " ", CONF_KEY_ID: "a/b"},
            {CONF_NAME: "invalid_name", CONF_KEY_ID: "invalid_key_id"},
        ),
    ],
)
async def test_new_key_errors_keep_what_was_typed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    user_input: dict[str, str],
    errors: dict[str, str],
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    result = await _start_add_device(hass, entry, "new_key")
    user_input = {
        CONF_NAME: "Porch light",
        CONF_KEY_ID: "porch",
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "server",
    } | user_input

    with patch(GENERATE) as generate:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], user_input
        )

    # No key is generated for a device that is not added.
    generate.assert_not_called()
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "new_key"
    assert result["errors"] == errors
    assert _suggested_values(result["data_schema"]) == user_input
    assert len(entry.subentries) == 1
    assert set(await _stored_secrets(hass, hass_storage)) == {KEY_ID}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], user_input | {CONF_NAME: "Porch light", CONF_KEY_ID: "porch"}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        CONF_KEY_ID: "porch",
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "server",
    }
    assert GENERATED_SECRET.fullmatch(
        (await _stored_secrets(hass, hass_storage))["porch"]
    )


# Add device with the key it already holds.


async def test_existing_key_form(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _start_add_device(hass, init_integration, "existing_key")

    schema = result["data_schema"]
    assert _fields(schema) == [
        CONF_NAME,
        CONF_KEY_ID,
        CONF_SECRET_KEY,
        CONF_FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE,
    ]
    required = {key.schema for key in schema.schema if isinstance(key, vol.Required)}
    assert {CONF_NAME, CONF_KEY_ID, CONF_SECRET_KEY} <= required
    assert _suggested_values(schema) == {}


async def test_existing_key_adds_the_device_with_that_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    result = await _start_add_device(hass, entry, "existing_key")

    with patch(GENERATE) as generate:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                CONF_NAME: " Porch light ",
                CONF_KEY_ID: " Porch_Light-1 ",
                CONF_SECRET_KEY: NEW_SECRET,
                CONF_FIRMWARE_TYPE: " esp32c3-relay ",
                CONF_CERTIFICATE_USAGE: "both",
            },
        )
    await hass.async_block_till_done()

    generate.assert_not_called()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["description"] == "existing_key"
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
    assert NEW_SECRET not in str(result)
    assert (await _stored_secrets(hass, hass_storage))["Porch_Light-1"] == NEW_SECRET
    assert NEW_SECRET not in str(entry.as_dict())
    assert hass.states.get("sensor.porch_light_status") is not None


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_KEY_ID: "porch light"}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: ""}, {CONF_KEY_ID: "invalid_key_id"}),
        ({CONF_KEY_ID: KEY_ID}, {CONF_KEY_ID: "key_id_in_use"}),
        ({CONF_NAME: " "}, {CONF_NAME: "invalid_name"}),
        (
            {CONF_NAME: "", CONF_KEY_ID: "a/b"},
            {CONF_NAME: "invalid_name", CONF_KEY_ID: "invalid_key_id"},
        ),
    ],
)
async def test_existing_key_keeps_the_secret_across_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    user_input: dict[str, str],
    errors: dict[str, str],
    hass_storage: dict[str, Any],
) -> None:
    """A migrating user fixes the key ID; the secret typed first is the one saved."""
    entry = init_integration
    result = await _start_add_device(hass, entry, "existing_key")
    user_input = {
        CONF_NAME: "Porch light",
        CONF_KEY_ID: "porch",
        CONF_SECRET_KEY: NEW_SECRET,
        CONF_FIRMWARE_TYPE: "esp32c3-relay",
        CONF_CERTIFICATE_USAGE: "server",
    } | user_input

    with patch(GENERATE) as generate:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], user_input
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "existing_key"
        assert result["errors"] == errors
        # Every value comes back; the secret stays on the server and shows as kept.
        assert _suggested_values(result["data_schema"]) == user_input | {
            CONF_SECRET_KEY: KEPT_SECRET
        }
        assert NEW_SECRET not in str(result)
        assert len(entry.subentries) == 1
        assert set(await _stored_secrets(hass, hass_storage)) == {KEY_ID}

        # Submitted as it came back, with the error fixed.
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            _suggested_values(result["data_schema"])
            | {CONF_NAME: "Porch light", CONF_KEY_ID: "porch"},
        )
        await hass.async_block_till_done()

    generate.assert_not_called()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_KEY_ID] == "porch"
    assert result["data"][CONF_CERTIFICATE_USAGE] == "server"
    assert (await _stored_secrets(hass, hass_storage))["porch"] == NEW_SECRET


async def test_existing_key_typed_again_replaces_the_kept_one(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    result = await _start_add_device(hass, init_integration, "existing_key")
    typed = {CONF_NAME: "Porch light", CONF_CERTIFICATE_USAGE: "client"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        typed | {CONF_KEY_ID: KEY_ID, CONF_SECRET_KEY: NEW_SECRET},
    )
    assert result["errors"] == {CONF_KEY_ID: "key_id_in_use"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        typed | {CONF_KEY_ID: "porch", CONF_SECRET_KEY: OTHER_SECRET},
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (await _stored_secrets(hass, hass_storage))["porch"] == OTHER_SECRET


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 15,
        "a" * 33,
        "Zq3v9XkP2mRt7Lw Y4nHc8JdF6sGb1Ta",
        "Zq3v9XkP2mRt7LwéY4nHc8JdF6sGb1Ta",
        "",
        KEPT_SECRET,
    ],
)
async def test_existing_key_invalid_secret(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    secret: str,
    hass_storage: dict[str, Any],
) -> None:
    """An invalid secret is neither kept nor sent back; the marker alone is no secret."""
    result = await _start_add_device(hass, init_integration, "existing_key")
    typed = {
        CONF_NAME: "Porch light",
        CONF_KEY_ID: "porch",
        CONF_CERTIFICATE_USAGE: "client",
    }

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], typed | {CONF_SECRET_KEY: secret}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SECRET_KEY: "invalid_secret_key"}
    assert _suggested_values(result["data_schema"]) == typed
    assert set(await _stored_secrets(hass, hass_storage)) == {KEY_ID}


async def test_existing_key_an_invalid_secret_drops_the_kept_one(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    result = await _start_add_device(hass, init_integration, "existing_key")
    typed = {CONF_NAME: "Porch light", CONF_CERTIFICATE_USAGE: "client"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], typed | {CONF_KEY_ID: "a/b", CONF_SECRET_KEY: NEW_SECRET}
    )
    assert _suggested_values(result["data_schema"])[CONF_SECRET_KEY] == KEPT_SECRET

    # The user changed the secret to something invalid: the old one is not used.
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], typed | {CONF_KEY_ID: "porch", CONF_SECRET_KEY: "short"}
    )
    assert result["errors"] == {CONF_SECRET_KEY: "invalid_secret_key"}
    assert CONF_SECRET_KEY not in _suggested_values(result["data_schema"])

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], typed | {CONF_KEY_ID: "porch", CONF_SECRET_KEY: KEPT_SECRET}
    )
    assert result["errors"] == {CONF_SECRET_KEY: "invalid_secret_key"}
    assert set(await _stored_secrets(hass, hass_storage)) == {KEY_ID}


# Configure: a menu of the device's settings and Flash the device.


async def _start_reconfigure(
    hass: HomeAssistant, entry: MockConfigEntry, step: str | None = None
) -> dict[str, Any]:
    """Open a device's Configure menu, and with `step` choose from it."""
    subentry = _device_subentry(entry, KEY_ID)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "reconfigure"
    assert result["menu_options"] == ["settings", "flash", "revoke_certificate"]
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": subentry.title,
    }
    if step is None:
        return result
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


async def _open_settings(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await _start_reconfigure(hass, entry, "settings")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "settings"
    assert result["errors"] == {}
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": DEVICE_NAME,
    }
    return result


async def test_configure_needs_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await hass.config_entries.async_unload(init_integration.entry_id)
    subentry = _device_subentry(init_integration, KEY_ID)

    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_TYPE_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


@pytest.mark.parametrize("step", ["settings", "flash", "revoke_certificate"])
async def test_configure_when_the_hub_unloads_meanwhile(
    hass: HomeAssistant, init_integration: MockConfigEntry, step: str
) -> None:
    result = await _start_reconfigure(hass, init_integration)
    await hass.config_entries.async_unload(init_integration.entry_id)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": step}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_settings_suggest_current_values(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _open_settings(hass, init_integration)

    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: DEVICE_NAME,
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE: "client",
    }


async def test_settings_suggest_default_document(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 60})
    await runtime.async_set_config(KEY_ID, {"interval": 5}, "1.2.0")

    result = await _open_settings(hass, init_integration)

    assert _suggested_values(result["data_schema"]) == {
        CONF_NAME: DEVICE_NAME,
        CONF_FIRMWARE_TYPE: FIRMWARE_TYPE,
        CONF_CERTIFICATE_USAGE: "client",
        CONF_CONFIG: {"interval": 60},
    }


async def test_settings_without_firmware_type(
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

    result = await _open_settings(hass, entry)
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


async def test_settings_rename(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    result = await _open_settings(hass, entry)

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
    assert result["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": "Shed sensor",
    }
    subentry = _device_subentry(entry, KEY_ID)
    assert subentry.title == "Shed sensor"
    assert dict(subentry.data) == {
        CONF_KEY_ID: KEY_ID,
        CONF_FIRMWARE_TYPE: "esp32c6-sensor",
        CONF_CERTIFICATE_USAGE: "server",
    }
    assert (await _stored_secrets(hass, hass_storage)) == {KEY_ID: SECRET_KEY}
    assert loaded_runtime(hass).documents(KEY_ID) == {}
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.devices[KEY_ID].name == "Shed sensor"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.name == "Shed sensor"
    assert device.model == "esp32c6-sensor"


async def test_settings_set_document(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 5}, "1.2.0")
    result = await _open_settings(hass, entry)
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
    assert hass_storage[DOCUMENTS_STORE]["data"][KEY_ID]["default"] == document
    assert (await _stored_secrets(hass, hass_storage)) == {KEY_ID: SECRET_KEY}

    result = await _open_settings(hass, entry)
    assert _suggested_values(result["data_schema"])[CONF_CONFIG] == document


@pytest.mark.parametrize("document", [["interval", 60], "interval: 60", 60, True])
async def test_settings_invalid_document(
    hass: HomeAssistant, init_integration: MockConfigEntry, document: Any
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _open_settings(hass, entry)
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
    assert runtime.documents(KEY_ID) == {"default": {"interval": 60}}
    assert _device_subentry(entry, KEY_ID).title == "Shed sensor"


async def test_settings_blank_name(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _open_settings(hass, entry)

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
    assert _device_subentry(entry, KEY_ID).data[CONF_FIRMWARE_TYPE] == FIRMWARE_TYPE


async def test_settings_rotate_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    runtime = loaded_runtime(hass)
    result = await _open_settings(hass, entry)

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
    assert result["description_placeholders"] == {"key_id": KEY_ID, "name": DEVICE_NAME}
    new_secret = runtime.secret(KEY_ID)
    assert new_secret is not None
    assert new_secret != SECRET_KEY
    assert GENERATED_SECRET.fullmatch(new_secret)
    assert hass_storage[SECRETS_STORE]["data"] == {KEY_ID: new_secret}
    assert new_secret not in str(entry.as_dict())
    assert new_secret not in str(result)


# Flash the device: the form (partitions); the key and downloads are in test_flashing.py.


async def _open_flash(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await _start_reconfigure(hass, entry, "flash")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "flash"
    return result


@pytest.fixture
async def internal_url(hass: HomeAssistant) -> str:
    """Give Home Assistant the URL devices call."""
    await async_process_ha_core_config(hass, {"internal_url": INTERNAL_URL})
    return INTERNAL_URL


async def test_flash_form(
    hass: HomeAssistant, init_integration: MockConfigEntry, internal_url: str
) -> None:
    result = await _open_flash(hass, init_integration)

    assert result["errors"] == {}
    assert _fields(result["data_schema"]) == [
        "nvs_offset",
        "nvs_size",
        "nvs_keys_offset",
    ]
    assert _suggested_values(result["data_schema"]) == {
        "nvs_offset": "0x9000",
        "nvs_size": "0x6000",
    }
    assert result["description_placeholders"] == {
        "name": DEVICE_NAME,
        "key_id": KEY_ID,
        "server_url": f"{INTERNAL_URL}/api/providore",
        "max_length": str(MAX_SERVER_URL_BYTES),
    }
    # The secret is shown only once asked for.
    assert SECRET_KEY not in str(result)


async def test_flash_warns_of_a_url_too_long_for_the_firmware(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    host = _long_host(MAX_SERVER_URL_BYTES - len("http://:8123/api/providore") + 1)
    await async_process_ha_core_config(hass, {"internal_url": f"http://{host}:8123"})

    result = await _open_flash(hass, init_integration)

    assert result["errors"] == {"base": "server_url_too_long"}
    assert (
        len(result["description_placeholders"]["server_url"])
        == MAX_SERVER_URL_BYTES + 1
    )

    # A warning: the key can still be flashed.
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"nvs_offset": "0x9000", "nvs_size": "0x6000"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "flash_ready"


async def test_flash_url_that_just_fits(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    host = _long_host(MAX_SERVER_URL_BYTES - len("http://:8123/api/providore"))
    await async_process_ha_core_config(hass, {"internal_url": f"http://{host}:8123"})

    result = await _open_flash(hass, init_integration)

    assert result["errors"] == {}


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({"nvs_offset": "nvs"}, {"nvs_offset": "invalid_flash_offset"}),
        ({"nvs_offset": "0x9100"}, {"nvs_offset": "invalid_flash_offset"}),
        ({"nvs_offset": "0x10000000"}, {"nvs_offset": "invalid_flash_offset"}),
        ({"nvs_size": "0x2000"}, {"nvs_size": "invalid_nvs_size"}),
        ({"nvs_size": "0x6100"}, {"nvs_size": "invalid_nvs_size"}),
        ({"nvs_size": "2M"}, {"nvs_size": "invalid_nvs_size"}),
        ({"nvs_size": ""}, {"nvs_size": "invalid_nvs_size"}),
        ({"nvs_keys_offset": "0x3_1"}, {"nvs_keys_offset": "invalid_flash_offset"}),
        ({"nvs_keys_offset": "keys"}, {"nvs_keys_offset": "invalid_flash_offset"}),
        ({"nvs_keys_offset": "0x9000"}, {"nvs_keys_offset": "nvs_keys_overlap"}),
        ({"nvs_keys_offset": "0xe000"}, {"nvs_keys_offset": "nvs_keys_overlap"}),
        ({"nvs_keys_offset": "0x8800"}, {"nvs_keys_offset": "invalid_flash_offset"}),
        (
            {"nvs_offset": "-1", "nvs_size": "0x1000", "nvs_keys_offset": "x"},
            {
                "nvs_offset": "invalid_flash_offset",
                "nvs_size": "invalid_nvs_size",
                "nvs_keys_offset": "invalid_flash_offset",
            },
        ),
    ],
)
async def test_flash_form_errors_keep_what_was_typed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    internal_url: str,
    user_input: dict[str, str],
    errors: dict[str, str],
) -> None:
    result = await _open_flash(hass, init_integration)
    user_input = {"nvs_offset": "0x9000", "nvs_size": "0x6000"} | user_input

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], user_input
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "flash"
    assert result["errors"] == errors
    assert _suggested_values(result["data_schema"]) == user_input
    assert SECRET_KEY not in str(result)


@pytest.mark.parametrize("keys_offset", ["0x8000", "0xf000", "0x310000"])
async def test_flash_keys_partition_beside_the_nvs_partition(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    internal_url: str,
    keys_offset: str,
) -> None:
    result = await _open_flash(hass, init_integration)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"nvs_offset": "0x9000", "nvs_size": "0x6000", "nvs_keys_offset": keys_offset},
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["description_placeholders"]["keys_offset"] == keys_offset


async def test_flash_without_a_secret(
    hass: HomeAssistant, entry_without_secret: MockConfigEntry, internal_url: str
) -> None:
    result = await _start_reconfigure(hass, entry_without_secret, "flash")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "missing_secret"
    assert result["description_placeholders"] == {"name": DEVICE_NAME, "key_id": KEY_ID}


async def test_flash_without_a_url(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with patch(
        "custom_components.providore.device_flow.get_url",
        side_effect=NoURLAvailableError,
    ):
        result = await _start_reconfigure(hass, init_integration, "flash")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_url"


# Revoke its certificate: asks first.

CERTIFICATE_STATUS = "sensor.garden_sensor_certificate"


async def _issue_certificate(hass: HomeAssistant) -> IssuedCertificate:
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    issued = await loaded_runtime(hass).async_issue_certificate(KEY_ID, csr)
    await hass.async_block_till_done()
    return issued


async def test_revoke_certificate_asks_first(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    issued = await _issue_certificate(hass)
    result = await _start_reconfigure(hass, init_integration, "revoke_certificate")

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
    result = await _start_reconfigure(hass, init_integration, "revoke_certificate")
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
    result = await _start_reconfigure(hass, init_integration, "revoke_certificate")
    assert result["step_id"] == "revoke_certificate"
    # Revoked by the action while the confirmation was open.
    await hass.services.async_call(
        DOMAIN, "revoke_certificate", {CONF_KEY_ID: KEY_ID}, blocking=True
    )

    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_certificate"
