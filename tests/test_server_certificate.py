"""Home Assistant's HTTPS certificate from Providore's CA: hosts, files, openssl, real TLS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import ipaddress
import json
from pathlib import Path
import ssl
import stat
import threading
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.providore import server_certificate
from custom_components.providore.certificate_authority import CertificateAuthority
from custom_components.providore.server_certificate import (
    CERTIFICATE_FILE,
    KEY_FILE,
    MAX_HOSTS,
    InvalidHosts,
    issue_server_certificate,
    parse_hosts,
    write_server_certificate,
)
from providore_client.api import open_session
from providore_client.errors import ConnectionFailed
from providore_client.esphome import fetch_update

from .conftest import loaded_runtime
from .esphome_setup import (
    ESP_KEY_ID,
    ESP_TOKEN,
    TOKENS_STORE,
    hub_with_esphome_device,
    stored_tokens,
)
from .pki import openssl

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MANIFEST = json.dumps(
    {
        "name": "acme.kitchen_sensor",
        "version": "1.1.0",
        "builds": [
            {"chipFamily": "ESP32-C3", "ota": {"path": "a.bin", "md5": "0" * 32}}
        ],
    }
).encode()


@pytest.fixture
async def esphome_hub(
    hass: HomeAssistant, hass_storage: dict[str, Any], stored_secrets: dict[str, str]
) -> MockConfigEntry:
    """Set up a hub whose ESPHome device has its token."""
    hass_storage[TOKENS_STORE] = stored_tokens({ESP_KEY_ID: ESP_TOKEN})
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


# --- the hosts ---------------------------------------------------------------------


def test_parse_hosts() -> None:
    names = parse_hosts(
        ["HomeAssistant.local", " 192.168.1.20 ", "", "fd00::1", "ha.lan.", "ha.lan"]
    )

    assert names == [
        x509.DNSName("homeassistant.local"),
        x509.IPAddress(ipaddress.ip_address("192.168.1.20")),
        x509.IPAddress(ipaddress.ip_address("fd00::1")),
        x509.DNSName("ha.lan"),
    ]


@pytest.mark.parametrize(
    "host",
    [
        "https://ha.lan:8123",
        "*.lan",
        "ha lan",
        "-ha.lan",
        "ha-.lan",
        "ha..lan",
        "a" * 64 + ".lan",
        ("a" * 60 + ".") * 5 + "lan",
        "hä.lan",
        "ha.lan/x",
    ],
)
def test_parse_hosts_refuses(host: str) -> None:
    with pytest.raises(InvalidHosts) as raised:
        parse_hosts(["ha.lan", host])
    assert raised.value.host == host.strip().lower()[:80]


@pytest.mark.parametrize(
    "hosts", [[], ["", "  "], [f"h{number}.lan" for number in range(MAX_HOSTS + 1)]]
)
def test_parse_hosts_needs_one_to_twenty(hosts: list[str]) -> None:
    with pytest.raises(InvalidHosts):
        parse_hosts(hosts)


# --- the certificate and its files --------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create("test home", NOW - timedelta(days=1))


def test_issue_and_write(authority: CertificateAuthority, tmp_path: Path) -> None:
    names = parse_hosts(["ha.lan", "192.168.1.20"])
    issued = issue_server_certificate(
        authority, names, datetime.now(UTC), timedelta(days=30)
    )
    (tmp_path / CERTIFICATE_FILE).write_text("an older certificate")

    certificate_path, key_path = write_server_certificate(tmp_path, issued)

    assert (certificate_path, key_path) == (
        tmp_path / CERTIFICATE_FILE,
        tmp_path / KEY_FILE,
    )
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(certificate_path.stat().st_mode) == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        CERTIFICATE_FILE,
        KEY_FILE,
    ]
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert certificate.public_key() == key.public_key()
    assert certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value == x509.SubjectAlternativeName(names)
    assert list(
        certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert issued.hosts == ("ha.lan", "192.168.1.20")
    assert issued.not_after == certificate.not_valid_after_utc
    # The real openssl verifies it against the CA, as a TLS server certificate.
    (tmp_path / "ca.pem").write_text(authority.certificate_pem)
    done = openssl(
        "verify",
        "-CAfile",
        "ca.pem",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "ha.lan",
        CERTIFICATE_FILE,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_failed_write_changes_neither_file(
    authority: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CERTIFICATE_FILE).write_text("old certificate")
    (tmp_path / KEY_FILE).write_text("old key")
    issued = issue_server_certificate(
        authority, parse_hosts(["ha.lan"]), datetime.now(UTC), timedelta(days=1)
    )
    original = server_certificate._write_temporary

    def failing(path: Path, text: str, mode: int) -> Path:
        if path.name == CERTIFICATE_FILE:
            raise OSError(28, "No space left on device")
        return original(path, text, mode)

    monkeypatch.setattr(server_certificate, "_write_temporary", failing)

    with pytest.raises(OSError, match="No space left"):
        write_server_certificate(tmp_path, issued)

    assert (tmp_path / CERTIFICATE_FILE).read_text() == "old certificate"
    assert (tmp_path / KEY_FILE).read_text() == "old key"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        CERTIFICATE_FILE,
        KEY_FILE,
    ]


# --- the options step -------------------------------------------------------------


async def _open_step(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "server_certificate"}
    )


async def test_options_step_issues_the_certificate(
    hass: HomeAssistant, esphome_hub: MockConfigEntry, config_dir: Path
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    result = await _open_step(hass, esphome_hub)
    assert result["type"] is FlowResultType.FORM
    suggested = next(iter(result["data_schema"].schema)).description["suggested_value"]
    assert suggested == ["ha.lan", "homeassistant.local"]

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"hosts": ["ha.lan", "https://ha.lan"]}
    )
    assert result["errors"] == {"hosts": "invalid_hosts"}
    assert result["description_placeholders"]["host"] == "https://ha.lan"

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"hosts": ["ha.lan", "192.168.1.20"]}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "server_certificate_issued"
    placeholders = result["description_placeholders"]
    assert placeholders["hosts"] == "ha.lan, 192.168.1.20"
    assert placeholders["certificate"] == str(config_dir / CERTIFICATE_FILE)
    assert placeholders["key"] == str(config_dir / KEY_FILE)
    key = await hass.async_add_executor_job((config_dir / KEY_FILE).read_text)
    assert key not in str(result)
    assert esphome_hub.data["server_certificate"]["hosts"] == ["ha.lan", "192.168.1.20"]
    # Over HTTPS to one of these names, ESPHome devices trust only Providore's CA.
    await async_process_ha_core_config(hass, {"internal_url": "https://ha.lan:8123"})
    snippet = loaded_runtime(hass).esphome_snippet(ESP_KEY_ID)
    assert snippet.ca_certificate_file == "providore_ca.pem"
    assert snippet.warnings == ()


async def test_options_step_reports_a_failed_write(
    hass: HomeAssistant, esphome_hub: MockConfigEntry
) -> None:
    result = await _open_step(hass, esphome_hub)

    with patch(
        "custom_components.providore.runtime.write_server_certificate",
        side_effect=OSError(28, "No space left on device"),
    ):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"hosts": ["ha.lan"]}
        )

    assert result["errors"] == {"base": "server_certificate_unwritable"}
    assert result["description_placeholders"]["error"] == "No space left on device"
    assert "server_certificate" not in esphome_hub.data


async def test_options_step_suggests_the_mdns_name_without_a_url(
    hass: HomeAssistant, esphome_hub: MockConfigEntry
) -> None:
    hass.config.api = None

    result = await _open_step(hass, esphome_hub)

    suggested = next(iter(result["data_schema"].schema)).description["suggested_value"]
    assert suggested == ["homeassistant.local"]


async def test_options_step_aborts_while_not_loaded(
    hass: HomeAssistant, esphome_hub: MockConfigEntry
) -> None:
    result = await hass.config_entries.options.async_init(esphome_hub.entry_id)
    assert await hass.config_entries.async_unload(esphome_hub.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "server_certificate"}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


# --- real TLS ---------------------------------------------------------------------


class _ManifestHandler(BaseHTTPRequestHandler):
    """Serves the manifest at any path, with a Content-Length, as Providore does."""

    def do_GET(self) -> None:  # noqa: N802 (http.server names it)
        """Answer with the manifest."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(MANIFEST)))
        self.end_headers()
        self.wfile.write(MANIFEST)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet."""


@contextmanager
def _tls_server(certificate: Path, key: Path) -> Iterator[int]:
    """Serve HTTPS with the files on 127.0.0.1 in a thread of its own; yield its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ManifestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.enable_socket
