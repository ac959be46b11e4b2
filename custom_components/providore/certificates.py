"""Providore's certificate authority in Home Assistant: its key, issued certificates, the CRL.

The CA (certificate and private key) lives in a private store (mode 0600, written
atomically); the issued-certificate records and the CRL number in an ordinary one.
The CRL itself is public and cheap: it is signed again at load, on every
revocation, and daily, always valid for a week. The X.509 work is done by
`certificate_authority` in the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import TypedDict

from cryptography import x509
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .certificate_authority import (
    CertificateAuthority,
    CertificateError,
    CertificateUsage,
    Revocation,
    certificate_pem,
    crl_pem,
    load_csr,
)
from .const import API_BASE_PATH, CRL_PATH, DOMAIN, LOGGER
from .device_events import DeviceEventType, async_fire_device_event
from .stores import StoreUnreadable, async_load, providore_store

# A device gets at most this many certificates a day, so that one device (or a leaked
# key) cannot grow the records and the revocation list without bound.
MAX_CERTIFICATES_PER_DAY = 10
ISSUANCE_WINDOW = timedelta(days=1)
# How the Logbook names why a device's certificates were revoked.
REVOCATION_REASONS = {
    x509.ReasonFlags.unspecified: "by an administrator",
    x509.ReasonFlags.cessation_of_operation: "the device was removed",
}


class CertificateStatus(StrEnum):
    """What became of a device's newest certificate."""

    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NONE = "none"


class IssuanceRefused(Exception):  # noqa: N818
    """No certificate can be issued now; `status` and `reason` say why (for the device)."""

    def __init__(
        self, status: int, reason: str, retry_after: int | None = None
    ) -> None:
        """Describe the refusal."""
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class StoredCA(TypedDict):
    """The CA as kept in the private store."""

    certificate: str
    private_key: str


class StoredCertificate(TypedDict):
    """An issued certificate as kept in the store."""

    serial: str
    key_id: str
    not_before: str
    not_after: str
    revoked_at: str | None
    reason: str | None
    certificate: str


class StoredCertificates(TypedDict):
    """The certificate store."""

    certificates: list[StoredCertificate]
    crl_number: int


@dataclass(slots=True, kw_only=True)
class IssuedCertificate:
    """A certificate the CA issued to a device, and whether it was revoked."""

    serial: int
    key_id: str
    not_before: datetime
    not_after: datetime
    pem: str
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None

    @classmethod
    def from_certificate(
        cls, key_id: str, certificate: x509.Certificate
    ) -> IssuedCertificate:
        """Describe a newly issued certificate."""
        return cls(
            serial=certificate.serial_number,
            key_id=key_id,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            pem=certificate_pem(certificate),
        )

    @classmethod
    def from_stored(cls, stored: StoredCertificate) -> IssuedCertificate:
        """Read a stored record."""
        revoked_at, reason = stored["revoked_at"], stored["reason"]
        return cls(
            serial=int(stored["serial"], 16),
            key_id=stored["key_id"],
            not_before=datetime.fromisoformat(stored["not_before"]),
            not_after=datetime.fromisoformat(stored["not_after"]),
            pem=stored["certificate"],
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            reason=x509.ReasonFlags(reason) if reason else None,
        )

    def to_stored(self) -> StoredCertificate:
        """Serialise for the store (the serial as hex: it does not fit a JSON number)."""
        return StoredCertificate(
            serial=f"{self.serial:x}",
            key_id=self.key_id,
            not_before=self.not_before.isoformat(),
            not_after=self.not_after.isoformat(),
            revoked_at=self.revoked_at.isoformat() if self.revoked_at else None,
            reason=self.reason.value if self.reason else None,
            certificate=self.pem,
        )

    @property
    def serial_hex(self) -> str:
        """Return the serial number as colon-separated hex, as openssl shows it."""
        return self.serial.to_bytes(17).lstrip(b"\0").hex(":").upper()

    def is_valid(self, now: datetime) -> bool:
        """Return whether the certificate is neither revoked nor expired."""
        return self.revoked_at is None and now < self.not_after


