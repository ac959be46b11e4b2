"""Diagnostics show what helps and never a secret."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN
from custom_components.providore.request_guards import DATA_GUARDS

from .conftest import FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .device_calls import record_contact

FIRMWARE = b"\xe9firmware image"
DOCUMENT = {"wifi": {"ssid": "home", "password": "hunter2-wifi"}}


async def _prepare(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, DOCUMENT)
    await runtime.async_set_config(KEY_ID, DOCUMENT, "2.0.0")
    record_contact(hass)
    source = Path(hass.config.path("build.bin"))
    await hass.async_add_executor_job(source.write_bytes, FIRMWARE)
    await runtime.async_add_build(FIRMWARE_TYPE, "1.1.0", source)
    await runtime.async_install_firmware(KEY_ID, "1.1.0")


async def test_entry_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    await _prepare(hass, init_integration)
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, init_integration
    )

    assert diagnostics["entry"]["options"]["max_clock_skew"] == 300
    assert diagnostics["throttled_addresses"] == []
    assert diagnostics["addresses_with_failures"] == 0
    assert diagnostics["push_notices"] == {
        "mqtt": False,
        "udp": False,
        "devices_notified": 0,
    }
    assert diagnostics["pending_devices"] == {"pending": [], "ignored": []}
    [device] = diagnostics["devices"]
    assert device["key_id"] == KEY_ID
    assert device["has_secret_key"] is True
    assert device["online"] is True
    assert device["state"]["address"] == "192.0.2.7"
    assert device["config_documents"] == {
        "default": True,
        "firmware_versions": ["2.0.0"],
    }
    [build] = diagnostics["firmware"][FIRMWARE_TYPE]
    assert build["version"] == "1.1.0"
    assert build["size"] == len(FIRMWARE)
    assert build["sha256"] == hashlib.sha256(FIRMWARE).hexdigest()
    text = json.dumps(diagnostics)
    assert SECRET_KEY not in text
    assert "hunter2-wifi" not in text


async def test_device_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    await _prepare(hass, init_integration)
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    diagnostics = await get_diagnostics_for_device(
        hass, hass_client, init_integration, device
    )

    assert diagnostics["key_id"] == KEY_ID
    assert diagnostics["name"] == "Garden sensor"
    assert diagnostics["firmware_type"] == "esp32s2-sensor"
    assert diagnostics["state"]["firmware_version"] == "1.0.0"
    assert diagnostics["firmware_update"] == {
        "firmware_type": FIRMWARE_TYPE,
        "assigned_version": "1.1.0",
        "assigned_sha256": hashlib.sha256(FIRMWARE).hexdigest(),
        "auto_update": False,
        "downloaded_at": None,
        "progress": None,
    }
    text = json.dumps(diagnostics)
    assert SECRET_KEY not in text
    assert "hunter2-wifi" not in text


async def test_entry_diagnostics_list_throttled_addresses(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    throttle = hass.data[DATA_GUARDS].throttle
    now = dt_util.utcnow()
    for _ in range(10):
        throttle.record_failure("192.0.2.66", now)
    throttle.record_failure("192.0.2.67", now)

    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, init_integration
    )
    assert diagnostics["throttled_addresses"] == ["192.0.2.66"]
    assert diagnostics["addresses_with_failures"] == 2
