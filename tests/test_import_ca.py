"""Importing the user's own CA through the hub's options menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.certificate_authority import CertificateUsage
from custom_components.providore.const import (
    CONF_CA_CERTIFICATE,
    CONF_CA_PRIVATE_KEY,
    DOMAIN,
)

from .conftest import KEY_ID
from .pki import ec_key, key_pem, make_csr, openssl_ca, openssl_verify

PASSWORD = "correct horse"


async def _open_import(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "import_ca"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "import_ca"
    assert result["errors"] == {}
    return result["flow_id"]


def _suggested(result: Any) -> dict[str, Any]:
    return {
        key.schema: key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def test_import_ca(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    tmp_path: Path,
) -> None:
    """An encrypted CA made by openssl is imported; earlier certificates are forgotten."""
    entry = init_integration
    certificate, key = await hass.async_add_executor_job(
        lambda: openssl_ca(tmp_path, password=PASSWORD)
    )
    old = entry.runtime_data._certificates
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    await old.async_issue(
        KEY_ID,
        csr,
        CertificateUsage.CLIENT,
        entry.runtime_data.settings.certificate_validity,
    )
    options = dict(entry.options)

    flow_id = await _open_import(hass, entry)
    result = await hass.config_entries.options.async_configure(
        flow_id,
        {
            CONF_CA_CERTIFICATE: certificate,
            CONF_CA_PRIVATE_KEY: key,
            CONF_PASSWORD: PASSWORD,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "ca_imported"
    assert dict(entry.options) == options
    assert entry.state is ConfigEntryState.LOADED
    certificates = entry.runtime_data._certificates
    assert certificates.authority.certificate_pem.strip() == certificate.strip()
    assert (
        certificates.current(
            KEY_ID, certificates.authority.certificate.not_valid_before_utc
        )
        is None
    )
    # Stored decrypted in the private store, never with the password.
    stored = hass_storage[f"{DOMAIN}.ca"]["data"]
    assert "ENCRYPTED" not in stored["private_key"]
    assert PASSWORD not in str(hass_storage)

    client = await hass_client_no_auth()
    served = await (await client.get("/api/providore/certificates/ca.pem")).text()
    assert served.strip() == certificate.strip()
    crl = x509.load_pem_x509_crl(
        await (await client.get("/api/providore/certificates/crl.pem")).read()
    )
    assert crl.issuer == certificates.authority.certificate.subject

    # What the imported CA issues, openssl accepts against it.
    issued = await certificates.async_issue(
        KEY_ID,
        csr,
        CertificateUsage.CLIENT,
        entry.runtime_data.settings.certificate_validity,
    )
    done = await hass.async_add_executor_job(
        lambda: openssl_verify(
            tmp_path, certificate, issued.pem, crl_pem=certificates.crl_pem
        )
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_import_same_ca_keeps_certificates(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    certificates = init_integration.runtime_data._certificates
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    issued = await certificates.async_issue(
        KEY_ID,
        csr,
        CertificateUsage.CLIENT,
        init_integration.runtime_data.settings.certificate_validity,
    )
    flow_id = await _open_import(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        flow_id,
        {
            CONF_CA_CERTIFICATE: certificates.authority.certificate_pem,
            CONF_CA_PRIVATE_KEY: certificates.authority.private_key_pem,
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    reloaded = init_integration.runtime_data._certificates
    assert reloaded.current(KEY_ID, issued.not_before) == issued


def _leaf_certificate() -> tuple[str, str]:
    """Return a self-signed certificate that is not a CA, with its key."""
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mosquitto")])
    start = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem(
        key
    ).decode()


@pytest.mark.parametrize(
    ("case", "errors"),
    [
        ("garbage_certificate", {CONF_CA_CERTIFICATE: "unreadable_certificate"}),
        ("garbage_key", {CONF_CA_PRIVATE_KEY: "unreadable_key"}),
        ("mismatch", {"base": "key_mismatch"}),
        ("not_a_ca", {CONF_CA_CERTIFICATE: "not_a_ca"}),
        ("no_password", {CONF_PASSWORD: "password_required"}),
        ("wrong_password", {CONF_PASSWORD: "wrong_password"}),
    ],
)
async def test_import_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
    tmp_path: Path,
    case: str,
    errors: dict[str, str],
) -> None:
    """Every unusable CA is refused on the form; the CA in use stays."""
    certificate, key = await hass.async_add_executor_job(
        lambda: openssl_ca(tmp_path, password=PASSWORD)
    )
    leaf, leaf_key = await hass.async_add_executor_job(_leaf_certificate)
    other_key = (await hass.async_add_executor_job(lambda: key_pem(ec_key()))).decode()
    user_input = {
        "garbage_certificate": {CONF_CA_CERTIFICATE: "garbage", CONF_CA_PRIVATE_KEY: key, CONF_PASSWORD: PASSWORD},
        "garbage_key": {CONF_CA_CERTIFICATE: certificate, CONF_CA_PRIVATE_KEY: "garbage"},
        "mismatch": {CONF_CA_CERTIFICATE: certificate, CONF_CA_PRIVATE_KEY: other_key},
        "not_a_ca": {CONF_CA_CERTIFICATE: leaf, CONF_CA_PRIVATE_KEY: leaf_key},
        "no_password": {CONF_CA_CERTIFICATE: certificate, CONF_CA_PRIVATE_KEY: key},
        "wrong_password": {CONF_CA_CERTIFICATE: certificate, CONF_CA_PRIVATE_KEY: key, CONF_PASSWORD: "nope"},
    }[case]  # fmt: skip
    before = dict(hass_storage[f"{DOMAIN}.ca"]["data"])
    fingerprint = init_integration.runtime_data._certificates.authority.fingerprint

    flow_id = await _open_import(hass, init_integration)
    result = await hass.config_entries.options.async_configure(flow_id, user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "import_ca"
    assert result["errors"] == errors
    # Only the (public) certificate comes back; never the key or the password.
    assert _suggested(result) == {CONF_CA_CERTIFICATE: user_input[CONF_CA_CERTIFICATE]}
    assert hass_storage[f"{DOMAIN}.ca"]["data"] == before
    assert (
        init_integration.runtime_data._certificates.authority.fingerprint == fingerprint
    )

    # Corrected, the same form imports.
    result = await hass.config_entries.options.async_configure(
        flow_id,
        {
            CONF_CA_CERTIFICATE: certificate,
            CONF_CA_PRIVATE_KEY: key,
            CONF_PASSWORD: PASSWORD,
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "ca_imported"
