"""Push notices from Home Assistant, with real parts.

Datagrams on loopback, a real Mosquitto with Home Assistant's own MQTT integration,
and the reference client (`providore-client listen`) that verifies each notice and
pulls from the integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
import ipaddress
import logging
from pathlib import Path
import re
import socket
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from homeassistant.components import mqtt
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.certificate_authority import (
    CertificateAuthority,
    CertificateUsage,
    certificate_pem,
)
from custom_components.providore.const import (
    CONF_NOTIFY_MQTT,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_PORT,
    DOMAIN,
)
from custom_components.providore.models import DeviceChange
from custom_components.providore.notice import Change, Notice, verify_notice
from custom_components.providore.push import (
    FOLLOWED,
    UdpNotices,
    _SendOnly,
    broadcast_addresses,
)
from providore_client.cli import async_main

from .conftest import FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .console import Console
from .device import BASE, signed_headers
from .esphome_setup import ESP_KEY_ID, hub_with_esphome_device
from .mosquitto import mosquitto_brokers
from .pki import ec_key, key_pem, make_csr

COUNTERS_STORE = f"{DOMAIN}.notice_counters"
CREDENTIALS = ["--device-id", KEY_ID, "--secret", SECRET_KEY]
NEW_VERSION = "1.1.0"
QUIET = 0.3


class Datagrams:
    """A UDP socket on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        """Start empty; open() binds the socket."""
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def open(self) -> None:
        """Bind a free port of 127.0.0.1."""
        queue = self.queue

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                queue.put_nowait(data)

        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            Receiver, local_addr=("127.0.0.1", 0)
        )
        self.port = self.transport.get_extra_info("sockname")[1]

    async def next(self) -> bytes:
        """Return the next datagram, failing after 5 s."""
        async with asyncio.timeout(5):
            return await self.queue.get()

    async def none_within(self, seconds: float = QUIET) -> None:
        """Fail if a datagram arrives within `seconds`."""
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"unexpected notice: {self.queue.get_nowait()!r}"


@pytest.fixture
async def datagrams(socket_enabled: None) -> AsyncIterator[Datagrams]:
    """Return a UDP receiver on loopback."""
    receiver = Datagrams()
    await receiver.open()
    yield receiver
    assert receiver.transport is not None
    receiver.transport.close()


@pytest.fixture
def console(capsys: pytest.CaptureFixture[str]) -> Console:
    """Return the reader of the client's output."""
    return Console(capsys)


async def _set_up(
    hass: HomeAssistant, entry: MockConfigEntry, **options: Any
) -> MockConfigEntry:
    """Set up the hub with push options added to the entry's."""
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={**entry.options, **options})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _call_in(client: TestClient, version: str = "1.0.0") -> None:
    """Make the device's ordinary signed request, as it does at every poll."""
    headers = signed_headers("GET", "/config", firmware_version=version)
    resp = await client.get(f"{BASE}/config", headers=headers)
    assert resp.status in (200, 404)


def _read(notice: bytes, last_counter: int = 0) -> Notice:
    """Verify a notice as the device does."""
    return verify_notice(
        notice,
        key_id=KEY_ID,
        secret_key=SECRET_KEY,
        now=dt_util.utcnow(),
        last_counter=last_counter,
    )


async def _set_config(hass: HomeAssistant, config: dict[str, Any]) -> None:
    await hass.services.async_call(
        DOMAIN, "set_config", {"key_id": KEY_ID, "config": config}, blocking=True
    )


async def _upload_and_install(hass: HomeAssistant, version: str = NEW_VERSION) -> None:
    runtime = loaded_runtime(hass)
    source = Path(hass.config.path(f"build-{version}.bin"))
    await hass.async_add_executor_job(source.write_bytes, b"\x01firmware" * 100)
    await runtime.async_add_build(FIRMWARE_TYPE, version, source)
    await runtime.async_install_firmware(KEY_ID, version)


async def _start_listen(console: Console, *argv: str) -> tuple[asyncio.Task[int], int]:
    """Start `providore-client listen` on a free UDP port; return its task and port."""
    task = asyncio.create_task(
        async_main(["listen", "--udp-address", "127.0.0.1", "--udp-port", "0", *argv])
    )
    match = await console.wait_for(rf"^{KEY_ID} listening on udp 127\.0\.0\.1:(\d+)")
    return task, int(match[1])


