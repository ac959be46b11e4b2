"""End to end with a real Mosquitto broker: Providore's certificates at the TLS door.

The device gets certificates through Home Assistant's HTTP API; the broker trusts
the CA and loads the CRL that the public endpoints serve, and requires a client
certificate. A client with the current certificate is let in; one with the
certificate it superseded is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
import ipaddress
from pathlib import Path
import socket
import ssl

from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.certificate_authority import (
    CertificateAuthority,
    CertificateUsage,
    certificate_pem,
)

from .conftest import KEY_ID
from .device import BASE, signed_headers
from .mosquitto import mosquitto_brokers
from .pki import ec_key, key_pem, make_csr, openssl_rsa_csr

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"

type StartBroker = Callable[[Path], int]


@pytest.fixture
def start_broker(socket_enabled: None) -> Iterator[StartBroker]:
    """Return a function that starts Mosquitto requiring a client certificate.

    The folder must hold ca.pem, crl.pem, server.pem and server.key. Every broker
    started is killed when the test ends.
    """
    with mosquitto_brokers() as start_mosquitto:

        def start(folder: Path) -> int:
            return start_mosquitto(
                folder,
                [
                    f"cafile {folder / 'ca.pem'}",
                    f"crlfile {folder / 'crl.pem'}",
                    f"certfile {folder / 'server.pem'}",
                    f"keyfile {folder / 'server.key'}",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "allow_anonymous false",
                ],
            )

        yield start


def _broker_certificate(authority: CertificateAuthority, folder: Path) -> None:
    """Issue the broker's server certificate (for 127.0.0.1) from the same CA."""
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
        now=dt_util.utcnow(),
        validity=timedelta(days=1),
        crl_url=None,
    )
    (folder / "server.pem").write_text(certificate_pem(certificate))
    (folder / "server.key").write_bytes(key_pem(key))


def _connect_packet(client_id: str) -> bytes:
    """Return an MQTT 3.1.1 CONNECT packet with a clean session and no credentials."""
    identifier = client_id.encode()
    variable = b"\x00\x04MQTT" + b"\x04" + b"\x02" + (60).to_bytes(2)
    payload = len(identifier).to_bytes(2) + identifier
    remaining = variable + payload
    assert len(remaining) < 128
    return b"\x10" + bytes([len(remaining)]) + remaining


@dataclass(frozen=True)
class Outcome:
    """What the broker answered to a TLS client with a certificate."""

    connack: bytes | None
    error: str | None


def _mqtt_connect(port: int, folder: Path, certificate: Path, key: Path) -> Outcome:
    """Connect over TLS with a client certificate and send CONNECT."""
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    context.load_cert_chain(certificate, key)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(_connect_packet(KEY_ID))
            reply = b""
            while len(reply) < 4 and (chunk := tls.recv(4 - len(reply))):
                reply += chunk
    except (ssl.SSLError, OSError) as err:
        return Outcome(None, str(err))
    return Outcome(reply, None)


async def _fetch(client: TestClient, name: str) -> str:
    resp = await client.get(f"{BASE}/certificates/{name}")
    assert resp.status == 200
    return await resp.text()


async def _request_certificate(
    client: TestClient, csr: bytes, firmware_version: str
) -> str:
    path = "/certificates/request"
    headers = signed_headers("POST", path, body=csr, firmware_version=firmware_version)
    resp = await client.post(f"{BASE}{path}", data=csr, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_mosquitto_accepts_current_and_refuses_superseded(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    start_broker: StartBroker,
    tmp_path: Path,
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    client = await hass_client_no_auth()
    run = hass.async_add_executor_job

    # First certificate: the original command-line client's RSA key and CSR.
    old = await run(openssl_rsa_csr, tmp_path, KEY_ID)
    old_pem = await _request_certificate(client, old.csr_pem, "1.0.0")
    await run((tmp_path / "old.pem").write_text, old_pem)

    # The broker trusts the CA and loads the CRL, both from the public endpoints.
    authority = init_integration.runtime_data._certificates.authority
    await run((tmp_path / "ca.pem").write_text, await _fetch(client, "ca.pem"))
    await run((tmp_path / "crl.pem").write_text, await _fetch(client, "crl.pem"))
    await run(_broker_certificate, authority, tmp_path)
    port = await run(start_broker, tmp_path)

    outcome = await run(
        _mqtt_connect, port, tmp_path, tmp_path / "old.pem", old.key_path
    )
    assert outcome == Outcome(CONNACK_ACCEPTED, None)

    # A new certificate (new EC key) supersedes the first one.
    key = ec_key()
    new_pem = await _request_certificate(client, make_csr(key, KEY_ID), "1.0.1")
    await run((tmp_path / "new.pem").write_text, new_pem)
    await run((tmp_path / "new.key").write_bytes, key_pem(key))
    crl = await _fetch(client, "crl.pem")
    assert x509.load_pem_x509_crl(
        crl.encode()
    ).get_revoked_certificate_by_serial_number(
        x509.load_pem_x509_certificate(old_pem.encode()).serial_number
    )

    # The broker reads the CRL at start: restart it with the new one.
    await run((tmp_path / "crl.pem").write_text, crl)
    port = await run(start_broker, tmp_path)

    outcome = await run(
        _mqtt_connect, port, tmp_path, tmp_path / "new.pem", tmp_path / "new.key"
    )
    assert outcome == Outcome(CONNACK_ACCEPTED, None)
    outcome = await run(
        _mqtt_connect, port, tmp_path, tmp_path / "old.pem", old.key_path
    )
    # The same certificate the first broker let in; only the CRL differs.
    assert outcome.connack is None
    assert outcome.error is not None
    log = await run((tmp_path / "mosquitto.log").read_text)
    last_connection = log.rsplit("New connection from", 1)[1]
    assert "certificate verify failed" in last_connection


def test_connect_packet_shape() -> None:
    """The hand-written CONNECT matches the MQTT 3.1.1 layout byte for byte."""
    assert _connect_packet("ab") == (b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ab")
