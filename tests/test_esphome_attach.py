"""Providore on ESPHome's own device: attached by MAC, no second update entity, the check push.

ESPHome's side is made of the registry entries its integration creates (esphome_setup),
and `homeassistant.update_entity` is recorded where ESPHome's entity would receive it.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN
from custom_components.providore.device_events import EVENT_DEVICE
from providore_client.esphome import download_update, fetch_update

from .conftest import loaded_runtime
from .esphome_setup import (
    ESP_CHIP,
    ESP_KEY_ID,
    ESP_MAC,
    ESP_TOKEN,
    MANIFEST,
    TOKENS_STORE,
    add_esphome_integration_device,
    esphome_version_reported,
    hub_with_esphome_device,
    stored_tokens,
)
from .test_esphome_api import assign, upload

ESPHOME_UPDATE = "update.kitchen_sensor_providore_firmware"
PROVIDORE_UPDATE = "update.kitchen_sensor_firmware"


@pytest.fixture
def checks(hass: HomeAssistant) -> list[ServiceCall]:
    """Record `homeassistant.update_entity` calls, as ESPHome's entities would get them."""
    return async_mock_service(hass, "homeassistant", "update_entity")


async def _set_up(hass: HomeAssistant, hass_storage: dict[str, Any]) -> MockConfigEntry:
    hass_storage[TOKENS_STORE] = stored_tokens({ESP_KEY_ID: ESP_TOKEN})
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def _providore_entities(
    hass: HomeAssistant, entry: MockConfigEntry
) -> dict[str, er.RegistryEntry]:
    return {
        entity.entity_id: entity
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), entry.entry_id
        )
        if entity.unique_id.startswith(ESP_KEY_ID)
    }


def _devices_with_mac(hass: HomeAssistant) -> list[dr.DeviceEntry]:
    return [
        device
        for device in dr.async_get(hass).devices.values()
        if (dr.CONNECTION_NETWORK_MAC, ESP_MAC) in device.connections
    ]


async def test_attaches_to_esphomes_device(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    checks: list[ServiceCall],
) -> None:
    esphome_device = add_esphome_integration_device(hass)

    entry = await _set_up(hass, hass_storage)

    entities = _providore_entities(hass, entry)
    assert sorted(entity.domain for entity in entities.values()) == [
        "select",
        "sensor",
        "sensor",
        "switch",
    ]
    assert {entity.device_id for entity in entities.values()} == {esphome_device.id}
    # No update entity of Providore's beside ESPHome's.
    assert hass.states.get(PROVIDORE_UPDATE) is None
    assert [
        state.entity_id
        for state in hass.states.async_all("update")
        if state.entity_id.startswith("update.kitchen")
    ] == [ESPHOME_UPDATE]
    # One device: ESPHome's, still named as ESPHome named it, with both entries.
    (device,) = _devices_with_mac(hass)
    assert device.id == esphome_device.id
    assert device.name == "kitchen-sensor"
    assert device.manufacturer == "acme"
    assert device.sw_version == "1.0.0 (ESPHome 2026.10.0)"
    assert device.config_entries == {
        esphome_device.primary_config_entry,
        entry.entry_id,
    }
    assert (DOMAIN, ESP_KEY_ID) in device.identifiers
    # The version ESPHome's integration reported is the one the device runs.
    assert loaded_runtime(hass).state(ESP_KEY_ID).firmware_version == "1.0.0"
    assert checks == []


async def test_an_assignment_makes_esphomes_update_entity_check(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    checks: list[ServiceCall],
) -> None:
    add_esphome_integration_device(hass)
    await _set_up(hass, hass_storage)
    await upload(hass, "1.1.0")
    assert checks == []  # an upload alone changes nothing the device is offered

    await assign(hass, "1.1.0")

    assert [call.data[ATTR_ENTITY_ID] for call in checks] == [[ESPHOME_UPDATE]]

    # Switching automatic updates on offers nothing new: no check.
    await hass.services.async_call(
        "switch",
        "turn_on",
        {ATTR_ENTITY_ID: "switch.kitchen_sensor_automatic_updates"},
        blocking=True,
    )
    assert len(checks) == 1

    # Withdrawn, the manifest offers nothing again: ESPHome is told at once.
    await hass.services.async_call(
        DOMAIN, "cancel_firmware_update", {"key_id": ESP_KEY_ID}, blocking=True
    )
    await hass.async_block_till_done()
    assert [call.data[ATTR_ENTITY_ID] for call in checks] == [
        [ESPHOME_UPDATE],
        [ESPHOME_UPDATE],
    ]


async def test_a_failing_check_is_logged(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the homeassistant integration's action, the push fails with a warning."""
    add_esphome_integration_device(hass)
    await _set_up(hass, hass_storage)
    await upload(hass, "1.1.0")

    await assign(hass, "1.1.0")

    ours = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.providore")
    )
    assert f"Could not ask ESPHome's {ESPHOME_UPDATE} to check" in ours
    assert ESP_TOKEN not in ours