# --- UDP, end to end --------------------------------------------------------------


async def test_set_config_and_install_reach_the_listening_client(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    socket_enabled: None,
    console: Console,
) -> None:
    entry = await _set_up(hass, mock_config_entry)
    client = await hass_client_no_auth()
    server = str(client.make_url(BASE))
    task, port = await _start_listen(
        console, "--server", server, *CREDENTIALS, "--count", "2"
    )
    # The port the client listens on becomes the hub's option (the hub reloads).
    hass.config_entries.async_update_entry(
        entry,
        options={**entry.options, CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: port},
    )
    await hass.async_block_till_done()
    assert loaded_runtime(hass).settings.notify_udp_port == port
    await _call_in(client)

    started = asyncio.get_running_loop().time()
    await _set_config(hass, {"interval": 42})
    await console.wait_for(f"^{KEY_ID} config fetched$")
    assert asyncio.get_running_loop().time() - started < 2
    await console.wait_for(f"^{KEY_ID} notice \\d+ done$")
    await _upload_and_install(hass)
    assert await asyncio.wait_for(task, 15) == 0
    console.read()

    events = [line.removeprefix(f"{KEY_ID} ") for line in console.out]
    assert events[0] == f"listening on udp 127.0.0.1:{port}"
    assert events[1].startswith("notice ")
    assert events[1].endswith(": config")
    assert "from udp 127.0.0.1:" in events[1]
    assert events[2:4] == ["config fetched", events[1].split(" from")[0] + " done"]
    assert events[4].endswith(": firmware")
    assert events[5:] == [
        f"firmware {NEW_VERSION} available",
        events[4].split(" from")[0] + " done",
    ]
    assert console.err == []


async def test_a_captured_notice_is_refused_when_replayed_or_forged(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    datagrams: Datagrams,
    console: Console,
) -> None:
    """What Providore sent, played back or altered, makes the device pull nothing."""
    await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    client = await hass_client_no_auth()
    await _call_in(client)
    await _set_config(hass, {"interval": 1})
    captured = await datagrams.next()
    task, port = await _start_listen(
        console, "--server", str(client.make_url(BASE)), *CREDENTIALS
    )

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(captured, ("127.0.0.1", port))
        await console.wait_for("notice \\d+ done")
        # The key is rotated, the device still holds the old one.
        await loaded_runtime(hass).async_rotate_key(KEY_ID)
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": KEY_ID}, blocking=True
        )
        signed_with_the_new_key = await datagrams.next()
        sender.sendto(captured, ("127.0.0.1", port))
        tampered = captured.replace(b"\nconfig\n", b"\nall\n")
        sender.sendto(tampered, ("127.0.0.1", port))
        sender.sendto(signed_with_the_new_key, ("127.0.0.1", port))
        async with asyncio.timeout(15):
            while len(console.err) < 3:
                await asyncio.sleep(0.02)
                console.read()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    counter = _read(captured).counter
    source = re.compile(r"udp 127\.0\.0\.1:\d+")
    assert [source.sub("udp *", line) for line in console.err] == [
        "providore-client: ignored a notice from udp *: "
        f"counter {counter} is not above {counter}, the last one accepted",
        "providore-client: ignored a notice from udp *: the signature does not match",
        "providore-client: ignored a notice from udp *: the signature does not match",
    ]
    # Only the first copy was acted on: one notice, one pull.
    assert [source.sub("udp *", line) for line in console.out[1:]] == [
        f"{KEY_ID} notice {counter} from udp *: config",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} notice {counter} done",
    ]


# --- what is sent, and when ---------------------------------------------------------


