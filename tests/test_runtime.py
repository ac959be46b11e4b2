"""One runtime per hub: devices follow their subentries in place, requests cost only what changed."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import CONF_NAME, EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.providore.const import (
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_ROTATE_KEY,
    CONF_SECRET_KEY,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.protocol import is_valid_secret_key

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime
from .device_calls import record_contact

# These tests look at diagnostic entities a new device has disabled.
pytestmark = pytest.mark.usefixtures("entity_registry_enabled_by_default")

CONNECTIVITY = "binary_sensor.garden_sensor_connectivity"
LAST_SEEN = "sensor.garden_sensor_last_seen"
ADDRESS = "sensor.garden_sensor_address"


async def _add_device(
    hass: HomeAssistant, entry: MockConfigEntry, name: str, key_id: str
) -> None:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "existing_key"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: name,
            CONF_KEY_ID: key_id,
            CONF_SECRET_KEY: "AnotherDeviceSecretKey0123456789",
            CONF_FIRMWARE_TYPE: "esp32c3-relay",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


# --- devices follow their subentries in place --------------------------------------


async def test_adding_a_device_neither_reloads_nor_touches_the_others(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    before = hass.states.get(CONNECTIVITY)
    assert before is not None

    await _add_device(hass, init_integration, "Shed relay", "shed-relay")

    assert loaded_runtime(hass) is runtime
    assert "shed-relay" in runtime.devices
    assert hass.states.get("binary_sensor.shed_relay_connectivity") is not None
    assert hass.states.get("update.shed_relay_firmware") is not None
    # The other device's entities were not recreated or written again.
    after = hass.states.get(CONNECTIVITY)
    assert after is not None
    assert after.last_updated == before.last_updated
    assert after.context.id == before.context.id


async def test_reconfiguring_a_device_renames_it_in_place(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    runtime = loaded_runtime(hass)
    subentry = next(iter(init_integration.subentries.values()))
    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_TYPE_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Shed sensor",
            CONF_FIRMWARE_TYPE: "esp32-v2",
            CONF_ROTATE_KEY: False,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    assert loaded_runtime(hass) is runtime
    assert runtime.devices[KEY_ID].name == "Shed sensor"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert (device.name, device.model) == ("Shed sensor", "esp32-v2")


async def test_only_changed_subentries_are_read_again(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Adding a device leaves the others' profiles as they were; a title or data change is seen."""
    runtime = loaded_runtime(hass)
    before = runtime.devices[KEY_ID]
    await _add_device(hass, init_integration, "Porch light", "porch-light")
    assert runtime.devices[KEY_ID] is before

    subentry = next(
        sub
        for sub in init_integration.subentries.values()
        if sub.data[CONF_KEY_ID] == KEY_ID
    )
    hass.config_entries.async_update_subentry(
        init_integration, subentry, title="Shed sensor"
    )
    await hass.async_block_till_done()
    assert runtime.devices[KEY_ID].name == "Shed sensor"
    hass.config_entries.async_update_subentry(
        init_integration,
        subentry,
        data={**subentry.data, CONF_FIRMWARE_TYPE: "esp32-v2"},
    )
    await hass.async_block_till_done()
    assert runtime.devices[KEY_ID].firmware_type == "esp32-v2"
    assert runtime.devices[KEY_ID].name == "Shed sensor"


