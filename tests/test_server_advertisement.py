"""The `_providore._tcp` registration on Home Assistant's zeroconf (its test fixtures).

The real multicast is in test_zeroconf_network.py; here Home Assistant's mock
zeroconf records what Providore registers, withdraws and registers again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from homeassistant.const import EVENT_CORE_CONFIG_UPDATE
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import Error as ZeroconfError

from custom_components.providore.advertisement import ca_fingerprint
from custom_components.providore.const import CONF_ANSWER_PROVIDORE_LOCAL
from custom_components.providore.server_advertisement import web_endpoint

from .conftest import loaded_runtime
from .pki import openssl_ca


def _registered(aiozc: MagicMock) -> list[Any]:
    return [call.args[0] for call in aiozc.async_register_service.call_args_list]


def _properties(info: Any) -> dict[str, str]:
    return {k.decode(): (v or b"").decode() for k, v in info.properties.items()}


async def _config_updated(hass: HomeAssistant) -> None:
    hass.bus.async_fire(EVENT_CORE_CONFIG_UPDATE, {})
    await hass.async_block_till_done()


async def test_registered_with_what_a_device_needs(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_async_zeroconf: MagicMock,
) -> None:
    [info] = _registered(mock_async_zeroconf)
    assert mock_async_zeroconf.async_register_service.call_args.kwargs == {
        "allow_name_change": True
    }
    runtime = loaded_runtime(hass)
    assert info.type == "_providore._tcp.local."
    assert info.name == "Providore._providore._tcp.local."
    assert info.server.endswith(".local.")
    assert info.port == hass.http.server_port
    assert info.parsed_addresses() == ["10.10.10.10"]
    assert _properties(info) == {
        "path": "/api/providore",
        "protocol": "1",
        "tls": "0",
        "ca": ca_fingerprint(runtime.certificate_authority.certificate),
    }

    # A core configuration update that changes nothing it says: left alone.
    await _config_updated(hass)
    assert len(_registered(mock_async_zeroconf)) == 1

    # Withdrawn when the hub unloads.
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    mock_async_zeroconf.async_unregister_service.assert_called_once_with(info)


async def test_registered_again_when_home_assistant_s_url_changes(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_async_zeroconf: MagicMock,
) -> None:
    [first] = _registered(mock_async_zeroconf)
    hass.config.internal_url = "https://ha.local:8443"
    await _config_updated(hass)
    second = _registered(mock_async_zeroconf)[-1]
    mock_async_zeroconf.async_unregister_service.assert_called_once_with(first)
    assert second.server == "ha.local."
    assert second.port == 8443
    assert _properties(second)["tls"] == "1"

    # An internal URL by address or DNS name: Home Assistant's own .local name.
    hass.config.internal_url = "http://192.168.1.20:8123"
    await _config_updated(hass)
    third = _registered(mock_async_zeroconf)[-1]
    assert third.server == first.server
    assert third.port == 8123
    assert _properties(third)["tls"] == "0"


async def test_registered_again_with_an_imported_ca(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_async_zeroconf: MagicMock,
    tmp_path: Path,
) -> None:
    certificate, key = await hass.async_add_executor_job(openssl_ca, tmp_path)
    runtime = loaded_runtime(hass)
    await runtime.async_import_ca(certificate, key, None)
    await hass.async_block_till_done()
    info = _registered(mock_async_zeroconf)[-1]
    assert _properties(info)["ca"] == ca_fingerprint(
        runtime.certificate_authority.certificate
    )
    assert len(_registered(mock_async_zeroconf)) == 2


async def test_the_providore_local_option(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    mock_async_zeroconf: MagicMock,
) -> None:
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        options={**mock_config_entry.options, CONF_ANSWER_PROVIDORE_LOCAL: True},
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    [info] = _registered(mock_async_zeroconf)
    # One service whose host is providore.local: two would leave a device guessing.
    assert info.server == "providore.local."
    assert info.name == "Providore._providore._tcp.local."


async def test_a_failed_registration_is_logged_and_tried_again(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    mock_async_zeroconf: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    announced = mock_async_zeroconf.async_register_service.side_effect
    mock_async_zeroconf.async_register_service.side_effect = ZeroconfError("no")
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert "Could not advertise Providore by zeroconf: no" in caplog.text

    mock_async_zeroconf.async_register_service.side_effect = announced
    await _config_updated(hass)
    assert len(_registered(mock_async_zeroconf)) == 2
    # Nothing was registered the first time, so nothing was withdrawn.
    mock_async_zeroconf.async_unregister_service.assert_not_called()


async def test_nothing_registered_nothing_withdrawn(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    mock_async_zeroconf: MagicMock,
) -> None:
    mock_async_zeroconf.async_register_service.side_effect = ZeroconfError("no")
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    advertisement = loaded_runtime(hass)._advertisement
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    mock_async_zeroconf.async_unregister_service.assert_not_called()

    # A refresh that comes after the hub unloaded registers nothing.
    await advertisement.async_refresh()
    assert mock_async_zeroconf.async_register_service.call_count == 1


async def test_withdrawing_tolerates_a_closing_zeroconf(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_async_zeroconf: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock_async_zeroconf.async_unregister_service.side_effect = ZeroconfError("gone")
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert "Could not withdraw the zeroconf advertisement: gone" in caplog.text

    # Home Assistant closing: zeroconf said goodbye itself.
    mock_async_zeroconf.async_unregister_service.reset_mock()
    mock_async_zeroconf.zeroconf.done = True
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    mock_async_zeroconf.async_unregister_service.assert_not_called()


@pytest.mark.parametrize(
    ("internal_url", "server_port", "use_ssl", "expected"),
    [
        (None, 8123, False, (None, 8123, False)),
        (None, 8123, True, (None, 8123, True)),
        (
            "http://homeassistant.local:8123",
            9000,
            False,
            ("homeassistant.local", 8123, False),
        ),
        ("https://ha.example.com", 8123, False, (None, 443, True)),
        ("http://192.168.1.20", 8123, True, (None, 80, False)),
    ],
)
def test_web_endpoint(
    internal_url: str | None,
    server_port: int,
    use_ssl: bool,
    expected: tuple[str | None, int, bool],
) -> None:
    assert web_endpoint(internal_url, server_port, use_ssl) == expected
