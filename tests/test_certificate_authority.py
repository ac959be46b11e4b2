"""The pure CA module: creating and importing a CA, checking CSRs, issuing, the CRL.

Every issued certificate is checked by the openssl command line, not only by
the library that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import pytest

from custom_components.providore.certificate_authority import (
    CAExpired,
    CertificateAuthority,
    CertificateUsage,
    CSRRejected,
    KeyMismatch,
    KeyPasswordRequired,
    NotACA,
    Revocation,
    UnreadableCertificate,
    UnreadableKey,
    UnsupportedCAKey,
    WrongKeyPassword,
    certificate_pem,
    crl_pem,
    load_csr,
)

from .conftest import KEY_ID
from .pki import (
    ec_key,
    key_pem,
    make_csr,
    openssl,
    openssl_ca,
    openssl_rsa_csr,
    openssl_verify,
    rsa_key,
    tamper_signature,
)

# openssl checks validity against the real clock: issue for the real now.
NOW = datetime.now(UTC).replace(microsecond=0)
YEAR = timedelta(days=365)
CRL_URL = "http://ha.lan:8123/api/providore/certificates/crl.pem"


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    """Return one CA for the module (key generation is the slow part)."""
    return CertificateAuthority.create("Home", NOW)


def _issue(
    authority: CertificateAuthority,
    csr_pem: bytes,
    usage: CertificateUsage = CertificateUsage.CLIENT,
    validity: timedelta = YEAR,
    crl_url: str | None = CRL_URL,
) -> x509.Certificate:
    return authority.issue(
        load_csr(csr_pem, KEY_ID),
        usage=usage,
        now=NOW,
        validity=validity,
        crl_url=crl_url,
    )


def _ext[T: x509.ExtensionType](certificate: x509.Certificate, kind: type[T]) -> T:
    return certificate.extensions.get_extension_for_class(kind).value


# --- the CA ----------------------------------------------------------------------


def test_created_ca(authority: CertificateAuthority, tmp_path: Path) -> None:
    certificate = authority.certificate
    assert certificate.subject.rfc4514_string() == "CN=Providore CA (Home),O=Providore"
    assert certificate.issuer == certificate.subject
    assert isinstance(authority.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(authority.private_key.curve, ec.SECP256R1)
    assert certificate.not_valid_after_utc - NOW == timedelta(days=3650)
    assert certificate.not_valid_before_utc <= NOW
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = _ext(certificate, x509.KeyUsage)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert 0 < certificate.serial_number < 2**128
    assert len(authority.fingerprint.split(":")) == 32
    # openssl accepts it as a self-signed root.
    done = openssl_verify(
        tmp_path, authority.certificate_pem, authority.certificate_pem, purpose="any"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_long_location_name_fits_the_common_name() -> None:
    authority = CertificateAuthority.create("x" * 100, NOW)
    [name] = authority.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert len(name.value) == 64


def test_ca_round_trip(authority: CertificateAuthority) -> None:
    loaded = CertificateAuthority.load(
        authority.certificate_pem.encode(), authority.private_key_pem.encode()
    )
    assert loaded.certificate == authority.certificate
    assert loaded.fingerprint == authority.fingerprint
    assert authority.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_import_openssl_ca_without_key_usage(tmp_path: Path) -> None:
    """A CA made by `openssl req -x509` (no key usage extension) is accepted."""
    certificate, key = openssl_ca(tmp_path)
    loaded = CertificateAuthority.load(
        certificate.encode(), key.encode(), now=datetime.now(UTC)
    )
    with pytest.raises(x509.ExtensionNotFound):
        loaded.certificate.extensions.get_extension_for_class(x509.KeyUsage)
    # And it can issue: openssl verifies what it signs.
    issued = _issue(loaded, make_csr(ec_key(), KEY_ID))
    done = openssl_verify(tmp_path, certificate, certificate_pem(issued))
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_encrypted_key(tmp_path: Path) -> None:
    certificate, key = openssl_ca(tmp_path, password="s3cret-pass")
    assert "ENCRYPTED" in key
    with pytest.raises(KeyPasswordRequired) as err:
        CertificateAuthority.load(certificate.encode(), key.encode())
    assert err.value.code == "password_required"
    with pytest.raises(WrongKeyPassword):
        CertificateAuthority.load(certificate.encode(), key.encode(), b"wrong")
    loaded = CertificateAuthority.load(
        certificate.encode(), key.encode(), b"s3cret-pass"
    )
    # Stored unencrypted (in the private store), readable without the password.
    assert "ENCRYPTED" not in loaded.private_key_pem


def test_import_password_for_unencrypted_key(authority: CertificateAuthority) -> None:
    loaded = CertificateAuthority.load(
        authority.certificate_pem.encode(),
        authority.private_key_pem.encode(),
        b"not needed",
    )
    assert loaded.certificate == authority.certificate


def test_import_refusals(authority: CertificateAuthority) -> None:
    cert = authority.certificate_pem.encode()
    key = authority.private_key_pem.encode()
    leaf = certificate_pem(_issue(authority, make_csr(ec_key(), KEY_ID))).encode()
    cases: list[tuple[bytes, bytes, type[Exception]]] = [
        (b"not a certificate", key, UnreadableCertificate),
        (cert, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", UnreadableKey),
        (cert, b"garbage", UnreadableKey),
        (cert, key_pem(ec_key()), KeyMismatch),
        (leaf, key, KeyMismatch),
    ]  # fmt: skip
    for certificate, private_key, error in cases:
        with pytest.raises(error) as err:
            CertificateAuthority.load(certificate, private_key)
        assert 0 < len(str(err.value)) <= 64


def _self_signed(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    extensions: list[x509.ExtensionType],
    *,
    not_after: datetime = NOW + YEAR,
) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - YEAR)
        .not_valid_after(not_after)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_usage(*, cert_sign: bool, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param([], id="no-basic-constraints"),
        pytest.param(
            [x509.BasicConstraints(ca=False, path_length=None)], id="ca-false"
        ),
        pytest.param(
            [
                x509.BasicConstraints(ca=True, path_length=None),
                _key_usage(cert_sign=False, crl_sign=True),
            ],
            id="no-cert-sign",
        ),
        pytest.param(
            [
                x509.BasicConstraints(ca=True, path_length=None),
                _key_usage(cert_sign=True, crl_sign=False),
            ],
            id="no-crl-sign",
        ),
    ],
)
def test_import_refuses_what_is_not_a_ca(extensions: list[x509.ExtensionType]) -> None:
    key = ec_key()
    with pytest.raises(NotACA) as err:
        CertificateAuthority.load(_self_signed(key, extensions), key_pem(key))
    assert err.value.code == "not_a_ca"


def test_import_refuses_an_expired_ca() -> None:
    key = ec_key()
    certificate = _self_signed(
        key,
        [x509.BasicConstraints(ca=True, path_length=None)],
        not_after=NOW - timedelta(days=1),
    )
    with pytest.raises(CAExpired):
        CertificateAuthority.load(certificate, key_pem(key), now=NOW)


def test_import_rsa_ca(tmp_path: Path) -> None:
    key = rsa_key()
    certificate = _self_signed(
        key,
        [
            x509.BasicConstraints(ca=True, path_length=None),
            _key_usage(cert_sign=True, crl_sign=True),
        ],
    )
    loaded = CertificateAuthority.load(certificate, key_pem(key), now=NOW)
    issued = _issue(loaded, make_csr(ec_key(), KEY_ID))
    # Without a subject key identifier on the CA, the AKI comes from its key.
    aki = _ext(issued, x509.AuthorityKeyIdentifier)
    assert aki == x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())


def test_import_refuses_a_key_on_an_unsupported_curve(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    key_path, cert_path = tmp_path / "weak.key", tmp_path / "weak.pem"
    done = openssl(
        "ecparam", "-name", "secp112r1", "-genkey", "-noout", "-out", key_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = openssl(
        "req", "-x509", "-key", key_path, "-subj", "/CN=weak", "-days", "2",
        "-out", cert_path, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key, certificate = key_path.read_bytes(), cert_path.read_bytes()
    with pytest.raises(UnsupportedCAKey):
        CertificateAuthority.load(authority.certificate_pem.encode(), key)
    with pytest.raises(UnsupportedCAKey):
        CertificateAuthority.load(certificate, authority.private_key_pem.encode())


def test_import_refuses_an_ed25519_key() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UnsupportedCAKey):
        CertificateAuthority.load(
            _self_signed(ec_key(), [x509.BasicConstraints(ca=True, path_length=None)]),
            pem,
        )


# --- CSRs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda: b"garbage", "not a PEM certificate request", id="garbage"),
        pytest.param(
            lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "not a PEM certificate request",
            id="broken-pem",
        ),
        pytest.param(
            lambda: tamper_signature(make_csr(ec_key(), KEY_ID)),
            "CSR signature does not verify",
            id="bad-signature",
        ),
        pytest.param(
            lambda: tamper_signature(make_csr(rsa_key(), KEY_ID)),
            "CSR signature does not verify",
            id="bad-rsa-signature",
        ),
        pytest.param(
            lambda: make_csr(rsa_key(1024), KEY_ID),
            "RSA key smaller than 2048 bits",
            id="rsa-1024",
        ),
        pytest.param(
            lambda: make_csr(ec_key(ec.SECP521R1()), KEY_ID),
            "EC key must be on P-256 or P-384",
            id="p-521",
        ),
        pytest.param(
            lambda: make_csr(ec_key(ec.SECP256K1()), KEY_ID),
            "EC key must be on P-256 or P-384",
            id="secp256k1",
        ),
        pytest.param(
            lambda: make_csr(ed25519.Ed25519PrivateKey.generate(), KEY_ID),
            "key must be RSA or EC",
            id="ed25519",
        ),
        pytest.param(
            lambda: make_csr(ec_key(), "0badc0de"),
            "CSR common name must equal the key id",
            id="wrong-cn",
        ),
        pytest.param(
            lambda: make_csr(ec_key(), None),
            "CSR common name must equal the key id",
            id="no-cn",
        ),
        pytest.param(
            lambda: make_csr(ec_key(), KEY_ID.upper()),
            "CSR common name must equal the key id",
            id="cn-other-case",
        ),
    ],
)
def test_bad_csr(make: object, reason: str) -> None:
    assert callable(make)
    with pytest.raises(CSRRejected) as err:
        load_csr(make(), KEY_ID)
    assert str(err.value) == reason
    assert len(reason) <= 64


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: ec_key(), id="p-256"),
        pytest.param(lambda: ec_key(ec.SECP384R1()), id="p-384"),
        pytest.param(lambda: rsa_key(2048), id="rsa-2048"),
        pytest.param(lambda: rsa_key(3072), id="rsa-3072"),
    ],
)
def test_good_csr(key: object) -> None:
    assert callable(key)
    csr = load_csr(make_csr(key(), KEY_ID), KEY_ID)
    assert csr.is_signature_valid


# --- issuing ---------------------------------------------------------------------


def test_issued_certificate(authority: CertificateAuthority, tmp_path: Path) -> None:
    device_key = ec_key()
    issued = _issue(authority, make_csr(device_key, KEY_ID, dns_names=("x.lan",)))

    assert issued.subject.rfc4514_string() == f"CN={KEY_ID}"
    assert issued.issuer == authority.certificate.subject
    assert 0 < issued.serial_number < 2**128
    assert issued.not_valid_after_utc == NOW + YEAR
    assert issued.not_valid_before_utc == NOW - timedelta(minutes=5)
    constraints = issued.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = issued.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert list(_ext(issued, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert _ext(issued, x509.SubjectKeyIdentifier) == (
        x509.SubjectKeyIdentifier.from_public_key(device_key.public_key())
    )
    assert _ext(issued, x509.AuthorityKeyIdentifier).key_identifier == (
        _ext(authority.certificate, x509.SubjectKeyIdentifier).digest
    )
    [point] = _ext(issued, x509.CRLDistributionPoints)
    assert point.full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    # A client certificate carries no host names, even when the CSR asks.
    with pytest.raises(x509.ExtensionNotFound):
        issued.extensions.get_extension_for_class(x509.SubjectAlternativeName)

    done = openssl_verify(tmp_path, authority.certificate_pem, certificate_pem(issued))
    assert done.returncode == 0, done.stdout + done.stderr
    refused = openssl_verify(
        tmp_path,
        authority.certificate_pem,
        certificate_pem(issued),
        purpose="sslserver",
    )
    assert refused.returncode != 0


def test_serials_are_random(authority: CertificateAuthority) -> None:
    csr = make_csr(ec_key(), KEY_ID)
    serials = {_issue(authority, csr).serial_number for _ in range(8)}
    assert len(serials) == 8
    assert max(serials).bit_length() > 100


def test_command_line_client_csr(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    """The original client's CSR: RSA 2048, PKCS#1 key, subject CN only."""
    request = openssl_rsa_csr(tmp_path, KEY_ID)
    issued = _issue(authority, request.csr_pem)
    assert _ext(issued, x509.KeyUsage).key_encipherment
    done = openssl_verify(tmp_path, authority.certificate_pem, certificate_pem(issued))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("usage", "expected", "purposes"),
    [
        (CertificateUsage.SERVER, [ExtendedKeyUsageOID.SERVER_AUTH], ["sslserver"]),
        (
            CertificateUsage.BOTH,
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            ["sslclient", "sslserver"],
        ),
    ],
)
def test_server_usage(
    authority: CertificateAuthority,
    tmp_path: Path,
    usage: CertificateUsage,
    expected: list[x509.ObjectIdentifier],
    purposes: list[str],
) -> None:
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KEY_ID)])
    )
    csr = csr.add_extension(
        x509.SubjectAlternativeName(
            [
                x509.DNSName("sensor.lan"),
                x509.IPAddress(ipaddress.ip_address("192.0.2.10")),
            ]
        ),
        critical=False,
    )
    pem = csr.sign(ec_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    issued = _issue(authority, pem, usage=usage)
    assert list(_ext(issued, x509.ExtendedKeyUsage)) == expected
    names = _ext(issued, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["sensor.lan"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10")
    ]
    for purpose in purposes:
        done = openssl_verify(
            tmp_path,
            authority.certificate_pem,
            certificate_pem(issued),
            purpose=purpose,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_server_usage_without_host_names(authority: CertificateAuthority) -> None:
    issued = _issue(authority, make_csr(ec_key(), KEY_ID), CertificateUsage.SERVER)
    with pytest.raises(x509.ExtensionNotFound):
        issued.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_without_crl_url(authority: CertificateAuthority) -> None:
    issued = _issue(authority, make_csr(ec_key(), KEY_ID), crl_url=None)
    with pytest.raises(x509.ExtensionNotFound):
        issued.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_validity_ends_with_the_ca(authority: CertificateAuthority) -> None:
    issued = _issue(
        authority, make_csr(ec_key(), KEY_ID), validity=timedelta(days=20000)
    )
    assert issued.not_valid_after_utc == authority.certificate.not_valid_after_utc


# --- the CRL ---------------------------------------------------------------------


def test_crl(authority: CertificateAuthority, tmp_path: Path) -> None:
    revoked = _issue(authority, make_csr(ec_key(), KEY_ID))
    dismissed = _issue(authority, make_csr(ec_key(), KEY_ID))
    kept = _issue(authority, make_csr(ec_key(), KEY_ID))
    crl = authority.build_crl(
        [
            Revocation(revoked.serial_number, NOW, x509.ReasonFlags.superseded),
            Revocation(dismissed.serial_number, NOW, x509.ReasonFlags.unspecified),
        ],
        now=NOW,
        number=7,
    )

    assert crl.is_signature_valid(authority.private_key.public_key())
    assert crl.next_update_utc == NOW + timedelta(days=7)
    assert crl.last_update_utc == NOW
    assert _crl_ext(crl, x509.CRLNumber).crl_number == 7
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.superseded
    )
    # "Unspecified" is left out rather than written (RFC 5280).
    entry = crl.get_revoked_certificate_by_serial_number(dismissed.serial_number)
    assert entry is not None
    assert len(entry.extensions) == 0
    assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None

    ca, crl_text = authority.certificate_pem, crl_pem(crl)
    assert crl_text.startswith("-----BEGIN X509 CRL-----")
    done = openssl_verify(tmp_path, ca, certificate_pem(revoked), crl_pem=crl_text)
    assert done.returncode != 0
    assert "certificate revoked" in done.stdout + done.stderr
    done = openssl_verify(tmp_path, ca, certificate_pem(kept), crl_pem=crl_text)
    assert done.returncode == 0, done.stdout + done.stderr


def _crl_ext[T: x509.ExtensionType](
    crl: x509.CertificateRevocationList, kind: type[T]
) -> T:
    return crl.extensions.get_extension_for_class(kind).value