async def test_only_changes_a_device_pulls_send_a_notice(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    datagrams: Datagrams,
) -> None:
    entry = await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    client = await hass_client_no_auth()
    runtime = loaded_runtime(hass)

    # Ordinary requests, even with a new version reported, send nothing.
    await _call_in(client)
    await _call_in(client, version="0.9.0")
    await datagrams.none_within()

    # Two documents set at once: one notice.
    await asyncio.gather(
        runtime.async_set_config(KEY_ID, {"a": 1}),
        runtime.async_set_config(KEY_ID, {"b": 2}, "0.9.0"),
    )
    first = _read(await datagrams.next())
    assert first.changes == {Change.CONFIG}
    await datagrams.none_within()

    # A rename, and a build uploaded but not assigned: nothing the device pulls.
    subentry = next(iter(entry.subentries.values()))
    hass.config_entries.async_update_subentry(entry, subentry, title="Renamed")
    source = Path(hass.config.path("build.bin"))
    await hass.async_add_executor_job(source.write_bytes, b"\x02" * 5000)
    await runtime.async_add_build(FIRMWARE_TYPE, NEW_VERSION, source)
    await hass.async_block_till_done()
    await datagrams.none_within()

    # Assigned: a firmware notice; the download's progress sends nothing more.
    await runtime.async_install_firmware(KEY_ID, NEW_VERSION)
    second = _read(await datagrams.next(), first.counter)
    assert second.changes == {Change.FIRMWARE}
    headers = signed_headers("GET", "/firmware", firmware_version="0.9.0")
    resp = await client.get(f"{BASE}/firmware", headers=headers)
    assert resp.status == 200
    await resp.read()
    await _call_in(client, version=NEW_VERSION)
    await datagrams.none_within()

    # A device that reports another version again (it rolled back) is not urged
    # to download once more; the update's own timeout deals with it.
    await _call_in(client, version="0.9.0")
    await datagrams.none_within()

    # A certificate the device asks for is its answer; a revoked one is news.
    csr = make_csr(ec_key(), KEY_ID)
    headers = signed_headers(
        "POST", "/certificates/request", body=csr, firmware_version="0.9.0"
    )
    resp = await client.post(f"{BASE}/certificates/request", data=csr, headers=headers)
    assert resp.status == 200
    await datagrams.none_within()
    await runtime.async_revoke_certificates(KEY_ID)
    third = _read(await datagrams.next(), second.counter)
    assert third.changes == {Change.CERTIFICATE}

    # An assignment withdrawn is not news either: the device finds nothing to fetch.
    source = Path(hass.config.path("newer.bin"))
    await hass.async_add_executor_job(source.write_bytes, b"\x03" * 5000)
    await runtime.async_add_build(FIRMWARE_TYPE, "1.2.0", source)
    await runtime.async_install_firmware(KEY_ID, "1.2.0")
    fourth = _read(await datagrams.next(), third.counter)
    assert fourth.changes == {Change.FIRMWARE}
    await runtime.async_cancel_update(KEY_ID)
    await datagrams.none_within()