async def test_a_device_trusting_only_the_ca_reaches_the_server(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    tmp_path: Path,
    socket_enabled: None,
) -> None:
    """Served with the issued files, ESPHome's check trusting only ca.pem passes."""
    runtime = loaded_runtime(hass)
    _, certificate, key = await runtime.async_issue_server_certificate(
        parse_hosts(["localhost", "127.0.0.1"])
    )
    ca = tmp_path / "ca.pem"
    other_ca = tmp_path / "other.pem"
    await hass.async_add_executor_job(
        ca.write_text, runtime.certificate_authority.certificate_pem
    )
    other = await hass.async_add_executor_job(CertificateAuthority.create, "other", NOW)
    await hass.async_add_executor_job(other_ca.write_text, other.certificate_pem)
    server = await hass.async_add_executor_job(_tls_server, certificate, key)
    port = await hass.async_add_executor_job(server.__enter__)
    try:
        for host in ("localhost", "127.0.0.1"):
            async with open_session(ca) as session:
                update = await fetch_update(
                    session, f"https://{host}:{port}/manifest.json", "ESP32-C3"
                )
            assert update.latest_version == "1.1.0"
        async with open_session(other_ca) as session:
            with pytest.raises(ConnectionFailed, match="not trusted"):
                await fetch_update(
                    session, f"https://localhost:{port}/manifest.json", "ESP32-C3"
                )
    finally:
        await hass.async_add_executor_job(server.__exit__, None, None, None)
