"""Providore's certificate authority: the X.509 side, with `cryptography` only.

PURE module (no Home Assistant import): create or import a CA, check a device's
certificate signing request, issue its certificate, and sign the revocation list.
Every call here is CPU work: Home Assistant runs it in the executor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import ipaddress
import secrets
from typing import ClassVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    rsa,
    types as x509_types,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

type CAPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CA_VALIDITY = timedelta(days=3650)
CRL_VALIDITY = timedelta(days=7)
# Certificates start a little in the past, for device clocks that run behind.
BACKDATE = timedelta(minutes=5)
MIN_RSA_BITS = 2048
CSR_CURVES = (ec.SECP256R1, ec.SECP384R1)


class CertificateUsage(StrEnum):
    """What a device's certificate authenticates: a TLS client, a server, or both."""

    CLIENT = "client"
    SERVER = "server"
    BOTH = "both"


class CertificateError(Exception):
    """A certificate operation was refused; the message is short and safe to show."""


class CSRRejected(CertificateError):  # noqa: N818
    """A device's certificate signing request is unacceptable."""


class CAImportError(CertificateError):
    """A CA offered for import is unusable; `code` names the reason for the UI."""

    code: ClassVar[str] = "invalid_ca"


class UnreadableCertificate(CAImportError):  # noqa: N818
    """The certificate is not a PEM certificate."""

    code = "unreadable_certificate"


class UnreadableKey(CAImportError):  # noqa: N818
    """The key is not a PEM private key."""

    code = "unreadable_key"


class KeyPasswordRequired(CAImportError):  # noqa: N818
    """The key is encrypted and no password was given."""

    code = "password_required"


class WrongKeyPassword(CAImportError):  # noqa: N818
    """The password does not decrypt the key."""

    code = "wrong_password"


class UnsupportedCAKey(CAImportError):  # noqa: N818
    """The key is neither RSA nor EC."""

    code = "unsupported_key"


class KeyMismatch(CAImportError):  # noqa: N818
    """The key does not belong to the certificate."""

    code = "key_mismatch"


class NotACA(CAImportError):  # noqa: N818
    """The certificate may not sign certificates and revocation lists."""

    code = "not_a_ca"


class CAExpired(CAImportError):  # noqa: N818
    """The certificate is not valid now."""

    code = "expired"


