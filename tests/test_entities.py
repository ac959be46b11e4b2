"""The entities of a device follow what it reports."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.providore.const import CONF_ONLINE_INTERVAL, DOMAIN

from .conftest import KEY_ID, loaded_runtime
from .device_calls import record_contact

# These tests look at diagnostic entities a new device has disabled.
pytestmark = pytest.mark.usefixtures("entity_registry_enabled_by_default")

CONNECTIVITY = "binary_sensor.garden_sensor_connectivity"
STATUS = "sensor.garden_sensor_status"


async def _device_calls(hass: HomeAssistant, version: str = "1.0.0") -> None:
    """Record a request the way the device API does after authenticating it."""
    record_contact(hass, version)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_entities_before_the_device_called(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF
    assert hass.states.get("sensor.garden_sensor_last_seen").state == STATE_UNKNOWN
    assert hass.states.get("sensor.garden_sensor_address").state == STATE_UNKNOWN
    assert (
        hass.states.get("sensor.garden_sensor_firmware_version").state == STATE_UNKNOWN
    )
    status = hass.states.get(STATUS)
    assert status.state == "waiting_for_first_contact"
    assert status.attributes["device_class"] == "enum"
    assert status.attributes["options"] == [
        "waiting_for_first_contact",
        "online",
        "offline",
    ]


async def test_status_says_waiting_then_online_then_offline(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    assert hass.states.get(STATUS).state == "waiting_for_first_contact"
    await _device_calls(hass)
    online = hass.states.get(STATUS)
    assert online.state == "online"

    # Written only when it changes: another request within the interval leaves it be.
    freezer.tick(timedelta(seconds=30))
    await _device_calls(hass)
    assert hass.states.get(STATUS).last_reported == online.last_reported

    freezer.tick(timedelta(seconds=601))
    for _ in range(2):  # the timer of the first request, then that of the second
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "offline"

    # A reload remembers that the device called once.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "offline"
    await _device_calls(hass)
    assert hass.states.get(STATUS).state == "online"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_a_request_updates_every_entity_and_the_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to("2026-11-28T12:00:00+00:00")
    await _device_calls(hass, "1.4.0")

    assert hass.states.get(CONNECTIVITY).state == STATE_ON
    assert (
        hass.states.get("sensor.garden_sensor_last_seen").state
        == "2026-11-28T12:00:00+00:00"
    )
    assert hass.states.get("sensor.garden_sensor_address").state == "192.0.2.7"
    assert hass.states.get("sensor.garden_sensor_firmware_version").state == "1.4.0"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device.sw_version == "1.4.0"


async def test_connectivity_turns_off_after_the_online_interval(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    await _device_calls(hass)
    freezer.tick(timedelta(seconds=599))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == STATE_ON

    # A new request restarts the interval.
    await _device_calls(hass)
    freezer.tick(timedelta(seconds=599))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == STATE_ON

    freezer.tick(timedelta(seconds=2))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF


async def test_online_interval_follows_the_hub_option(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    hass.config_entries.async_update_entry(
        init_integration,
        options={**init_integration.options, CONF_ONLINE_INTERVAL: 60},
    )
    await hass.async_block_till_done()
    await _device_calls(hass)
    assert hass.states.get(CONNECTIVITY).state == STATE_ON

    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTIVITY).state == STATE_OFF


async def test_reported_state_is_saved_after_a_short_delay(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict,
    freezer: FrozenDateTimeFactory,
) -> None:
    await _device_calls(hass, "2.0.0")
    assert f"{DOMAIN}.device_state" not in hass_storage

    freezer.tick(timedelta(seconds=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.device_state"]["data"][KEY_ID]
    assert stored["firmware_version"] == "2.0.0"
    assert stored["address"] == "192.0.2.7"


async def test_frequent_requests_do_not_postpone_the_save(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict,
    freezer: FrozenDateTimeFactory,
) -> None:
    # A device calling every 2 s: its state still reaches the disk within seconds.
    for version in ("1.0.0", "1.0.1", "1.0.2", "1.0.3"):
        await _device_calls(hass, version)
        freezer.tick(timedelta(seconds=2))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.device_state"]["data"][KEY_ID]
    assert stored["firmware_version"] in ("1.0.2", "1.0.3")

    await _device_calls(hass, "1.0.4")
    freezer.tick(timedelta(seconds=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.device_state"]["data"][KEY_ID]
    assert stored["firmware_version"] == "1.0.4"


async def test_saves_resume_after_a_removed_device_is_forgotten(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict,
    freezer: FrozenDateTimeFactory,
) -> None:
    data = loaded_runtime(hass)._data
    data.state("0badc0de").address = "192.0.2.99"  # a device since removed
    data.state_changed("0badc0de")
    await _device_calls(hass, "1.0.0")  # a delayed save is now pending
    # Forgetting the removed device writes at once, replacing the delayed save.
    await data.async_forget(["0badc0de"])
    assert set(hass_storage[f"{DOMAIN}.device_state"]["data"]) == {KEY_ID}

    await _device_calls(hass, "1.0.1")
    freezer.tick(timedelta(seconds=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.device_state"]["data"][KEY_ID]
    assert stored["firmware_version"] == "1.0.1"
