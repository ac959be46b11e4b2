"""The provisioning_bundle and set_config actions, and how actions name a device."""

from __future__ import annotations

import csv
import io
from typing import Any
from unittest.mock import patch

from homeassistant.core import Context, HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.network import NoURLAvailableError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
import voluptuous as vol

from custom_components.providore.const import DOMAIN

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime


async def _bundle(hass: HomeAssistant, key_id: str = KEY_ID, **kwargs: object) -> dict:
    return await hass.services.async_call(
        DOMAIN,
        "provisioning_bundle",
        {"key_id": key_id},
        blocking=True,
        return_response=True,
        **kwargs,
    )


async def test_provisioning_bundle(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await async_process_ha_core_config(
        hass, {"internal_url": "http://homeassistant.local:8123"}
    )
    bundle = await _bundle(hass)
    assert bundle["key_id"] == KEY_ID
    assert bundle["secret_key"] == SECRET_KEY
    assert bundle["base_url"] == "http://homeassistant.local:8123/api/providore"
    rows = list(csv.reader(io.StringIO(bundle["nvs_csv"])))
    assert rows == [
        ["key", "type", "encoding", "value"],
        ["providore", "namespace", "", ""],
        ["device_id", "data", "string", KEY_ID],
        ["psk", "data", "string", SECRET_KEY],
    ]


async def test_nvs_csv_quotes_a_secret_with_a_comma(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    runtime = loaded_runtime(hass)
    await runtime.async_store_secrets({KEY_ID: 'a,b"c-0123456789xyz'})
    bundle = await _bundle(hass)
    rows = list(csv.reader(io.StringIO(bundle["nvs_csv"])))
    assert rows[3] == ["psk", "data", "string", 'a,b"c-0123456789xyz']


async def test_provisioning_bundle_is_for_admins_only(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_read_only_user: MockUser,
) -> None:
    with pytest.raises(Unauthorized):
        await _bundle(hass, context=Context(user_id=hass_read_only_user.id))


async def test_provisioning_bundle_for_an_unknown_user(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(UnknownUser):
        await _bundle(hass, context=Context(user_id="no-such-user"))


async def test_provisioning_bundle_for_an_admin(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    bundle = await _bundle(hass, context=Context(user_id=hass_admin_user.id))
    assert bundle["secret_key"] == SECRET_KEY


async def test_provisioning_bundle_unknown_device(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await _bundle(hass, key_id="nobody")
    assert err.value.translation_key == "unknown_device"
    assert err.value.translation_placeholders == {"key_id": "nobody"}


async def test_provisioning_bundle_without_a_secret(
    hass: HomeAssistant, entry_without_secret: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await _bundle(hass)
    assert err.value.translation_key == "missing_secret"


async def test_provisioning_bundle_without_a_url(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with (
        patch(
            "custom_components.providore.services.get_url",
            side_effect=NoURLAvailableError,
        ),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _bundle(hass)
    assert err.value.translation_key == "no_url"


async def test_services_need_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _bundle(hass)
    assert err.value.translation_key == "not_loaded"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "set_config", {"key_id": KEY_ID, "config": {}}, blocking=True
        )
    assert err.value.translation_key == "not_loaded"


async def test_set_config(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await hass.services.async_call(
        DOMAIN,
        "set_config",
        {"key_id": KEY_ID, "config": {"interval": 60}},
        blocking=True,
    )
    await hass.services.async_call(
        DOMAIN,
        "set_config",
        {"key_id": KEY_ID, "config": {"interval": 5}, "firmware_version": "2.0.0"},
        blocking=True,
    )
    runtime = loaded_runtime(hass)
    assert runtime.config_document(KEY_ID, "1.0.0") == {"interval": 60}
    assert runtime.config_document(KEY_ID, "2.0.0") == {"interval": 5}


async def test_set_config_refuses_what_is_not_an_object(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN, "set_config", {"key_id": KEY_ID, "config": [1, 2]}, blocking=True
        )
    runtime = loaded_runtime(hass)
    assert runtime.config_document(KEY_ID, None) is None


async def test_set_config_unknown_device(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "set_config", {"key_id": "nobody", "config": {}}, blocking=True
        )
    assert err.value.translation_key == "unknown_device"


async def test_set_config_is_for_admins_only(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_read_only_user: MockUser,
) -> None:
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "set_config",
            {"key_id": KEY_ID, "config": {}},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )


# Naming the device: device_id (the UI's device selector) or key_id (scripts).

DEVICE_ACTIONS = {
    "provisioning_bundle": {},
    "set_config": {"config": {"interval": 60}},
    "cancel_firmware_update": {},
    "revoke_certificate": {},
}


def _device_id(device_registry: dr.DeviceRegistry) -> str:
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    return device.id


async def _call(hass: HomeAssistant, action: str, data: dict[str, Any]) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        action,
        DEVICE_ACTIONS[action] | data,
        blocking=True,
        return_response=action == "provisioning_bundle",
    )


async def test_provisioning_bundle_by_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})

    bundle = await _call(
        hass, "provisioning_bundle", {"device_id": _device_id(device_registry)}
    )

    assert bundle["key_id"] == KEY_ID
    assert bundle["secret_key"] == SECRET_KEY


async def test_set_config_by_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    await _call(hass, "set_config", {"device_id": _device_id(device_registry)})

    assert loaded_runtime(hass).config_document(KEY_ID, None) == {"interval": 60}


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("cancel_firmware_update", "no_pending_update"),
        ("revoke_certificate", "no_certificate"),
    ],
)
async def test_device_actions_reach_the_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    action: str,
    reason: str,
) -> None:
    """The device is found by its registry id: the refusal is the device's own."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, action, {"device_id": _device_id(device_registry)})

    assert err.value.translation_key == reason
    assert err.value.translation_placeholders == {"key_id": KEY_ID}


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
async def test_device_actions_need_exactly_one_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    action: str,
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, action, {})
    assert err.value.translation_key == "no_device"

    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, action, {"device_id": _device_id(device_registry), "key_id": KEY_ID}
        )
    assert err.value.translation_key == "device_and_key_id"
    assert loaded_runtime(hass).config_document(KEY_ID, None) is None


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
async def test_device_actions_refuse_other_devices(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    action: str,
) -> None:
    other_entry = MockConfigEntry(domain="demo")
    other_entry.add_to_hass(hass)
    lamp = device_registry.async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={("demo", KEY_ID)}
    )

    for device_id in (lamp.id, "no-such-device"):
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, action, {"device_id": device_id})
        assert err.value.translation_key == "unknown_device_id"
        assert err.value.translation_placeholders == {"device_id": device_id}