async def test_counters_go_up_across_restarts_and_are_saved_first(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    datagrams: Datagrams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    client = await hass_client_no_auth()
    await _call_in(client)
    before = int(dt_util.utcnow().timestamp() * 1000)
    await _set_config(hass, {"n": 1})
    first = _read(await datagrams.next())
    # On disk by the time it arrives; never below the clock in milliseconds.
    assert hass_storage[COUNTERS_STORE]["data"] == {KEY_ID: first.counter}
    assert first.counter >= before

    # A counter far ahead (from a clock that ran fast) still only goes up.
    hass_storage[COUNTERS_STORE]["data"] = {KEY_ID: first.counter + 10**9}
    assert await hass.config_entries.async_reload(entry.entry_id)
    await _call_in(client)
    await _set_config(hass, {"n": 2})
    second = _read(await datagrams.next())
    assert second.counter == first.counter + 10**9 + 1
    assert hass_storage[COUNTERS_STORE]["data"] == {KEY_ID: second.counter}

    # A counter that cannot be saved is never used.
    counters = loaded_runtime(hass)._notices._store
    with patch.object(counters, "async_save", side_effect=OSError("disk full")):
        await _set_config(hass, {"n": 3})
        await datagrams.none_within()
    assert "Notices not sent: their counters could not be saved: disk full" in (
        caplog.text
    )


async def test_a_removed_device_is_no_longer_followed(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    datagrams: Datagrams,
) -> None:
    entry = await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    client = await hass_client_no_auth()
    runtime = loaded_runtime(hass)
    await _call_in(client)
    await _set_config(hass, {"n": 1})
    await datagrams.next()
    subentry = next(iter(entry.subentries.values()))
    hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    await hass.async_block_till_done()

    # Were it still followed, any of these would send a notice.
    runtime.publish(KEY_ID, FOLLOWED)
    await datagrams.none_within()
    await hass.async_block_till_done()
    assert hass_storage[COUNTERS_STORE]["data"] == {}


async def test_nothing_is_followed_without_a_backend(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    runtime = loaded_runtime(hass)
    assert not runtime.notices_enabled
    # No subscription to what only notices need.
    assert not any(
        wanted & DeviceChange.CONFIG
        for listeners in runtime._feed._listeners.values()
        for wanted, _listener in listeners
    )
    with pytest.raises(ServiceValidationError) as caught:
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": KEY_ID}, blocking=True
        )
    assert caught.value.translation_key == "notices_off"


# --- the notify_device action ---------------------------------------------------


async def test_notify_device_action(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    datagrams: Datagrams,
    hass_read_only_user: MockUser,
) -> None:
    await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    client = await hass_client_no_auth()
    # The device never called: its address is unknown, and broadcasts are off.
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": KEY_ID}, blocking=True
        )
    assert caught.value.translation_key == "notice_not_sent"

    await _call_in(client)
    response = await hass.services.async_call(
        DOMAIN,
        "notify_device",
        {"key_id": KEY_ID},
        blocking=True,
        return_response=True,
    )
    assert response == {"sent_to": [f"udp 127.0.0.1:{datagrams.port}"]}
    assert _read(await datagrams.next()).changes == {Change.CHECK}

    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "notify_device",
            {"key_id": KEY_ID},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": "unknown"}, blocking=True
        )
    await datagrams.none_within()


async def test_notify_device_without_a_secret(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, socket_enabled: None
) -> None:
    await _set_up(hass, mock_config_entry, **{CONF_NOTIFY_UDP: True})
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": KEY_ID}, blocking=True
        )
    assert caught.value.translation_key == "missing_secret"


# --- UDP details -------------------------------------------------------------------


def test_broadcast_addresses_of_the_local_networks() -> None:
    adapters: Any = [
        {
            "enabled": True,
            "ipv4": [
                {"address": "192.168.1.20", "network_prefix": 24},
                {"address": "10.0.0.5", "network_prefix": 8},
                {"address": "192.168.1.21", "network_prefix": 24},
                {"address": "172.16.0.1", "network_prefix": 32},
            ],
        },
        {"enabled": True, "ipv4": [{"address": "127.0.0.1", "network_prefix": 8}]},
        {"enabled": False, "ipv4": [{"address": "172.17.0.1", "network_prefix": 16}]},
    ]
    assert broadcast_addresses(adapters) == ["192.168.1.255", "10.255.255.255"]


async def test_udp_unicast_destinations(datagrams: Datagrams) -> None:
    sender = UdpNotices(datagrams.port, broadcast=False)
    hass_less: Any = None
    await sender.async_open(hass_less)
    try:
        assert sender.send(b"one", "::ffff:127.0.0.1") == [
            f"udp 127.0.0.1:{datagrams.port}"
        ]
        assert await datagrams.next() == b"one"
        assert sender.send(b"two", None) == []
        assert sender.send(b"three", "not an address") == []
        await datagrams.none_within()
    finally:
        sender.close()


# --- MQTT: Home Assistant's integration and a real Mosquitto ----------------------------


@pytest.fixture
def mqtt_temp_dir(tmp_path: Path) -> Iterator[None]:
    """Keep Home Assistant's MQTT certificate files in the test's own folder."""
    folder = tmp_path / "mqtt-temp"
    folder.mkdir()
    with patch(
        "homeassistant.components.mqtt.util.tempfile.gettempdir",
        return_value=str(folder),
    ):
        yield