def _issue(
    authority: CertificateAuthority,
    csr_pem: bytes,
    key_id: str,
    *,
    usage: CertificateUsage,
    now: datetime,
    validity: timedelta,
    crl_url: str | None,
) -> x509.Certificate:
    """Check a device's CSR and issue its certificate (executor)."""
    csr = load_csr(csr_pem, key_id)
    return authority.issue(
        csr, usage=usage, now=now, validity=validity, crl_url=crl_url
    )


class ProvidoreCertificates:
    """The CA, the certificates it issued, and its current revocation list."""

    def __init__(
        self,
        hass: HomeAssistant,
        stores: tuple[Store[StoredCA], Store[StoredCertificates]],
        authority: CertificateAuthority,
        stored: StoredCertificates,
        devices: Container[str],
        changed: Callable[[str], None],
    ) -> None:
        """Hold the loaded CA and records; call async_publish_crl before serving.

        `devices` holds the key ids of the configured devices (a live view);
        `changed` is called with the key id of each device whose certificates changed.
        """
        self._hass = hass
        self._ca_store, self._store = stores
        self._authority = authority
        self._devices = devices
        self._changed = changed
        # Every record of each device, oldest first.
        self._records: dict[str, list[IssuedCertificate]] = {}
        for stored_record in stored["certificates"]:
            record = IssuedCertificate.from_stored(stored_record)
            self._records.setdefault(record.key_id, []).append(record)
        self._crl_number = stored["crl_number"]
        self._crl_pem = ""
        self._lock = asyncio.Lock()

    @classmethod
    async def async_load(
        cls,
        hass: HomeAssistant,
        known_fingerprint: str | None,
        devices: Container[str],
        changed: Callable[[str], None],
    ) -> ProvidoreCertificates:
        """Load the CA and its records; create the CA only where none ever existed.

        `known_fingerprint` is the CA this hub recorded, if any. Raises
        StoreUnreadable for a store that cannot be read, and also when the CA store
        is absent although a CA existed (recorded, or certificates issued): a new
        CA is never made in its place without the user asking for it.
        """
        ca_store, store = _stores(hass)
        stored_ca = await async_load(hass, ca_store)
        stored = await async_load(hass, store) or StoredCertificates(
            certificates=[], crl_number=0
        )
        if stored_ca is None:
            if known_fingerprint is not None or stored["certificates"]:
                raise StoreUnreadable(ca_store.key, "missing")
            authority = await hass.async_add_executor_job(
                CertificateAuthority.create, hass.config.location_name, dt_util.utcnow()
            )
            await ca_store.async_save(_stored_ca(authority))
            LOGGER.info("Created certificate authority %s", authority.fingerprint)
        else:
            try:
                authority = await hass.async_add_executor_job(
                    CertificateAuthority.load,
                    stored_ca["certificate"].encode(),
                    stored_ca["private_key"].encode(),
                )
            except (CertificateError, KeyError, AttributeError) as err:
                raise StoreUnreadable(
                    ca_store.key, "not a usable certificate authority"
                ) from err
        certificates = cls(hass, (ca_store, store), authority, stored, devices, changed)
        await certificates.async_publish_crl()
        return certificates

    @property
    def authority(self) -> CertificateAuthority:
        """Return the CA."""
        return self._authority

    @property
    def crl_pem(self) -> str:
        """Return the current revocation list in PEM."""
        return self._crl_pem

    def current(self, key_id: str, now: datetime) -> IssuedCertificate | None:
        """Return the device's newest certificate that is neither revoked nor expired."""
        valid = [
            record for record in self._records.get(key_id, ()) if record.is_valid(now)
        ]
        if not valid:
            return None
        return max(valid, key=lambda record: record.not_before)

    def newest(self, key_id: str) -> IssuedCertificate | None:
        """Return the certificate issued to the device last, whatever became of it."""
        records = self._records.get(key_id)
        # Records are kept in the order they were issued.
        return records[-1] if records else None

    def status(self, key_id: str, now: datetime) -> CertificateStatus:
        """Return whether the device's newest certificate is valid, revoked or expired."""
        if (newest := self.newest(key_id)) is None:
            return CertificateStatus.NONE
        if newest.revoked_at is not None:
            return CertificateStatus.REVOKED
        if now >= newest.not_after:
            return CertificateStatus.EXPIRED
        return CertificateStatus.VALID

    async def async_issue(
        self,
        key_id: str,
        csr_pem: bytes,
        usage: CertificateUsage,
        validity: timedelta,
    ) -> IssuedCertificate:
        """Issue a certificate for a CSR; the device's earlier ones are superseded.

        Raises CSRRejected (and issues nothing) when the CSR is unacceptable, and
        IssuanceRefused when the CA has expired or the device asked too often.
        """
        async with self._lock:
            now = dt_util.utcnow()
            self._check_can_issue(key_id, now)
            certificate = await self._hass.async_add_executor_job(
                partial(
                    _issue,
                    self._authority,
                    csr_pem,
                    key_id,
                    usage=usage,
                    now=now,
                    validity=validity,
                    crl_url=self._crl_url(),
                )
            )
            issued = IssuedCertificate.from_certificate(key_id, certificate)
            superseded = self._revoke([key_id], x509.ReasonFlags.superseded, now)
            self._records.setdefault(key_id, []).append(issued)
            if superseded:
                await self._async_publish_crl(now)
            else:
                await self._async_save()
        LOGGER.info(
            "Issued certificate %s to device %s", issued.serial_hex, issued.key_id
        )
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.CERTIFICATE_ISSUED,
            serial=issued.serial_hex,
            expires=issued.not_after.isoformat(),
        )
        self._changed(key_id)
        return issued

    def _check_can_issue(self, key_id: str, now: datetime) -> None:
        if now >= self._authority.certificate.not_valid_after_utc:
            LOGGER.error(
                "The certificate authority expired: import a new one to issue certificates"
            )
            raise IssuanceRefused(503, "certificate authority expired")
        recent = sorted(
            record.not_before
            for record in self._records.get(key_id, ())
            if record.not_before > now - ISSUANCE_WINDOW
        )
        if len(recent) >= MAX_CERTIFICATES_PER_DAY:
            wait = recent[-MAX_CERTIFICATES_PER_DAY] + ISSUANCE_WINDOW - now
            raise IssuanceRefused(
                429, "too many certificate requests", int(wait.total_seconds()) + 1
            )

    async def async_revoke(self, key_id: str) -> None:
        """Revoke a device's valid certificates at the user's request.

        Raises ServiceValidationError when the device has none.
        """
        if not await self._async_revoke([key_id], x509.ReasonFlags.unspecified):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="no_certificate",
                translation_placeholders={"key_id": key_id},
            )

    async def async_forget(self, key_ids: Iterable[str]) -> None:
        """Revoke the certificates of removed devices (reason: cessation of operation)."""
        await self._async_revoke(key_ids, x509.ReasonFlags.cessation_of_operation)

    def device_key_ids(self) -> set[str]:
        """Return every device with a valid certificate."""
        now = dt_util.utcnow()
        return {
            key_id
            for key_id, records in self._records.items()
            if any(record.is_valid(now) for record in records)
        }

    async def async_import_ca(
        self, certificate: str, private_key: str, password: str | None
    ) -> CertificateAuthority:
        """Replace the CA with the user's own; raise CAImportError when it is unusable.

        Certificates issued by another CA are forgotten: devices request new ones.
        """
        authority = await self._hass.async_add_executor_job(
            CertificateAuthority.load,
            certificate.encode(),
            private_key.encode(),
            password.encode() if password else None,
            dt_util.utcnow(),
        )
        forgotten: list[str] = []
        async with self._lock:
            # Saved before it is used, so a failed save leaves the old CA in place.
            await self._ca_store.async_save(_stored_ca(authority))
            if authority.certificate != self._authority.certificate:
                forgotten = list(self._records)
                self._records = {}
            self._authority = authority
            await self._async_publish_crl(dt_util.utcnow())
        LOGGER.info("Imported certificate authority %s", authority.fingerprint)
        for key_id in forgotten:
            self._changed(key_id)
        return authority

    async def async_publish_crl(self) -> None:
        """Sign a fresh revocation list (valid for a week)."""
        async with self._lock:
            await self._async_publish_crl(dt_util.utcnow())

    @staticmethod
    async def async_remove_stores(hass: HomeAssistant) -> None:
        """Delete the CA and every record; a new hub gets a new CA."""
        for store in _stores(hass):
            await store.async_remove()

    async def _async_revoke(
        self, key_ids: Iterable[str], reason: x509.ReasonFlags
    ) -> set[str]:
        """Revoke the valid certificates of the devices; return those that had any."""
        async with self._lock:
            now = dt_util.utcnow()
            if revoked := self._revoke(key_ids, reason, now):
                await self._async_publish_crl(now)
        for key_id in revoked:
            LOGGER.info("Revoked the certificates of device %s (%s)", key_id, reason)
            async_fire_device_event(
                self._hass,
                key_id,
                DeviceEventType.CERTIFICATE_REVOKED,
                reason=REVOCATION_REASONS.get(reason, reason.value),
            )
            self._changed(key_id)
        return revoked

    def _revoke(
        self, key_ids: Iterable[str], reason: x509.ReasonFlags, now: datetime
    ) -> set[str]:
        revoked: set[str] = set()
        for key_id in key_ids:
            for record in self._records.get(key_id, ()):
                if record.is_valid(now):
                    record.revoked_at, record.reason = now, reason
                    revoked.add(key_id)
        return revoked

    def _all_records(self) -> Iterator[IssuedCertificate]:
        for records in self._records.values():
            yield from records

    async def _async_publish_crl(self, now: datetime) -> None:
        # An expired certificate is neither valid nor listed: its record can go, but
        # for the newest one of a configured device (its status says it expired).
        self._records = {
            key_id: kept
            for key_id, records in self._records.items()
            if (
                kept := [
                    record
                    for record in records
                    if record.not_after > now
                    or (record is records[-1] and key_id in self._devices)
                ]
            )
        }
        self._crl_number += 1
        revocations = [
            Revocation(
                record.serial,
                record.revoked_at,
                record.reason or x509.ReasonFlags.unspecified,
            )
            for record in self._all_records()
            if record.revoked_at is not None
        ]
        crl = await self._hass.async_add_executor_job(
            partial(
                self._authority.build_crl, revocations, now=now, number=self._crl_number
            )
        )
        self._crl_pem = crl_pem(crl)
        await self._async_save()

    async def _async_save(self) -> None:
        await self._store.async_save(
            StoredCertificates(
                certificates=[record.to_stored() for record in self._all_records()],
                crl_number=self._crl_number,
            )
        )

    def _crl_url(self) -> str | None:
        """Return where devices fetch the CRL, or None when Home Assistant has no URL."""
        try:
            base_url = get_url(self._hass, allow_cloud=False, prefer_external=False)
        except NoURLAvailableError:
            return None
        return f"{base_url}{API_BASE_PATH}{CRL_PATH}"


def _stores(
    hass: HomeAssistant,
) -> tuple[Store[StoredCA], Store[StoredCertificates]]:
    """Return the CA's private store and the store of issued certificates."""
    return (
        providore_store(hass, "ca", private=True),
        providore_store(hass, "certificates"),
    )


def _stored_ca(authority: CertificateAuthority) -> StoredCA:
    return StoredCA(
        certificate=authority.certificate_pem, private_key=authority.private_key_pem
    )
