"""Finding the server by zeroconf: real mDNS between two interfaces of a private namespace.

The services are advertised with python-zeroconf and the TXT that the integration's
advertisement module builds; the client browses on the other interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from custom_components.providore.advertisement import (
    SERVICE_TYPE,
    advertisement_properties,
    ca_fingerprint,
)
from custom_components.providore.certificate_authority import CertificateAuthority
from providore_client.cli import async_main
from providore_client.discovery import (
    DiscoveredServer,
    DiscoveryError,
    InvalidAdvertisement,
    ca_fingerprints,
    check_ca,
    discover_server,
    read_advertisement,
)
from providore_client.errors import SettingsError

from . import standin_server as standin
from .conftest import KEY_ID, SECRET_KEY
from .netns import CLIENT_ADDRESS, SERVER_ADDRESS, private_network

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    """Return Providore's CA, as the integration creates it."""
    return CertificateAuthority.create("Providore test CA", NOW)


@pytest.fixture
def ca_file(tmp_path: Path, authority: CertificateAuthority) -> Path:
    """Write Providore's CA certificate to a file, as a device keeps it."""
    path = tmp_path / "providore-ca.pem"
    path.write_text(authority.certificate_pem)
    return path


@pytest.fixture
def network(socket_enabled: None) -> Iterator[None]:
    """Move the test into a private network namespace."""
    with private_network():
        yield


@asynccontextmanager
async def advertised(
    services: list[tuple[str, int, dict[str, str]]],
) -> AsyncIterator[None]:
    """Advertise (instance name, port, TXT) services from the server's address."""
    aiozc = AsyncZeroconf(interfaces=[SERVER_ADDRESS])
    infos = [
        AsyncServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            server="homeassistant.local.",
            port=port,
            parsed_addresses=[SERVER_ADDRESS],
            properties=properties,
        )
        for name, port, properties in services
    ]
    try:
        for info in infos:
            # Registering returns the task that announces the service: wait for it too.
            await (await aiozc.async_register_service(info))
        yield
    finally:
        await aiozc.async_unregister_all_services()
        await aiozc.async_close()


def _txt(authority: CertificateAuthority, **changes: str) -> dict[str, str]:
    return advertisement_properties(tls=False, ca_certificate=authority.certificate) | (
        changes
    )


async def test_finds_the_server_and_checks_its_ca(
    network: None, authority: CertificateAuthority, ca_file: Path
) -> None:
    messages: list[str] = []
    async with advertised([("Providore", 8123, _txt(authority))]):
        server = await discover_server(
            inform=messages.append, ca=ca_file, interfaces=[CLIENT_ADDRESS]
        )
    assert server == DiscoveredServer(
        name="Providore",
        host="homeassistant.local",
        address=SERVER_ADDRESS,
        port=8123,
        path="/api/providore",
        tls=False,
        ca_fingerprint=ca_fingerprint(authority.certificate),
    )
    assert server.url == "http://192.0.2.10:8123/api/providore"
    assert messages == []


async def test_passes_over_other_cas_and_protocols(
    network: None, authority: CertificateAuthority, ca_file: Path
) -> None:
    other = CertificateAuthority.create("Another CA", NOW)
    services = [
        ("Providore", 8123, _txt(authority)),
        ("Neighbour", 8124, _txt(other)),
        ("Future", 8125, _txt(authority, protocol="2")),
    ]
    messages: list[str] = []
    async with advertised(services):
        server = await discover_server(
            inform=messages.append, ca=ca_file, within=2, interfaces=[CLIENT_ADDRESS]
        )
    assert server.name == "Providore"
    assert sorted(messages) == [
        "passed over 'Future': speaks protocol '2', this client speaks 1",
        f"passed over 'Neighbour': its CA is not the one in {ca_file}",
    ]


async def test_several_servers_are_not_guessed_between(
    network: None, authority: CertificateAuthority
) -> None:
    other = CertificateAuthority.create("Another CA", NOW)
    services = [("Providore", 8123, _txt(authority)), ("Other", 8124, _txt(other))]
    async with advertised(services):
        with pytest.raises(DiscoveryError, match="found 2 Providore servers") as caught:
            await discover_server(inform=print, within=2, interfaces=[CLIENT_ADDRESS])
    assert "choose one with --server" in str(caught.value)
    assert "'Other' at http://192.0.2.10:8124/api/providore" in str(caught.value)