async def _set_up_mqtt(
    hass: HomeAssistant, config_dir: Path, data: dict[str, Any]
) -> MockConfigEntry:
    """Set up Home Assistant's MQTT integration and wait until it is connected."""
    (config_dir / "configuration.yaml").write_text("")
    entry = MockConfigEntry(domain="mqtt", data=data, version=1, minor_version=2)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    async with asyncio.timeout(15):
        while not hass.data[mqtt.DATA_MQTT].client.connected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return entry


async def test_mqtt_notice_reaches_the_listening_client(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    socket_enabled: None,
    mqtt_temp_dir: None,
    config_dir: Path,
    tmp_path: Path,
    console: Console,
) -> None:
    with mosquitto_brokers() as start_broker:
        port = start_broker(tmp_path, ["allow_anonymous true"])
        await _set_up_mqtt(hass, config_dir, {"broker": "127.0.0.1", "port": port})
        await _set_up(hass, mock_config_entry, **{CONF_NOTIFY_MQTT: True})
        client = await hass_client_no_auth()
        server = str(client.make_url(BASE))
        broker = f"mqtt://127.0.0.1:{port}"
        listen = ["listen", "--server", server, *CREDENTIALS, "--no-udp"]
        task = asyncio.create_task(
            async_main([*listen, "--mqtt", broker, "--count", "1"])
        )
        await console.wait_for("mqtt: connected", stream="err")

        await _set_config(hass, {"interval": 7})
        assert await asyncio.wait_for(task, 15) == 0
        # Retained: a device that connects later still gets the notice.
        late = await async_main([*listen, "--mqtt", broker, "--count", "1"])
        assert late == 0
    console.read()
    topic = f"mqtt providore/{KEY_ID}/notify"
    notices = [line for line in console.out if " from " in line]
    assert len(notices) == 2
    assert notices[0] == notices[1]
    assert notices[0].startswith(f"{KEY_ID} notice ")
    assert notices[0].endswith(f" from {topic}: config")
    assert console.out.count(f"{KEY_ID} config fetched") == 2


def _broker_certificate(authority: CertificateAuthority, folder: Path) -> None:
    """Issue the broker's certificate for 127.0.0.1 from Providore's CA."""
    key = ec_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate = authority.issue(
        csr,
        usage=CertificateUsage.SERVER,
        now=datetime.now(UTC),
        validity=timedelta(days=1),
        crl_url=None,
    )
    (folder / "server.pem").write_text(certificate_pem(certificate))
    (folder / "server.key").write_bytes(key_pem(key))


async def test_mqtt_notice_over_tls_with_providore_s_ca(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    socket_enabled: None,
    mqtt_temp_dir: None,
    config_dir: Path,
    tmp_path: Path,
    console: Console,
) -> None:
    """The broker's certificate comes from Providore's CA; both sides trust only it."""
    await _set_up(hass, mock_config_entry, **{CONF_NOTIFY_MQTT: True})
    client = await hass_client_no_auth()
    authority = loaded_runtime(hass).certificate_authority
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(authority.certificate_pem)
    _broker_certificate(authority, tmp_path)
    with mosquitto_brokers() as start_broker:
        port = start_broker(
            tmp_path,
            [
                f"cafile {ca_file}",
                f"certfile {tmp_path / 'server.pem'}",
                f"keyfile {tmp_path / 'server.key'}",
                "allow_anonymous true",
            ],
        )
        await _set_up_mqtt(
            hass,
            config_dir,
            {
                "broker": "127.0.0.1",
                "port": port,
                "certificate": authority.certificate_pem,
            },
        )
        task = asyncio.create_task(
            async_main(
                [
                    *("listen", "--server", str(client.make_url(BASE))),
                    *CREDENTIALS,
                    *("--no-udp", "--mqtt", f"mqtts://127.0.0.1:{port}"),
                    *("--mqtt-ca", str(ca_file), "--count", "1"),
                ]
            )
        )
        await console.wait_for("mqtt: connected", stream="err")
        await _set_config(hass, {"tls": True})
        assert await asyncio.wait_for(task, 15) == 0
    console.read()
    assert any(
        line.endswith(f"from mqtt providore/{KEY_ID}/notify: config")
        for line in console.out
    )
    assert f"{KEY_ID} config fetched" in console.out


