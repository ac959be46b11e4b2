"""Setup, unload, reload and removal of the hub entry."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
import stat
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import RELOAD_AFTER_UPDATE_DELAY, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.storage import STORAGE_DIR, Store
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.providore.const import DOMAIN
from custom_components.providore.device_data import DeviceData
from custom_components.providore.sensor import ProvidoreLastSeenSensor

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime

# The stores' real file writer, taken before the test harness replaces it for each test.
_WRITE_TO_DISK = Store._async_write_data


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    assert init_integration.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.garden_sensor_status") is not None

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()

    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("sensor.garden_sensor_status").state == "unavailable"


async def test_device_and_entities_belong_to_the_subentry(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    subentry_id = next(iter(init_integration.subentries))
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.name == "Garden sensor"
    assert device.model == "esp32s2-sensor"
    assert device.serial_number == KEY_ID
    assert device.config_entries_subentries == {
        init_integration.entry_id: {subentry_id}
    }
    entities = er.async_entries_for_device(
        entity_registry, device.id, include_disabled_entities=True
    )
    # Enabled: what a user looks at; the diagnostics a click away.
    assert sorted(e.unique_id for e in entities if not e.disabled_by) == [
        f"{KEY_ID}_automatic_updates",
        f"{KEY_ID}_certificate",
        f"{KEY_ID}_firmware",
        f"{KEY_ID}_status",
    ]
    assert sorted(entity.unique_id for entity in entities) == [
        f"{KEY_ID}_address",
        f"{KEY_ID}_automatic_updates",
        f"{KEY_ID}_certificate",
        f"{KEY_ID}_certificate_expires",
        f"{KEY_ID}_connectivity",
        f"{KEY_ID}_firmware",
        f"{KEY_ID}_firmware_version",
        f"{KEY_ID}_last_seen",
        f"{KEY_ID}_status",
    ]


async def test_a_disabled_entity_is_created_only_once_enabled(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """At a start Home Assistant would drop it at once; enabling it reloads the hub."""
    last_seen = entity_registry.async_get_entity_id(
        "sensor", DOMAIN, f"{KEY_ID}_last_seen"
    )
    assert last_seen is not None
    created: list[ProvidoreLastSeenSensor] = []
    create = ProvidoreLastSeenSensor.__init__

    def spy(entity: ProvidoreLastSeenSensor, *args: Any) -> None:
        created.append(entity)
        create(entity, *args)

    with patch.object(ProvidoreLastSeenSensor, "__init__", spy):
        assert await hass.config_entries.async_reload(init_integration.entry_id)
        await hass.async_block_till_done()
        assert created == []
        assert hass.states.get("sensor.garden_sensor_status") is not None

        entity_registry.async_update_entity(last_seen, disabled_by=None)
        freezer.tick(timedelta(seconds=RELOAD_AFTER_UPDATE_DELAY + 1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()

    assert len(created) == 1
    assert hass.states.get(last_seen) is not None
    # Disabled again, it is gone and stays gone after a reload.
    entity_registry.async_update_entity(
        last_seen, disabled_by=er.RegistryEntryDisabler.USER
    )
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(last_seen) is None


async def test_reload_keeps_one_set_of_entities(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    before = sorted(hass.states.async_entity_ids())
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert sorted(hass.states.async_entity_ids()) == before


async def test_removing_a_device_forgets_its_secret(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
) -> None:
    runtime = loaded_runtime(hass)
    assert runtime.secret(KEY_ID) == SECRET_KEY
    await runtime.async_set_config(KEY_ID, {"interval": 60})

    subentry_id = next(iter(init_integration.subentries))
    assert hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()

    assert runtime.secret(KEY_ID) is None
    assert runtime.config_document(KEY_ID, None) is None
    assert hass_storage[f"{DOMAIN}.secrets"]["data"] == {}
    assert hass_storage[f"{DOMAIN}.documents"]["data"] == {}
    # Removed in place: the hub was not reloaded.
    assert loaded_runtime(hass) is runtime
    assert device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)}) is None
    assert hass.states.get("sensor.garden_sensor_status") is None


async def test_removing_the_hub_deletes_its_stores(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, {"interval": 60})
    assert f"{DOMAIN}.secrets" in hass_storage
    assert f"{DOMAIN}.documents" in hass_storage

    assert await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()

    assert not any(key.startswith(f"{DOMAIN}.") for key in hass_storage)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_state_survives_a_restart(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_storage: dict[str, Any],
) -> None:
    hass_storage[f"{DOMAIN}.device_state"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.device_state",
        "data": {
            KEY_ID: {
                "last_seen": "2026-11-28T10:00:00+00:00",
                "address": "192.0.2.7",
                "firmware_version": "1.2.3",
            }
        },
    }
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    assert hass.states.get("sensor.garden_sensor_address").state == "192.0.2.7"
    assert hass.states.get("sensor.garden_sensor_firmware_version").state == "1.2.3"
    assert (
        hass.states.get("sensor.garden_sensor_last_seen").state
        == "2026-11-28T10:00:00+00:00"
    )


def _config_routes(hass: HomeAssistant) -> int:
    return sum(
        1
        for route in hass.http.app.router.routes()
        if route.resource is not None
        and route.resource.canonical == "/api/providore/config"
    )


async def test_views_are_registered_once(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    routes = _config_routes(hass)
    assert routes >= 1
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _config_routes(hass) == routes


async def test_secrets_are_written_for_the_owner_only(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    # Save through the stores' real file writer (the harness swaps in an in-memory
    # one), into a scratch config folder.
    with (
        patch.object(hass.config, "config_dir", str(tmp_path)),
        patch.object(Store, "_async_write_data", _WRITE_TO_DISK),
    ):
        data = DeviceData(hass)
        await data.async_set_secrets({KEY_ID: SECRET_KEY})
        await data.async_set_document(KEY_ID, {"mqtt": {"password": "hunter2"}})
        data.state("0badc0de").address = "192.0.2.7"
        await data._state_store.async_save({})

    storage = tmp_path / STORAGE_DIR
    secrets_path = storage / f"{DOMAIN}.secrets"
    documents_path = storage / f"{DOMAIN}.documents"
    assert json.loads(secrets_path.read_text())["data"] == {KEY_ID: SECRET_KEY}
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    # Configuration documents may hold credentials (an MQTT password): private too.
    assert stat.S_IMODE(documents_path.stat().st_mode) == 0o600
    # For contrast: an ordinary store is readable by others.
    state_path = storage / f"{DOMAIN}.device_state"
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o644


async def test_migration_removes_the_revoke_buttons(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    entity_registry: er.EntityRegistry,
) -> None:
    """Entries of Providore 1.1 had a Revoke certificate button per device."""
    entry = mock_config_entry
    entry.add_to_hass(hass)
    button = entity_registry.async_get_or_create(
        "button", DOMAIN, f"{KEY_ID}_revoke_certificate", config_entry=entry
    )
    address = entity_registry.async_get_or_create(
        "sensor", DOMAIN, f"{KEY_ID}_address", config_entry=entry
    )
    assert entry.minor_version == 1

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.minor_version == 2
    assert entity_registry.async_get(button.entity_id) is None
    # Every other entity stays as it was.
    kept = entity_registry.async_get(address.entity_id)
    assert kept is not None
    assert kept.id == address.id


async def test_an_entry_of_a_newer_providore_is_not_set_up(
    hass: HomeAssistant, stored_secrets: dict[str, str]
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id=DOMAIN, version=2)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR
