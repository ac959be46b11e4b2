"""An ESPHome device in Providore for the tests, and ESPHome's own registry entries.

`add_esphome_integration_device` creates what Home Assistant's ESPHome integration
creates for a device (read in its manager.py and update.py): a config entry of domain
`esphome`, a device registry entry known by its MAC only (manufacturer and model from
the project name, software version "<project version> (ESPHome <version>)"), and the
device's update entity, unique id "<mac>-update-<object id>".
"""

from __future__ import annotations

import os
from typing import Any

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.providore.const import (
    CONF_CHIP_FAMILY,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAC,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_ONLINE_INTERVAL,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
    SUBENTRY_TYPE_ESPHOME_DEVICE,
)
from custom_components.providore.esphome_image import CHIP_IDS, ChipFamily

from .conftest import DEVICE_NAME, FIRMWARE_TYPE, KEY_ID
from .test_esphome_image import esp32_header

ESP_KEY_ID = "esp-kitchen"
ESP_TOKEN = "0123456789abcdef0123456789abcdef"
ESP_MAC = "24:0a:c4:12:34:56"
ESP_NAME = "Kitchen sensor"
ESP_PROJECT = "acme.kitchen_sensor"
ESP_CHIP = ChipFamily.ESP32_C3
ESP_FIRMWARE_TYPE = "acme.kitchen_sensor-esp32c3"
ESPHOME_BASE = "/api/providore/esphome"
MANIFEST = f"{ESPHOME_BASE}/{ESP_TOKEN}/manifest.json"
TOKENS_STORE = f"{DOMAIN}.esphome_tokens"


def esphome_image(size: int = 100 * 1024, family: ChipFamily = ESP_CHIP) -> bytes:
    """Return an application image for `family`: a real header, then random bytes."""
    header = esp32_header(CHIP_IDS[family])
    return header + os.urandom(size - len(header))


def esphome_subentry(
    key_id: str = ESP_KEY_ID,
    mac: str = ESP_MAC,
    name: str = ESP_NAME,
    chip_family: ChipFamily = ESP_CHIP,
) -> ConfigSubentryData:
    """Return the subentry the ESPHome device flow creates."""
    return ConfigSubentryData(
        data={
            CONF_KEY_ID: key_id,
            CONF_MAC: mac,
            CONF_CHIP_FAMILY: chip_family.value,
            "project_name": ESP_PROJECT,
            CONF_FIRMWARE_TYPE: f"{ESP_PROJECT}-{chip_family.variant}",
        },
        subentry_type=SUBENTRY_TYPE_ESPHOME_DEVICE,
        title=name,
        unique_id=key_id,
    )


def hub_with_esphome_device() -> MockConfigEntry:
    """Return a hub with one Providore device and one ESPHome device."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        data={},
        options={
            CONF_MAX_CLOCK_SKEW: 300,
            CONF_MAX_REQUEST_LIFETIME: 900,
            CONF_ONLINE_INTERVAL: 600,
        },
        subentries_data=[
            ConfigSubentryData(
                data={CONF_KEY_ID: KEY_ID, CONF_FIRMWARE_TYPE: FIRMWARE_TYPE},
                subentry_type=SUBENTRY_TYPE_DEVICE,
                title=DEVICE_NAME,
                unique_id=KEY_ID,
            ),
            esphome_subentry(),
        ],
    )


def stored_tokens(tokens: dict[str, str | None]) -> dict[str, Any]:
    """Return the private token store's file content."""
    return {"version": 1, "minor_version": 1, "key": TOKENS_STORE, "data": tokens}


def add_esphome_integration_device(
    hass: HomeAssistant,
    mac: str = ESP_MAC,
    *,
    name: str = "kitchen-sensor",
    version: str | None = "1.0.0",
    update_entity: bool = True,
) -> dr.DeviceEntry:
    """Create the registry entries ESPHome's integration makes for a connected device."""
    entry = MockConfigEntry(domain="esphome", title=name, data={"host": "10.0.0.7"})
    entry.add_to_hass(hass)
    author, model = ESP_PROJECT.split(".")
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        connections={(dr.CONNECTION_NETWORK_MAC, mac.upper())},
        name=name,
        manufacturer=author,
        model=model,
        sw_version=f"{version} (ESPHome 2026.10.0)" if version else "2026.10.0",
    )
    if update_entity:
        entity = er.async_get(hass).async_get_or_create(
            "update",
            "esphome",
            f"{mac.upper()}-update-providore_firmware",
            config_entry=entry,
            device_id=device.id,
            suggested_object_id=f"{name}_providore_firmware",
        )
        hass.states.async_set(
            entity.entity_id, "off", {"installed_version": version or "unknown"}
        )
    return device


def esphome_version_reported(
    hass: HomeAssistant, device: dr.DeviceEntry, version: str
) -> None:
    """Do what ESPHome's integration does when the device reconnects running `version`."""
    dr.async_get(hass).async_update_device(
        device.id, sw_version=f"{version} (ESPHome 2026.10.0)"
    )