async def test_esphomes_reported_version_completes_the_update(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    checks: list[ServiceCall],
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    esphome_device = add_esphome_integration_device(hass)
    await _set_up(hass, hass_storage)
    events = async_capture_events(hass, EVENT_DEVICE)
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")

    # ESPHome's Install: the device fetches the manifest and the build.
    update = await fetch_update(
        client.session, str(client.make_url(MANIFEST)), ESP_CHIP.value
    )
    await download_update(client.session, update, Path(hass.config.path("fw.bin")))
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_sensor_firmware_download").state == "100"
    # Attached, a later manifest request proves nothing: ESPHome's report decides.
    response = await client.get(MANIFEST)
    assert response.status == HTTPStatus.OK
    assert loaded_runtime(hass).state(ESP_KEY_ID).firmware_version == "1.0.0"

    esphome_version_reported(hass, esphome_device, "1.1.0")
    await hass.async_block_till_done()

    assert loaded_runtime(hass).state(ESP_KEY_ID).firmware_version == "1.1.0"
    assert hass.states.get("sensor.kitchen_sensor_firmware_download").state == (
        "unknown"
    )
    assert [event.data["type"] for event in events] == [
        "update_assigned",
        "first_seen",
        "update_downloaded",
        "update_completed",
    ]
    assert all(event.data["device_id"] == esphome_device.id for event in events)
    # Providore never touched what ESPHome shows of the device.
    device = dr.async_get(hass).async_get(esphome_device.id)
    assert device is not None
    assert device.sw_version == "1.1.0 (ESPHome 2026.10.0)"


@pytest.mark.parametrize(
    "sw_version",
    [
        "2026.10.0 (20260101)",  # no project: ESPHome's own version
        f"{'1' * 128} (ESPHome 2026.10.0)",  # longer than ESPHome allows
        "1.1\n.0 (ESPHome 2026.10.0)",
        None,
    ],
)
async def test_an_unusable_reported_version_is_ignored(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    sw_version: str | None,
) -> None:
    esphome_device = add_esphome_integration_device(hass)
    await _set_up(hass, hass_storage)

    dr.async_get(hass).async_update_device(esphome_device.id, sw_version=sw_version)
    await hass.async_block_till_done()

    assert loaded_runtime(hass).state(ESP_KEY_ID).firmware_version == "1.0.0"


async def test_providores_update_entity_serves_a_device_esphome_lacks(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    checks: list[ServiceCall],
) -> None:
    entry = await _set_up(hass, hass_storage)

    entities = _providore_entities(hass, entry)
    assert PROVIDORE_UPDATE in entities
    (device,) = _devices_with_mac(hass)
    assert {entity.device_id for entity in entities.values()} == {device.id}
    assert device.name == "Kitchen sensor"
    assert (device.manufacturer, device.model) == ("acme", "kitchen_sensor")
    assert device.config_entries == {entry.entry_id}
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    assert checks == []


async def test_esphome_appearing_later_takes_over_the_update(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    checks: list[ServiceCall],
) -> None:
    entry = await _set_up(hass, hass_storage)
    (own_device,) = _devices_with_mac(hass)
    assert hass.states.get(PROVIDORE_UPDATE) is not None

    # ESPHome's integration sets up the device: the registry merges it into ours.
    esphome_device = add_esphome_integration_device(hass)
    await hass.async_block_till_done()

    assert esphome_device.id == own_device.id
    assert len(_devices_with_mac(hass)) == 1
    assert hass.states.get(PROVIDORE_UPDATE) is None
    assert PROVIDORE_UPDATE not in _providore_entities(hass, entry)
    assert len(_providore_entities(hass, entry)) == 4
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    assert [call.data[ATTR_ENTITY_ID] for call in checks] == [[ESPHOME_UPDATE]]


async def test_esphome_leaving_brings_providores_update_back(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
) -> None:
    esphome_device = add_esphome_integration_device(hass)
    entry = await _set_up(hass, hass_storage)
    assert hass.states.get(PROVIDORE_UPDATE) is None

    # The ESPHome integration lets go of the device; Providore's entities keep it.
    dr.async_get(hass).async_update_device(
        esphome_device.id,
        remove_config_entry_id=esphome_device.primary_config_entry,
    )
    await hass.async_block_till_done()

    entity = er.async_get(hass).async_get(PROVIDORE_UPDATE)
    assert entity is not None
    assert entity.device_id == esphome_device.id
    assert hass.states.get(PROVIDORE_UPDATE) is not None
    assert len(_providore_entities(hass, entry)) == 5


async def test_removing_the_esphome_device_from_providore_leaves_esphomes(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
) -> None:
    esphome_device = add_esphome_integration_device(hass)
    entry = await _set_up(hass, hass_storage)
    subentry_id = next(
        subentry.subentry_id
        for subentry in entry.subentries.values()
        if subentry.unique_id == ESP_KEY_ID
    )

    assert hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()

    assert _providore_entities(hass, entry) == {}
    (device,) = _devices_with_mac(hass)
    assert device.id == esphome_device.id
    assert entry.entry_id not in device.config_entries
    assert hass.states.get(PROVIDORE_UPDATE) is None
    assert loaded_runtime(hass).esphome.token(ESP_KEY_ID) is None
    assert hass_storage[TOKENS_STORE]["data"] == {}
