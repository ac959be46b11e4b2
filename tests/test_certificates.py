"""The CA inside Home Assistant: storage, lifecycle, entities, service, repairs, diagnostics."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
import stat
from typing import Any
from unittest.mock import patch

from cryptography import x509
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import Context, HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.storage import STORAGE_DIR, Store
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.certificate_authority import (
    CertificateAuthority,
    CertificateUsage,
)
from custom_components.providore.certificates import (
    IssuedCertificate,
    ProvidoreCertificates,
)
from custom_components.providore.const import CONF_CERTIFICATE_VALIDITY, DOMAIN

from .conftest import KEY_ID
from .pki import ec_key, make_csr

# These tests look at diagnostic entities a new device has disabled.
pytestmark = pytest.mark.usefixtures("entity_registry_enabled_by_default")

CA_STORE = f"{DOMAIN}.ca"
# The stores' real file writer, taken before the test harness replaces it for each test.
_WRITE_TO_DISK = Store._async_write_data
CERTIFICATES_STORE = f"{DOMAIN}.certificates"
SENSOR = "sensor.garden_sensor_certificate_expires"
STATUS = "sensor.garden_sensor_certificate"
YEAR = timedelta(days=365)


def _certificates(entry: MockConfigEntry) -> ProvidoreCertificates:
    return entry.runtime_data._certificates


async def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> IssuedCertificate:
    """Issue a certificate to the device the way the request view does."""
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    issued = await _certificates(entry).async_issue(
        KEY_ID, csr, CertificateUsage.CLIENT, YEAR
    )
    await hass.async_block_till_done()
    return issued


def _revoked_serials(certificates: ProvidoreCertificates) -> dict[int, Any]:
    crl = x509.load_pem_x509_crl(certificates.crl_pem.encode())
    return {entry.serial_number: entry for entry in crl}


# --- the CA and its storage ----------------------------------------------------------


async def test_ca_is_created_once_and_stored_privately(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    certificates = _certificates(init_integration)
    authority = certificates.authority
    assert authority.certificate.subject.rfc4514_string() == (
        f"CN=Providore CA ({hass.config.location_name}),O=Providore"
    )
    stored = hass_storage[CA_STORE]["data"]
    assert stored["certificate"] == authority.certificate_pem
    assert stored["private_key"] == authority.private_key_pem

    # A reload keeps the CA.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _certificates(init_integration).authority.fingerprint == (
        authority.fingerprint
    )

    # Saved through the stores' real file writer (the harness swaps in an in-memory
    # one), into the test's own config folder: the private store's file is 0600.
    with patch.object(Store, "_async_write_data", _WRITE_TO_DISK):
        await certificates._ca_store.async_save(stored)
    path = Path(hass.config.path(STORAGE_DIR, CA_STORE))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["data"]["private_key"].startswith(
        "-----BEGIN PRIVATE KEY-----"
    )


async def test_restart_keeps_ca_and_records(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    entry = init_integration
    first = await _issue(hass, entry)
    second = await _issue(hass, entry)
    fingerprint = _certificates(entry).authority.fingerprint
    crl_number = hass_storage[CERTIFICATES_STORE]["data"]["crl_number"]

    # Stop the hub and set it up again: everything is read from the stores.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    certificates = _certificates(entry)
    assert certificates.authority.fingerprint == fingerprint
    current = certificates.current(KEY_ID, dt_util.utcnow())
    assert current == second
    assert first.serial in _revoked_serials(certificates)
    crl = x509.load_pem_x509_crl(certificates.crl_pem.encode())
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value
    assert number.crl_number > crl_number
    assert hass.states.get(SENSOR).state == second.not_after.isoformat()


async def test_removing_a_device_revokes_its_certificates(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    issued = await _issue(hass, init_integration)
    certificates = _certificates(init_integration)

    subentry_id = next(iter(init_integration.subentries))
    assert hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()

    assert certificates.current(KEY_ID, dt_util.utcnow()) is None
    entry = _revoked_serials(certificates)[issued.serial]
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.cessation_of_operation


async def test_removing_the_hub_deletes_the_ca(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    await _issue(hass, init_integration)
    fingerprint = _certificates(init_integration).authority.fingerprint
    assert CA_STORE in hass_storage
    assert CERTIFICATES_STORE in hass_storage

    assert await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()

    assert CA_STORE not in hass_storage
    assert CERTIFICATES_STORE not in hass_storage

    # A new hub gets a new CA.
    entry = MockConfigEntry(domain=DOMAIN, unique_id=DOMAIN, title="Providore")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data._certificates.authority.fingerprint != fingerprint


async def test_crl_is_signed_again_daily(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    certificates = _certificates(init_integration)
    before = x509.load_pem_x509_crl(certificates.crl_pem.encode())
    assert before.next_update_utc - before.last_update_utc == timedelta(days=7)

    for _ in range(10):
        freezer.tick(timedelta(days=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)

    after = x509.load_pem_x509_crl(certificates.crl_pem.encode())
    assert after.last_update_utc >= before.last_update_utc + timedelta(days=9)
    # Never out of date: at least six days left at any time.
    assert after.next_update_utc - dt_util.utcnow() > timedelta(days=6)


# --- entities, service, repairs ------------------------------------------------------


async def test_sensor_follows_the_certificate(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    assert hass.states.get(SENSOR).state == STATE_UNKNOWN
    issued = await _issue(hass, init_integration)
    state = hass.states.get(SENSOR)
    assert state.state == issued.not_after.isoformat()
    assert state.attributes["device_class"] == "timestamp"


async def test_certificate_status_follows_the_newest_certificate(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    status = hass.states.get(STATUS)
    assert status.state == "none"
    assert status.attributes["options"] == ["valid", "revoked", "expired", "none"]
    assert status.attributes["device_class"] == "enum"

    await _issue(hass, init_integration)
    assert hass.states.get(STATUS).state == "valid"
    await init_integration.runtime_data.async_revoke_certificates(KEY_ID)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "revoked"
    assert hass.states.get(SENSOR).state == STATE_UNKNOWN

    # A new certificate is valid again, and turns Expired the moment it expires.
    issued = await _issue(hass, init_integration)
    assert hass.states.get(STATUS).state == "valid"
    freezer.move_to(issued.not_after - timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "valid"
    freezer.move_to(issued.not_after)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "expired"
    assert hass.states.get(SENSOR).state == issued.not_after.isoformat()

    # The daily revocation list drops expired records, but for the device's newest.
    await _certificates(init_integration).async_publish_crl()
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(STATUS).state == "expired"
    assert hass.states.get(SENSOR).state == issued.not_after.isoformat()
    assert _certificates(init_integration).newest(KEY_ID) == issued


async def test_a_removed_device_keeps_no_expired_record(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    issued = await _issue(hass, init_integration)
    freezer.move_to(issued.not_after + timedelta(seconds=1))
    subentry_id = next(iter(init_integration.subentries))
    hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()
    certificates = _certificates(init_integration)
    await certificates.async_publish_crl()  # daily
    assert certificates.newest(KEY_ID) is None
    assert certificates.status(KEY_ID, dt_util.utcnow()) == "none"


async def test_revoke_certificate_service(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    issued = await _issue(hass, init_integration)
    await hass.services.async_call(
        DOMAIN, "revoke_certificate", {"key_id": KEY_ID}, blocking=True
    )
    await hass.async_block_till_done()
    entry = _revoked_serials(_certificates(init_integration))[issued.serial]
    assert len(entry.extensions) == 0  # reason unspecified: left out
    assert hass.states.get(SENSOR).state == STATE_UNKNOWN
    assert hass.states.get(STATUS).state == "revoked"

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "revoke_certificate", {"key_id": KEY_ID}, blocking=True
        )
    assert err.value.translation_key == "no_certificate"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "revoke_certificate", {"key_id": "0badc0de"}, blocking=True
        )
    assert err.value.translation_key == "unknown_device"


async def test_revoke_certificate_is_for_admins_only(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_read_only_user: MockUser,
) -> None:
    issued = await _issue(hass, init_integration)
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "revoke_certificate",
            {"key_id": KEY_ID},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )
    assert _certificates(init_integration).current(KEY_ID, dt_util.utcnow()) == issued


async def test_expiring_certificate_repair(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    issue_id = f"certificate_expiring_{KEY_ID}"
    issued = await _issue(hass, init_integration)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    # Fifteen days before expiry: nothing yet; the daily check at fourteen raises it.
    freezer.move_to(issued.not_after - timedelta(days=15))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    freezer.tick(timedelta(days=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "certificate_expiring"
    assert issue.translation_placeholders == {
        "name": "Garden sensor",
        "key_id": KEY_ID,
        "expires": issued.not_after.date().isoformat(),
    }
    assert not issue.is_fixable

    # The device requests a new certificate: the issue goes away.
    await _issue(hass, init_integration)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_short_validity_raises_the_repair_at_once(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    hass.config_entries.async_update_entry(
        init_integration,
        options=init_integration.options | {CONF_CERTIFICATE_VALIDITY: 7},
    )
    await hass.async_block_till_done()
    issue_id = f"certificate_expiring_{KEY_ID}"
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    runtime = init_integration.runtime_data
    issued = await runtime.async_issue_certificate(KEY_ID, csr)
    await hass.async_block_till_done()
    assert issued.not_after - issued.not_before == timedelta(days=7, minutes=5)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None

    # Revoked: nothing left to expire.
    await runtime.async_revoke_certificates(KEY_ID)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_provisioning_bundle_has_the_ca(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "http://ha.lan:8123"})
    bundle = await hass.services.async_call(
        DOMAIN,
        "provisioning_bundle",
        {"key_id": KEY_ID},
        blocking=True,
        return_response=True,
    )
    assert bundle is not None
    certificates = _certificates(init_integration)
    assert bundle["ca_certificate"] == certificates.authority.certificate_pem
    assert "PRIVATE KEY" not in json.dumps(bundle)


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    issued = await _issue(hass, init_integration)
    authority = _certificates(init_integration).authority

    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, init_integration
    )
    ca = diagnostics["certificate_authority"]
    assert ca["sha256_fingerprint"] == authority.fingerprint
    assert ca["subject"] == authority.certificate.subject.rfc4514_string()
    assert ca["not_valid_after"] == (
        authority.certificate.not_valid_after_utc.isoformat()
    )
    [device] = diagnostics["devices"]
    assert device["certificate_usage"] == "client"
    assert device["certificate"] == {
        "serial": issued.serial_hex,
        "not_before": issued.not_before.isoformat(),
        "not_after": issued.not_after.isoformat(),
    }
    text = json.dumps(diagnostics)
    assert "PRIVATE KEY" not in text
    assert authority.private_key_pem.splitlines()[1] not in text

    device_entry = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    device = await get_diagnostics_for_device(
        hass, hass_client, init_integration, device_entry
    )
    assert device["certificate"]["serial"] == issued.serial_hex
    assert device["certificate_status"] == "valid"
    assert int(issued.serial_hex.replace(":", ""), 16) == issued.serial

    await init_integration.runtime_data.async_revoke_certificates(KEY_ID)
    device = await get_diagnostics_for_device(
        hass, hass_client, init_integration, device_entry
    )
    assert device["certificate_status"] == "revoked"
    assert device["certificate"] is None


async def test_expiring_ca_repair(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Before the CA itself expires the user is told to import a new one."""
    certificates = _certificates(init_integration)
    expires = certificates.authority.certificate.not_valid_after_utc
    assert issue_registry.async_get_issue(DOMAIN, "ca_expiring") is None

    freezer.move_to(expires - timedelta(days=29))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = issue_registry.async_get_issue(DOMAIN, "ca_expiring")
    assert issue is not None
    assert issue.translation_key == "ca_expiring"
    assert issue.translation_placeholders == {"expires": expires.date().isoformat()}

    # A new CA (valid from now on) clears it once the entry has reloaded.
    new_ca = await hass.async_add_executor_job(
        CertificateAuthority.create, "Home", dt_util.utcnow()
    )
    await certificates.async_import_ca(
        new_ca.certificate_pem, new_ca.private_key_pem, None
    )
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, "ca_expiring") is None
