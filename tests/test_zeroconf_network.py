"""Home Assistant's real zeroconf and real broadcasts, in a private network namespace.

Home Assistant runs Providore with its own zeroconf integration on the namespace's
server interface; the reference client and a device's python-zeroconf are on the
other interface. Nothing leaves the namespace (tests/netns.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.const import EVENT_CORE_CONFIG_UPDATE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import AddressResolver, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from custom_components.providore.advertisement import SERVICE_TYPE, ca_fingerprint
from custom_components.providore.const import (
    CONF_ANSWER_PROVIDORE_LOCAL,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_BROADCAST,
    CONF_NOTIFY_UDP_PORT,
    DOMAIN,
)
from custom_components.providore.device_hello import DEVICE_SERVICE_TYPE
from custom_components.providore.notice import Change, verify_notice
from providore_client.discovery import DiscoveryError, discover_server

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime
from .mosquitto import free_port
from .netns import CLIENT_ADDRESS, SERVER_ADDRESS, private_network

pytestmark = pytest.mark.real_zeroconf

# The namespace's server side, as Home Assistant's network integration reports it.
NAMESPACE_ADAPTERS = [
    {
        "auto": True,
        "default": True,
        "enabled": True,
        "index": 2,
        "ipv4": [{"address": SERVER_ADDRESS, "network_prefix": 24}],
        "ipv6": [],
        "name": "v0",
    }
]


@pytest.fixture
def network(socket_enabled: None) -> Iterator[None]:
    """Move the test into a private network namespace; Home Assistant announces v0."""
    with (
        private_network(),
        patch(
            "homeassistant.components.network.async_get_announce_addresses",
            return_value=[SERVER_ADDRESS],
        ),
        patch(
            "homeassistant.components.network.async_get_adapters",
            return_value=NAMESPACE_ADAPTERS,
        ),
    ):
        yield


@pytest.fixture
async def hub(
    hass: HomeAssistant,
    network: None,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> AsyncIterator[MockConfigEntry]:
    """Set Providore up (and with it Home Assistant's zeroconf) inside the namespace."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    yield mock_config_entry
    # Home Assistant's zeroconf closes at its close event; its sockets must go
    # before the namespace does.
    await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    aiozc = hass.data["zeroconf"]
    await aiozc.ha_async_close()


async def _discover(ca: Path | None = None) -> Any:
    messages: list[str] = []
    server = await discover_server(
        inform=messages.append, ca=ca, within=3, interfaces=[CLIENT_ADDRESS]
    )
    return server, messages


async def test_the_client_finds_providore_by_home_assistant_s_zeroconf(
    hass: HomeAssistant, hub: MockConfigEntry, tmp_path: Path
) -> None:
    runtime = loaded_runtime(hass)
    ca = tmp_path / "ca.pem"
    ca.write_text(runtime.certificate_authority.certificate_pem)

    server, messages = await _discover(ca)

    assert server.name == "Providore"
    assert server.address == SERVER_ADDRESS
    assert server.port == hass.http.server_port
    assert server.path == "/api/providore"
    assert not server.tls
    assert server.ca_fingerprint == ca_fingerprint(
        runtime.certificate_authority.certificate
    )
    assert (
        server.url == f"http://{SERVER_ADDRESS}:{hass.http.server_port}/api/providore"
    )
    assert messages == []

    # Withdrawn when the hub unloads.
    assert await hass.config_entries.async_unload(hub.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(DiscoveryError, match="no Providore server found"):
        await _discover()


async def test_the_advertisement_follows_home_assistant_s_url(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    await _discover()
    hass.config.internal_url = "https://providore-test.local:8443"
    hass.bus.async_fire(EVENT_CORE_CONFIG_UPDATE, {})
    await hass.async_block_till_done()

    async with AsyncZeroconf(interfaces=[CLIENT_ADDRESS]) as aiozc:
        info = AsyncServiceInfo(SERVICE_TYPE, f"Providore.{SERVICE_TYPE}")
        for _attempt in range(20):
            assert await info.async_request(aiozc.zeroconf, 3000)
            if info.port == 8443:
                break
            await asyncio.sleep(0.25)
    assert info.server == "providore-test.local."
    assert info.port == 8443
    assert info.properties[b"tls"] == b"1"
    assert info.parsed_addresses(IPVersion.V4Only) == [SERVER_ADDRESS]


async def test_providore_local_answers_with_home_assistant_s_addresses(
    hass: HomeAssistant,
    network: None,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> None:
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        options={**mock_config_entry.options, CONF_ANSWER_PROVIDORE_LOCAL: True},
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    try:
        server, _messages = await _discover()
        assert server.host == "providore.local"
        async with AsyncZeroconf(interfaces=[CLIENT_ADDRESS]) as aiozc:
            # A plain host lookup, as the original firmware resolves its server.
            resolver = AddressResolver("providore.local.")
            assert await resolver.async_request(aiozc.zeroconf, 3000)
            assert resolver.parsed_addresses() == [SERVER_ADDRESS]
    finally:
        await hass.config_entries.async_unload(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        await hass.data["zeroconf"].ha_async_close()


async def test_a_device_service_becomes_a_pending_device(
    hass: HomeAssistant, hub: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    info = AsyncServiceInfo(
        DEVICE_SERVICE_TYPE,
        f"garden-2.{DEVICE_SERVICE_TYPE}",
        server="garden-2.local.",
        port=80,
        parsed_addresses=[CLIENT_ADDRESS],
        properties={
            "key_id": "garden-2",
            "firmware_type": "esp32s2",
            "mac": "aa:bb:cc:dd:ee:ff",
        },
    )
    async with AsyncZeroconf(interfaces=[CLIENT_ADDRESS]) as device:
        await (await device.async_register_service(info))
        pending = loaded_runtime(hass).pending_devices
        async with asyncio.timeout(10):
            while not pending.devices():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        await device.async_unregister_all_services()
    found = pending.devices()
    assert [(d.key_id, d.firmware_type, d.mac, d.address) for d in found] == [
        ("garden-2", "esp32s2", "aa:bb:cc:dd:ee:ff", CLIENT_ADDRESS)
    ]
    issue = issue_registry.async_get_issue(DOMAIN, "new_device_garden-2")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["source"] == "zeroconf"


async def test_a_notice_broadcast_on_the_local_network(
    hass: HomeAssistant,
    network: None,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> None:
    """A device whose address is not known yet still hears of a change."""
    port = free_port()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Device(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.put_nowait(data)

    loop = asyncio.get_running_loop()
    # As a device does: every address of its own, so that broadcasts reach it.
    transport, _ = await loop.create_datagram_endpoint(
        Device,
        local_addr=("0.0.0.0", port),  # noqa: S104
    )
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        options={
            **mock_config_entry.options,
            CONF_NOTIFY_UDP: True,
            CONF_NOTIFY_UDP_PORT: port,
            CONF_NOTIFY_UDP_BROADCAST: True,
        },
    )
    try:
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        sent = await loaded_runtime(hass).async_notify(KEY_ID, {Change.CHECK})
        assert sent == [f"udp 192.0.2.255:{port}"]
        async with asyncio.timeout(5):
            datagram = await received.get()
    finally:
        transport.close()
        await hass.config_entries.async_unload(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        await hass.data["zeroconf"].ha_async_close()
    notice = verify_notice(
        datagram,
        key_id=KEY_ID,
        secret_key=SECRET_KEY,
        now=dt_util.utcnow(),
        last_counter=0,
    )
    assert notice.changes == {Change.CHECK}
