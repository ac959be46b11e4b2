"""The certificate endpoints end to end, through Home Assistant's real HTTP stack.

A device posts a CSR (made with `cryptography` or the openssl command line),
gets its certificate, and openssl checks it against the CA and the CRL that the
public endpoints serve.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
import json
from pathlib import Path
from unittest.mock import patch

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.helpers.network import NoURLAvailableError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.certificates import MAX_CERTIFICATES_PER_DAY
from custom_components.providore.const import CONF_CERTIFICATE_USAGE

from .conftest import KEY_ID, SECRET_KEY
from .device import BASE, response_is_signed, signed_headers
from .pki import (
    ec_key,
    make_csr,
    openssl_rsa_csr,
    openssl_verify,
    rsa_key,
    tamper_signature,
)

REQUEST_PATH = "/certificates/request"
CRL_URL = "http://ha.lan:8123/api/providore/certificates/crl.pem"
PEM = "application/x-pem-file"


@pytest.fixture
async def client(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> TestClient:
    """Return a client for the device API of a hub that knows its own URL."""
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    return await hass_client_no_auth()


async def _request(
    client: TestClient, csr: bytes, headers: dict[str, str] | None = None
) -> ClientResponse:
    headers = headers or signed_headers("POST", REQUEST_PATH, body=csr)
    return await client.post(f"{BASE}{REQUEST_PATH}", data=csr, headers=headers)


async def _issued(
    client: TestClient, csr: bytes, firmware_version: str = "1.0.0"
) -> str:
    """Request a certificate; check the answer is a signed PEM; return it."""
    headers = signed_headers(
        "POST", REQUEST_PATH, body=csr, firmware_version=firmware_version
    )
    resp = await _request(client, csr, headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == PEM
    body = await resp.read()
    assert response_is_signed(body, resp.headers)
    text = body.decode()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    return text


async def _public(client: TestClient, name: str) -> str:
    resp = await client.get(f"{BASE}/certificates/{name}")
    assert resp.status == 200
    assert resp.content_type == PEM
    for header in ("created-at", "expiry", "signature"):
        assert header not in resp.headers
    return await resp.text()


async def _current(client: TestClient) -> ClientResponse:
    return await client.get(
        f"{BASE}/certificate", headers=signed_headers("GET", "/certificate")
    )


async def _verify(
    hass: HomeAssistant,
    tmp_path: Path,
    ca: str,
    certificate: str,
    crl: str | None = None,
) -> tuple[int, str]:
    done = await hass.async_add_executor_job(
        lambda: openssl_verify(tmp_path, ca, certificate, crl_pem=crl)
    )
    return done.returncode, done.stdout + done.stderr


async def test_csr_exchange_with_ec_key(
    hass: HomeAssistant, client: TestClient, tmp_path: Path
) -> None:
    """A device sends an EC CSR, gets a client certificate openssl accepts."""
    key = await hass.async_add_executor_job(ec_key)
    csr = await hass.async_add_executor_job(make_csr, key, KEY_ID)
    pem = await _issued(client, csr)

    certificate = x509.load_pem_x509_certificate(pem.encode())
    assert certificate.public_key() == key.public_key()
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    points = certificate.extensions.get_extension_for_class(
        x509.CRLDistributionPoints
    ).value
    assert points[0].full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert validity.days == 365

    ca = await _public(client, "ca.pem")
    crl = await _public(client, "crl.pem")
    assert crl.startswith("-----BEGIN X509 CRL-----")
    code, output = await _verify(hass, tmp_path, ca, pem, crl)
    assert code == 0, output

    # GET /certificate gives the same certificate back, signed.
    resp = await _current(client)
    assert resp.status == 200
    assert resp.content_type == PEM
    body = await resp.read()
    assert response_is_signed(body, resp.headers)
    assert body.decode() == pem


async def test_command_line_client_and_superseding(
    hass: HomeAssistant, client: TestClient, tmp_path: Path
) -> None:
    """The original client's RSA CSR works; a new certificate revokes the old one."""
    request = await hass.async_add_executor_job(openssl_rsa_csr, tmp_path, KEY_ID)
    first = await _issued(client, request.csr_pem)
    crl_before = await _public(client, "crl.pem")
    # The same CSR again (a new request: the same one would be a replay).
    second = await _issued(client, request.csr_pem, firmware_version="1.0.1")
    assert first != second

    ca = await _public(client, "ca.pem")
    crl = await _public(client, "crl.pem")
    assert crl != crl_before
    code, output = await _verify(hass, tmp_path, ca, first)
    assert code == 0, output  # still a good signature without the CRL...
    code, output = await _verify(hass, tmp_path, ca, first, crl)
    assert code != 0  # ...but revoked with it.
    assert "certificate revoked" in output
    code, output = await _verify(hass, tmp_path, ca, second, crl)
    assert code == 0, output

    serial = x509.load_pem_x509_certificate(first.encode()).serial_number
    entry = x509.load_pem_x509_crl(
        crl.encode()
    ).get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.superseded

    resp = await _current(client)
    assert (await resp.read()).decode() == second