async def test_cli_uses_the_server_it_finds(
    network: None,
    authority: CertificateAuthority,
    ca_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = standin.StandIn(
        secrets={KEY_ID: SECRET_KEY}, documents={KEY_ID: {"interval": 5}}
    )
    runner = web.AppRunner(server.app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, SERVER_ADDRESS, 0)
        await site.start()
        port: int = runner.addresses[0][1]
        credentials = ["--device-id", KEY_ID, "--secret", SECRET_KEY]
        async with advertised([("Providore", port, _txt(authority))]):
            status = await async_main(["config", *credentials, "--ca", str(ca_file)])
            config = capsys.readouterr()
            assert status == 0, config.err
            assert await async_main(["discover"]) == 0
            discover = capsys.readouterr()
    finally:
        await runner.cleanup()
    url = f"http://{SERVER_ADDRESS}:{port}/api/providore"
    assert config.out == '{\n  "interval": 5\n}\n'
    assert config.err == (
        f"providore-client: found 'Providore' at {url} by zeroconf "
        f"(its CA is in {ca_file})\n"
    )
    assert discover.out == url + "\n"
    assert discover.err == (
        f"providore-client: found 'Providore' at {url} by zeroconf "
        "(CA not checked: no --ca)\n"
    )
    assert [request[1] for request in server.requests] == ["/config"]


async def test_no_zeroconf_on_a_missing_interface(network: None) -> None:
    with pytest.raises(DiscoveryError, match="cannot look for a server by zeroconf"):
        await discover_server(inform=print, interfaces=["203.0.113.1"])


async def test_cli_without_a_server_is_one_line(
    network: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["config", "--device-id", KEY_ID, "--secret", SECRET_KEY]
    assert await async_main([*argv, "--discover-wait", "0.3"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "providore-client: error: no Providore server found by zeroconf within 0.3 s: "
        "give --server, PROVIDORE_SERVER or server in the config file\n"
    )


def _read(**overrides: Any) -> DiscoveredServer:
    arguments: dict[str, Any] = {
        "name": f"Providore.{SERVICE_TYPE}",
        "server": "ha.local.",
        "port": 8123,
        "addresses": ["192.0.2.10"],
        "properties": {b"path": b"/api/providore", b"protocol": b"1", b"tls": b"0"},
    } | overrides
    return read_advertisement(**arguments)


def test_read_advertisement_builds_the_url() -> None:
    assert _read().url == "http://192.0.2.10:8123/api/providore"
    tls = {b"path": b"/api/providore/", b"protocol": b"1", b"tls": b"1"}
    assert _read(properties=tls).url == "https://ha.local:8123/api/providore"
    assert _read(addresses=["fe80::1", "2001:db8::5"]).url == (
        "http://[2001:db8::5]:8123/api/providore"
    )
    assert _read(addresses=["2001:db8::5", "192.0.2.7"]).address == "192.0.2.7"
    assert _read().ca_fingerprint is None
    assert _read().describe() == "'Providore' at http://192.0.2.10:8123/api/providore"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"properties": {b"path": b"/api/providore", b"tls": b"0"}}, "protocol"),
        ({"properties": {b"protocol": b"1", b"tls": b"0"}}, "invalid path"),
        (
            {"properties": {b"path": b"/api/../x", b"protocol": b"1", b"tls": b"0"}},
            "invalid path '/api/../x'",
        ),
        (
            {"properties": {b"path": b"api", b"protocol": b"1", b"tls": b"0"}},
            "invalid path",
        ),
        (
            {"properties": {b"path": b"/a?b", b"protocol": b"1", b"tls": b"0"}},
            "invalid path",
        ),
        ({"properties": {b"path": b"/a", b"protocol": b"1"}}, "invalid tls"),
        (
            {"properties": {b"path": b"/a", b"protocol": b"1", b"tls": b"yes"}},
            "invalid tls 'yes'",
        ),
        (
            {
                "properties": {
                    b"path": b"/a",
                    b"protocol": b"1",
                    b"tls": b"0",
                    b"ca": b"AB:CD",
                }
            },
            "invalid ca 'AB:CD'",
        ),
        ({"server": "bad_host.local."}, "invalid host name"),
        ({"server": None}, r"invalid host name \(missing\)"),
        ({"port": None}, "no port"),
        ({"addresses": ["fe80::1"]}, "no usable address"),
        (
            {"properties": {b"protocol": b"\x1b[31m1"}},
            r"speaks protocol '\\x1b\[31m1', this",
        ),
    ],
)
def test_read_advertisement_refuses(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidAdvertisement, match=reason):
        _read(**overrides)


def test_ca_fingerprints_of_a_bundle(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    other = CertificateAuthority.create("Web server CA", NOW)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(other.certificate_pem + authority.certificate_pem)
    fingerprints = ca_fingerprints(bundle)
    assert fingerprints == {
        ca_fingerprint(authority.certificate),
        ca_fingerprint(other.certificate),
    }
    server = _read(
        properties={
            b"path": b"/a",
            b"protocol": b"1",
            b"tls": b"0",
            b"ca": ca_fingerprint(authority.certificate).encode(),
        }
    )
    check_ca(server, bundle, fingerprints)
    with pytest.raises(InvalidAdvertisement, match="advertises no CA fingerprint"):
        check_ca(_read(), bundle, fingerprints)


def test_ca_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        ca_fingerprints(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(SettingsError, match="holds no PEM certificate"):
        ca_fingerprints(tmp_path / "junk.pem")


def test_server_side_txt() -> None:
    authority = CertificateAuthority.create("Providore", NOW)
    assert advertisement_properties(tls=True, ca_certificate=authority.certificate) == {
        "path": "/api/providore",
        "protocol": "1",
        "tls": "1",
        "ca": authority.fingerprint.replace(":", "").lower(),
    }
    for path in ("api", "/api/../x", "/api/", "/a b", ""):
        with pytest.raises(ValueError, match="not an API base path"):
            advertisement_properties(
                tls=False, ca_certificate=authority.certificate, path=path
            )
