"""Device certificates: the private key, the CSR, when to renew, and the files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .api import ProvidoreClient
from .errors import ProvidoreError, ResponseRejected
from .files import write_atomically

KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class CertificateOutcome:
    """What the certificate command did: issued a certificate, or kept the current one."""

    issued: bool
    not_after: datetime


def generate_key() -> ec.EllipticCurvePrivateKey:
    """Return a new EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def load_or_create_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """Return (the EC key at path, whether it was created now); a new key is 0600."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise ProvidoreError(
                f"{path} is not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvidoreError(f"{path} is not an EC private key")
        return key, False
    key = generate_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(path, pem, KEY_MODE)
    return key, True


def build_csr(key: ec.EllipticCurvePrivateKey, device_id: str) -> bytes:
    """Return a PEM certificate signing request with common name = device id."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_certificate(path: Path) -> x509.Certificate | None:
    """Return the PEM certificate at path, or None when there is no file."""
    if not path.exists():
        return None
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise ProvidoreError(f"{path} is not a PEM certificate") from None


def needs_renewal(
    certificate: x509.Certificate | None,
    key: ec.EllipticCurvePrivateKey,
    now: datetime,
    renew_within: timedelta,
) -> bool:
    """Return whether to request a certificate.

    Yes when there is none, when it belongs to another key, or when it expires within
    `renew_within` of now; a certificate that stays valid longer is kept.
    """
    if certificate is None or not _same_key(certificate, key):
        return True
    return certificate.not_valid_after_utc - now <= renew_within


def accept_certificate(
    pem: bytes, key: ec.EllipticCurvePrivateKey, device_id: str
) -> x509.Certificate:
    """Parse an issued certificate; refuse one for another key or another device."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ResponseRejected("the server's answer is not a PEM certificate") from None
    if not _same_key(certificate, key):
        raise ResponseRejected("the issued certificate is for another key")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [name.value for name in names] != [device_id]:
        raise ResponseRejected("the issued certificate names another device")
    return certificate


async def obtain_certificate(
    client: ProvidoreClient,
    key: ec.EllipticCurvePrivateKey,
) -> tuple[x509.Certificate, bytes]:
    """Send a CSR for key; return the verified certificate and its PEM."""
    pem = await client.request_certificate(build_csr(key, client.device_id))
    return accept_certificate(pem, key, client.device_id), pem


class Refresh(StrEnum):
    """What a certificate notice led to."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    ISSUED = "issued"


async def refresh_certificate(
    client: ProvidoreClient,
    key: ec.EllipticCurvePrivateKey,
    current: x509.Certificate | None,
    now: datetime,
) -> tuple[x509.Certificate, bytes, Refresh]:
    """Take the server's current certificate when it is this key's and valid, else request one.

    A certificate notice means the server's record changed: a new certificate, or a
    revoked one (then the server has none, or one for another key).
    """
    pem = await client.fetch_certificate()
    if pem is not None:
        try:
            certificate = accept_certificate(pem, key, client.device_id)
        except ResponseRejected:
            pass
        else:
            if certificate.not_valid_after_utc > now:
                same = current is not None and certificate == current
                return certificate, pem, Refresh.UNCHANGED if same else Refresh.UPDATED
    certificate, pem = await obtain_certificate(client, key)
    return certificate, pem, Refresh.ISSUED


async def ensure_certificate(
    client: ProvidoreClient,
    key: ec.EllipticCurvePrivateKey,
    cert_path: Path,
    now: datetime,
    renew_within: timedelta,
) -> CertificateOutcome:
    """Request a certificate for key when the one at cert_path is missing or due."""
    current = load_certificate(cert_path)
    if current is not None and not needs_renewal(current, key, now, renew_within):
        return CertificateOutcome(False, current.not_valid_after_utc)
    certificate, pem = await obtain_certificate(client, key)
    write_atomically(cert_path, pem, CERTIFICATE_MODE)
    return CertificateOutcome(True, certificate.not_valid_after_utc)


def _same_key(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    issued_for = certificate.public_key().public_bytes(der, spki)
    return issued_for == key.public_key().public_bytes(der, spki)