async def test_mqtt_turned_on_without_the_integration(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
    datagrams: Datagrams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MQTT is best effort: one warning, and UDP still carries the notice."""
    await _set_up(
        hass,
        mock_config_entry,
        **{
            CONF_NOTIFY_MQTT: True,
            CONF_NOTIFY_UDP: True,
            CONF_NOTIFY_UDP_PORT: datagrams.port,
        },
    )
    client = await hass_client_no_auth()
    await _call_in(client)
    with caplog.at_level(logging.WARNING):
        await _set_config(hass, {"n": 1})
        await datagrams.next()
        await _set_config(hass, {"n": 2})
        await datagrams.next()
    warnings = [
        record for record in caplog.records if "MQTT integration" in record.message
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


async def test_mqtt_publish_failure_is_logged(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _set_up(hass, mock_config_entry, **{CONF_NOTIFY_MQTT: True})
    with (
        patch(
            "custom_components.providore.push.mqtt.mqtt_config_entry_enabled",
            return_value=True,
        ),
        patch(
            "custom_components.providore.push.mqtt.async_publish",
            side_effect=HomeAssistantError("broker away"),
        ) as publish,
    ):
        sent = await loaded_runtime(hass).async_notify(KEY_ID, {Change.CHECK})
        await hass.async_block_till_done()
    assert sent == [f"mqtt providore/{KEY_ID}/notify"]
    assert publish.call_args.kwargs == {"qos": 1, "retain": True}
    assert f"Could not publish the notice for {KEY_ID}: broker away" in caplog.text


async def test_udp_without_any_socket(caplog: pytest.LogCaptureFixture) -> None:
    sender = UdpNotices(4870, broadcast=False)
    loop = asyncio.get_running_loop()
    hass_less: Any = None
    with patch.object(
        loop, "create_datagram_endpoint", side_effect=OSError("no sockets here")
    ):
        await sender.async_open(hass_less)
    assert "Push notices over UDP are on, but no UDP socket opened" in caplog.text
    assert sender.send(b"notice", "127.0.0.1") == []


async def test_a_device_without_its_key_gets_no_notice(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    datagrams: Datagrams,
) -> None:
    """Its key was lost (a repair says so): a notice could not be signed."""
    await _set_up(
        hass,
        mock_config_entry,
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    await _set_config(hass, {"n": 1})
    await datagrams.none_within()
    assert await loaded_runtime(hass).async_notify(KEY_ID, {Change.CHECK}) == []


async def test_a_removed_device_s_retained_notice_is_cleared(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> None:
    entry = await _set_up(hass, mock_config_entry, **{CONF_NOTIFY_MQTT: True})
    with (
        patch(
            "custom_components.providore.push.mqtt.mqtt_config_entry_enabled",
            return_value=True,
        ),
        patch("custom_components.providore.push.mqtt.async_publish") as publish,
    ):
        hass.config_entries.async_remove_subentry(entry, next(iter(entry.subentries)))
        await hass.async_block_till_done()
    publish.assert_called_once_with(
        hass, f"providore/{KEY_ID}/notify", b"", qos=1, retain=True
    )


def test_a_lost_datagram_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "custom_components.providore"):
        _SendOnly().error_received(OSError("host unreachable"))
    assert "A notice datagram was not delivered: host unreachable" in caplog.text


async def test_esphome_devices_get_no_notice(
    hass: HomeAssistant,
    stored_secrets: dict[str, str],
    datagrams: Datagrams,
) -> None:
    """An ESPHome device speaks ESPHome: it is not followed, and the action says so."""
    await _set_up(
        hass,
        hub_with_esphome_device(),
        **{CONF_NOTIFY_UDP: True, CONF_NOTIFY_UDP_PORT: datagrams.port},
    )
    runtime = loaded_runtime(hass)
    runtime.publish(ESP_KEY_ID, FOLLOWED)
    await datagrams.none_within()
    with pytest.raises(ServiceValidationError) as caught:
        await hass.services.async_call(
            DOMAIN, "notify_device", {"key_id": ESP_KEY_ID}, blocking=True
        )
    assert caught.value.translation_key == "esphome_no_notice"