@pytest.mark.parametrize(
    ("make_csr_pem", "reason"),
    [
        (lambda: b"", "not a PEM certificate request"),
        (lambda: b"garbage", "not a PEM certificate request"),
        (
            lambda: tamper_signature(make_csr(ec_key(), KEY_ID)),
            "CSR signature does not verify",
        ),
        (lambda: make_csr(rsa_key(1024), KEY_ID), "RSA key smaller than 2048 bits"),
        (
            lambda: make_csr(ec_key(ec.SECP521R1()), KEY_ID),
            "EC key must be on P-256 or P-384",
        ),
        (
            lambda: make_csr(ec_key(), "0badc0de"),
            "CSR common name must equal the key id",
        ),
    ],
    ids=["empty", "garbage", "bad-signature", "rsa-1024", "p-521", "wrong-cn"],
)
async def test_bad_csr_issues_nothing(
    hass: HomeAssistant,
    client: TestClient,
    init_integration: MockConfigEntry,
    make_csr_pem: Callable[[], bytes],
    reason: str,
) -> None:
    csr = make_csr_pem()
    resp = await _request(client, csr)
    assert resp.status == 400
    text = await resp.text()
    assert json.loads(text) == {"message": reason}
    assert SECRET_KEY not in text
    for header in ("created-at", "expiry", "signature"):
        assert header not in resp.headers

    assert (await _current(client)).status == 404
    certificates = init_integration.runtime_data._certificates
    assert certificates._records == {}


async def test_too_large_csr_issues_nothing(
    init_integration: MockConfigEntry, client: TestClient
) -> None:
    csr = make_csr(ec_key(), KEY_ID) + b"\n" * (64 * 1024)
    resp = await _request(client, csr)
    assert resp.status == 413
    assert (await _current(client)).status == 404
    assert init_integration.runtime_data._certificates._records == {}


async def test_replayed_request_is_refused(
    init_integration: MockConfigEntry, client: TestClient
) -> None:
    csr = make_csr(ec_key(), KEY_ID)
    headers = signed_headers("POST", REQUEST_PATH, body=csr)
    resp = await _request(client, csr, headers)
    assert resp.status == 200
    resp = await _request(client, csr, headers)
    assert resp.status == 401
    assert len(list(init_integration.runtime_data._certificates._all_records())) == 1


async def test_unsigned_request_is_refused(
    init_integration: MockConfigEntry, client: TestClient
) -> None:
    csr = make_csr(ec_key(), KEY_ID)
    resp = await client.post(f"{BASE}{REQUEST_PATH}", data=csr)
    assert resp.status == 400
    resp = await client.get(f"{BASE}/certificate")
    assert resp.status == 400
    assert init_integration.runtime_data._certificates._records == {}


async def test_no_crl_url_without_a_known_url(
    init_integration: MockConfigEntry, client: TestClient
) -> None:
    """When Home Assistant does not know its URL, certificates have no CRL pointer."""
    with patch(
        "custom_components.providore.certificates.get_url",
        side_effect=NoURLAvailableError,
    ):
        pem = await _issued(client, make_csr(ec_key(), KEY_ID))
    certificate = x509.load_pem_x509_certificate(pem.encode())
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)


async def test_no_certificate_yet(client: TestClient) -> None:
    resp = await _current(client)
    assert resp.status == 404
    assert json.loads(await resp.text()) == {
        "message": "no certificate for this device"
    }


async def test_server_usage_from_the_device_settings(
    hass: HomeAssistant, init_integration: MockConfigEntry, client: TestClient
) -> None:
    subentry: ConfigSubentry = next(iter(init_integration.subentries.values()))
    hass.config_entries.async_update_subentry(
        init_integration,
        subentry,
        data=subentry.data | {CONF_CERTIFICATE_USAGE: "server"},
    )
    await hass.async_block_till_done()

    pem = await _issued(client, make_csr(ec_key(), KEY_ID))
    eku = x509.load_pem_x509_certificate(pem.encode()).extensions
    assert list(eku.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]


async def test_public_files_need_a_loaded_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    assert (await client.get(f"{BASE}/certificates/ca.pem")).status == 200
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    for name in ("ca.pem", "crl.pem"):
        resp = await client.get(f"{BASE}/certificates/{name}")
        assert resp.status == 404


async def test_certificates_per_day_are_limited(
    init_integration: MockConfigEntry,
    client: TestClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    """One device (or a leaked key) cannot grow the records and the CRL without bound."""
    for _ in range(MAX_CERTIFICATES_PER_DAY):
        await _issued(client, make_csr(ec_key(), KEY_ID))
    resp = await _request(client, make_csr(ec_key(), KEY_ID))
    assert resp.status == 429
    assert json.loads(await resp.text()) == {"message": "too many certificate requests"}
    retry_after = int(resp.headers["Retry-After"])
    assert 0 < retry_after <= 24 * 3600
    certificates = init_integration.runtime_data._certificates
    assert len(list(certificates._all_records())) == MAX_CERTIFICATES_PER_DAY

    freezer.tick(timedelta(seconds=retry_after))
    await _issued(client, make_csr(ec_key(), KEY_ID))


async def test_expired_records_are_dropped(
    init_integration: MockConfigEntry,
    client: TestClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    await _issued(client, make_csr(ec_key(), KEY_ID))
    await _issued(client, make_csr(ec_key(), KEY_ID))
    certificates = init_integration.runtime_data._certificates
    assert len(list(certificates._all_records())) == 2
    newest = certificates.newest(KEY_ID)
    freezer.tick(timedelta(days=366))
    await certificates.async_publish_crl()
    # Only the device's newest record is left, to tell that its certificate expired.
    assert certificates._records == {KEY_ID: [newest]}
    crl = x509.load_pem_x509_crl(certificates.crl_pem.encode())
    assert len(crl) == 0


async def test_expired_ca_issues_nothing(
    init_integration: MockConfigEntry,
    client: TestClient,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.tick(timedelta(days=3651))
    resp = await _request(client, make_csr(ec_key(), KEY_ID))
    assert resp.status == 503
    assert json.loads(await resp.text()) == {"message": "certificate authority expired"}
    assert init_integration.runtime_data._certificates._records == {}