async def test_served_documents_are_encoded_once_and_follow_changes(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    assert runtime.config_body(KEY_ID, "1.0.0") is None
    await runtime.async_set_config(KEY_ID, {"interval": 60})
    body = runtime.config_body(KEY_ID, "1.0.0")
    assert body is not None
    assert json.loads(body) == {"interval": 60}
    # Encoded once: the next request gets the same bytes.
    assert runtime.config_body(KEY_ID, "1.0.0") is body

    await runtime.async_set_config(KEY_ID, {"interval": 5}, "2.0.0")
    assert json.loads(runtime.config_body(KEY_ID, "2.0.0") or b"") == {"interval": 5}
    assert json.loads(runtime.config_body(KEY_ID, "1.0.0") or b"") == {"interval": 60}
    await runtime.async_set_config(KEY_ID, {"interval": 30})
    assert json.loads(runtime.config_body(KEY_ID, "1.0.0") or b"") == {"interval": 30}

    subentry = next(iter(init_integration.subentries.values()))
    hass.config_entries.async_remove_subentry(init_integration, subentry.subentry_id)
    await hass.async_block_till_done()
    assert runtime.config_body(KEY_ID, "1.0.0") is None


async def test_removing_a_device_clears_everything_it_had(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
) -> None:
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 60})
    record_contact(hass)
    await runtime.async_set_auto_update(KEY_ID, True)
    freezer.tick(timedelta(seconds=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    for store in ("secrets", "documents", "device_state", "firmware_updates"):
        assert KEY_ID in hass_storage[f"{DOMAIN}.{store}"]["data"]

    subentry_id = next(iter(init_integration.subentries))
    hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()

    assert loaded_runtime(hass) is runtime
    for store in ("secrets", "documents", "device_state", "firmware_updates"):
        assert KEY_ID not in hass_storage[f"{DOMAIN}.{store}"]["data"]
    assert not runtime.is_online(KEY_ID)


async def test_data_of_devices_removed_while_stopped_is_dropped_at_start(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A secret without a device (the flow was interrupted) does not linger."""
    hass_storage[f"{DOMAIN}.secrets"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.secrets",
        "data": {KEY_ID: SECRET_KEY, "0rphan": "OrphanedSecretKey0123456789abcd"},
    }
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass_storage[f"{DOMAIN}.secrets"]["data"] == {KEY_ID: SECRET_KEY}


async def test_new_settings_reload_the_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    hass.config_entries.async_update_entry(
        init_integration, options={**init_integration.options, "online_interval": 120}
    )
    await hass.async_block_till_done()
    assert loaded_runtime(hass) is not runtime
    assert loaded_runtime(hass).settings.online_interval == timedelta(seconds=120)


# --- per request, only what changed ---------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_a_repeated_request_writes_no_entity(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    record_contact(hass)
    await hass.async_block_till_done()
    events = async_capture_events(hass, EVENT_STATE_CHANGED)

    freezer.tick(timedelta(seconds=5))
    record_contact(hass)
    await hass.async_block_till_done()
    assert events == []

    # Only what changed is written: a new address.
    freezer.tick(timedelta(seconds=5))
    record_contact(hass, address="192.0.2.8")
    await hass.async_block_till_done()
    assert [event.data["entity_id"] for event in events] == [ADDRESS]


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_last_seen_is_written_at_most_once_a_minute(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to("2026-11-28T12:00:00+00:00")
    record_contact(hass)
    await hass.async_block_till_done()
    assert hass.states.get(LAST_SEEN).state == "2026-11-28T12:00:00+00:00"

    freezer.tick(timedelta(seconds=59))
    record_contact(hass)
    await hass.async_block_till_done()
    assert hass.states.get(LAST_SEEN).state == "2026-11-28T12:00:00+00:00"

    freezer.tick(timedelta(seconds=1))
    record_contact(hass)
    await hass.async_block_till_done()
    assert hass.states.get(LAST_SEEN).state == "2026-11-28T12:01:00+00:00"


async def test_only_the_requesting_device_state_is_serialised(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await _add_device(hass, init_integration, "Shed relay", "shed-relay")
    data = loaded_runtime(hass)._data
    data.state("shed-relay").address = "192.0.2.50"
    data.state_changed("shed-relay")
    other = data._stored_states["shed-relay"]

    record_contact(hass, address="192.0.2.9")
    assert data._stored_states["shed-relay"] is other
    assert data._stored_states[KEY_ID]["address"] == "192.0.2.9"


async def test_a_device_stays_online_while_it_calls(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The offline timer is set again only when it fires, and only while needed."""
    events = async_capture_events(hass, EVENT_STATE_CHANGED)
    record_contact(hass)
    await hass.async_block_till_done()
    for _ in range(30):
        freezer.tick(timedelta(seconds=60))
        async_fire_time_changed(hass)
        record_contact(hass)
        await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == "on"
    assert [e.data["entity_id"] for e in events].count(CONNECTIVITY) == 1

    freezer.tick(timedelta(seconds=601))
    # The timer that fires first finds a later call and is set again for a time
    # already past; in the test, firing timers a second time runs that one too.
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == "off"


# --- bulk enrolment ---------------------------------------------------------------------


async def _import(hass: HomeAssistant, config_dir: Path, text: str) -> Any:
    (config_dir / "devices.csv").write_text(text)
    return await hass.services.async_call(
        DOMAIN,
        "import_devices",
        {"path": "devices.csv"},
        blocking=True,
        return_response=True,
    )


async def test_import_devices_from_a_csv(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    runtime = loaded_runtime(hass)
    response = await _import(
        hass,
        config_dir,
        "name,key_id,secret_key,firmware_type\n"
        "Hall light,hall-light,HallLightSecretKey0123456789abcd,esp32-light\n"
        "Porch light,,,esp32-light\n",
    )
    await hass.async_block_till_done()

    rows = response["devices"]
    assert [(row["line"], row["name"]) for row in rows] == [
        (2, "Hall light"),
        (3, "Porch light"),
    ]
    assert rows[0]["secret_key_generated"] is False
    assert rows[1]["secret_key_generated"] is True
    assert "HallLightSecretKey0123456789abcd" not in str(response)
    porch = rows[1]["key_id"]
    assert runtime.secret("hall-light") == "HallLightSecretKey0123456789abcd"
    assert is_valid_secret_key(runtime.secret(porch) or "")
    assert runtime.devices[porch].firmware_type == "esp32-light"
    assert hass.states.get("update.porch_light_firmware") is not None
    assert loaded_runtime(hass) is runtime


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("name,key_id\nGood,good-one\n,bad-name\n", "import_invalid_name", "3"),
        ("name,key_id\nA,a\nB,a\n", "import_key_id_in_use", "3"),
        (f"name,key_id\nA,{KEY_ID}\n", "import_key_id_in_use", "2"),
        ("name,key_id\nA,bad id\n", "import_invalid_key_id", "2"),
        ("name,secret_key\nA,short\n", "import_invalid_secret_key", "2"),
        ("name,firmware_type\nA,../etc\n", "import_invalid_firmware_type", "2"),
        ("name,colour\nA,red\n", "import_unknown_column", "1"),
        ("key_id\na\n", "import_missing_name_column", "1"),
        ("name\nA,extra\n", "import_extra_values", "2"),
        ("name\n", "import_no_devices", "-"),
    ],
)
async def test_a_bad_row_adds_nothing(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    hass_storage: dict[str, Any],
    text: str,
    reason: str,
    line: str,
) -> None:
    secrets_before = dict(hass_storage[f"{DOMAIN}.secrets"]["data"])
    with pytest.raises(ServiceValidationError) as err:
        await _import(hass, config_dir, text)
    assert err.value.translation_key == reason
    assert (err.value.translation_placeholders or {})["line"] == line
    await hass.async_block_till_done()
    assert list(loaded_runtime(hass).devices) == [KEY_ID]
    assert len(init_integration.subentries) == 1
    assert hass_storage[f"{DOMAIN}.secrets"]["data"] == secrets_before


async def test_import_refuses_private_and_unreadable_files(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "import_devices",
            {"path": ".storage/providore.secrets"},
            blocking=True,
        )
    assert err.value.translation_key == "path_private"
    (config_dir / "latin1.csv").write_bytes(b"name\nCaf\xe9\n")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "import_devices", {"path": "latin1.csv"}, blocking=True
        )
    assert err.value.translation_key == "import_unreadable_csv"
    (config_dir / "huge.csv").write_bytes(b"name\n" + b"x\n" * 600_000)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "import_devices", {"path": "huge.csv"}, blocking=True
        )
    assert err.value.translation_key == "import_too_large"
