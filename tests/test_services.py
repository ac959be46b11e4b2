"""The provisioning_bundle and set_config service actions."""

from __future__ import annotations

import csv
import io
from unittest.mock import patch

from homeassistant.core import Context, HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
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