@dataclass(frozen=True, slots=True)
class Revocation:
    """One entry of the revocation list."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags


def random_serial() -> int:
    """Return a random positive 128-bit serial number."""
    return int.from_bytes(secrets.token_bytes(16)) or 1


def load_csr(pem: bytes, key_id: str) -> x509.CertificateSigningRequest:
    """Return the CSR if it is acceptable for the device `key_id`, else raise CSRRejected."""
    try:
        csr = x509.load_pem_x509_csr(pem)
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as err:
        raise CSRRejected("not a PEM certificate request") from err
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise CSRRejected(f"RSA key smaller than {MIN_RSA_BITS} bits")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, CSR_CURVES):
            raise CSRRejected("EC key must be on P-256 or P-384")
    else:
        raise CSRRejected("key must be RSA or EC")
    if not csr.is_signature_valid:
        raise CSRRejected("CSR signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != key_id:
        raise CSRRejected("CSR common name must equal the key id")
    return csr


def _load_key(pem: bytes, password: bytes | None) -> CAPrivateKey:
    """Read a PEM private key, mapping every failure to a CAImportError."""
    try:
        key = serialization.load_pem_private_key(pem, password)
    except TypeError as err:
        if password is None:
            raise KeyPasswordRequired(
                "the key is encrypted: give its password"
            ) from err
        # A password for a key that is not encrypted: read it without.
        return _load_key(pem, None)
    except ValueError as err:
        if password is not None and b"ENCRYPTED" in pem:
            raise WrongKeyPassword("the password does not decrypt the key") from err
        raise UnreadableKey("the key is not a PEM private key") from err
    except UnsupportedAlgorithm as err:
        raise UnsupportedCAKey("the key must be RSA or EC") from err
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UnsupportedCAKey("the key must be RSA or EC")
    return key


def _public_der(key: x509_types.CertificatePublicKeyTypes) -> bytes:
    """Return the DER SubjectPublicKeyInfo of a public key."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_is_ca(certificate: x509.Certificate) -> None:
    """Raise NotACA unless the certificate may sign certificates and CRLs.

    A CA without a key usage extension may sign anything (RFC 5280 4.2.1.3): the CA
    that `openssl req -x509` makes by default, which many Mosquitto setups use, has none.
    """
    try:
        constraints = certificate.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value
    except x509.ExtensionNotFound as err:
        raise NotACA("the certificate is not a CA (no basic constraints)") from err
    if not constraints.ca:
        raise NotACA("the certificate is not a CA")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.key_cert_sign and usage.crl_sign):
        raise NotACA("the CA may not sign certificates and revocation lists")


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate with its private key."""

    certificate: x509.Certificate
    private_key: CAPrivateKey

    @classmethod
    def create(cls, name: str, now: datetime) -> CertificateAuthority:
        """Create a self-signed EC P-256 root valid for ten years."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Providore"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Providore CA ({name})"[:64]),
            ]
        )
        public_key = private_key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
                critical=False,
            )
            .sign(private_key, hashes.SHA256())
        )
        return cls(certificate, private_key)

    @classmethod
    def load(
        cls,
        certificate_pem: bytes,
        key_pem: bytes,
        password: bytes | None = None,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """Read and check a CA; raise a CAImportError naming what is wrong.

        With `now`, a certificate that is not valid at that time is refused too.
        """
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            public_key = certificate.public_key()
        except ValueError as err:
            raise UnreadableCertificate(
                "the certificate is not a PEM certificate"
            ) from err
        except UnsupportedAlgorithm as err:
            raise UnsupportedCAKey("the key must be RSA or EC") from err
        private_key = _load_key(key_pem, password)
        if _public_der(private_key.public_key()) != _public_der(public_key):
            raise KeyMismatch("the key does not belong to the certificate")
        _check_is_ca(certificate)
        if now is not None and not (
            certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
        ):
            raise CAExpired("the CA certificate is not valid now")
        return cls(certificate, private_key)

    @property
    def certificate_pem(self) -> str:
        """Return the CA certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def private_key_pem(self) -> str:
        """Return the unencrypted private key in PKCS#8 PEM, for the private store only."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def fingerprint(self) -> str:
        """Return the SHA-256 fingerprint of the CA certificate, colon-separated hex."""
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.private_key.public_key()
            )
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        usage: CertificateUsage,
        now: datetime,
        validity: timedelta,
        crl_url: str | None,
    ) -> x509.Certificate:
        """Issue a certificate for a checked CSR (see `load_csr`).

        The subject is the CSR's common name only. Server certificates keep the DNS
        names and IP addresses the CSR asks for, so that clients can check the host.
        """
        public_key = csr.public_key()
        common_name = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        eku = {
            CertificateUsage.CLIENT: [ExtendedKeyUsageOID.CLIENT_AUTH],
            CertificateUsage.SERVER: [ExtendedKeyUsageOID.SERVER_AUTH],
            CertificateUsage.BOTH: [
                ExtendedKeyUsageOID.CLIENT_AUTH,
                ExtendedKeyUsageOID.SERVER_AUTH,
            ],
        }[usage]
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
            )
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + validity, self.certificate.not_valid_after_utc))
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if crl_url is not None:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        if usage is not CertificateUsage.CLIENT and (names := _host_names(csr)):
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=False
            )
        return builder.sign(self.private_key, hashes.SHA256())

    def build_crl(
        self, revocations: Iterable[Revocation], *, now: datetime, number: int
    ) -> x509.CertificateRevocationList:
        """Sign a revocation list valid for a week."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for revocation in revocations:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(revocation.serial)
                .revocation_date(revocation.revoked_at)
            )
            # RFC 5280 5.3.1: leave the reason out rather than say "unspecified".
            if revocation.reason is not x509.ReasonFlags.unspecified:
                entry = entry.add_extension(
                    x509.CRLReason(revocation.reason), critical=False
                )
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self.private_key, hashes.SHA256())


def _host_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """Return the DNS names and IP addresses a CSR asks for."""
    try:
        requested = csr.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return []
    names: list[x509.GeneralName] = [
        x509.DNSName(name) for name in requested.get_values_for_type(x509.DNSName)
    ]
    names.extend(
        x509.IPAddress(address)
        for address in requested.get_values_for_type(x509.IPAddress)
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )
    return names


def certificate_pem(certificate: x509.Certificate) -> str:
    """Return a certificate in PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    """Return a revocation list in PEM."""
    return crl.public_bytes(serialization.Encoding.PEM).decode()
