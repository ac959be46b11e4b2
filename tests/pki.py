"""Test helpers that play a device's and a broker's part in X.509: CSRs, keys, openssl.

These are blocking (files, subprocesses, key generation): async tests call them
through `hass.async_add_executor_job`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

type PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """Return a new EC key, P-256 unless told otherwise."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """Return a new RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_csr(
    key: PrivateKey | ed25519.Ed25519PrivateKey,
    common_name: str | None,
    *,
    dns_names: tuple[str, ...] = (),
) -> bytes:
    """Return a PEM CSR signed by `key` (no subject at all when common_name is None)."""
    subject = (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        if common_name is not None
        else x509.Name([])
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def tamper_signature(csr_pem: bytes) -> bytes:
    """Return the CSR with one bit of its signature flipped (it still parses)."""
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    )
    der[-5] ^= 0x01
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """Return a private key in PKCS#8 PEM, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the openssl command line; never raises on a non-zero exit."""
    return subprocess.run(  # noqa: S603
        ["openssl", *map(str, args)],  # noqa: S607
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@dataclass(frozen=True)
class CommandLineCSR:
    """A key and CSR made by the openssl command line."""

    key_path: Path
    csr_pem: bytes


def openssl_rsa_csr(folder: Path, common_name: str) -> CommandLineCSR:
    """Make a CSR the way the original certificate client does.

    RSA 2048 with the key in PKCS#1 (`BEGIN RSA PRIVATE KEY`), subject CN only.
    """
    key_path, csr_path = folder / f"{common_name}.key", folder / f"{common_name}.csr"
    done = openssl("genrsa", "-traditional", "-out", key_path, "2048", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert key_path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    done = openssl(
        "req", "-new", "-key", key_path, "-subj", f"/CN={common_name}",
        "-out", csr_path, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return CommandLineCSR(key_path, csr_path.read_bytes())


def openssl_ca(folder: Path, *, password: str | None = None) -> tuple[str, str]:
    """Make a CA with `openssl req -x509`, like many Mosquitto guides; return PEMs.

    It carries basic constraints CA:TRUE and no key usage extension.
    """
    key_path, cert_path = folder / "own-ca.key", folder / "own-ca.pem"
    encryption = ["-passout", f"pass:{password}"] if password else ["-noenc"]
    done = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        *encryption, "-keyout", key_path, "-out", cert_path, "-days", "30",
        "-subj", "/CN=Home Mosquitto CA", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cert_path.read_text(), key_path.read_text()


def openssl_verify(
    folder: Path,
    ca_pem: str,
    certificate_pem: str,
    *,
    crl_pem: str | None = None,
    purpose: str = "sslclient",
) -> subprocess.CompletedProcess[str]:
    """Run `openssl verify` on a certificate against the CA (and the CRL, when given)."""
    ca_path, cert_path = folder / "verify-ca.pem", folder / "verify-cert.pem"
    ca_path.write_text(ca_pem)
    cert_path.write_text(certificate_pem)
    args: list[str | Path] = ["verify", "-purpose", purpose, "-CAfile", ca_path]
    if crl_pem is not None:
        crl_path = folder / "verify-crl.pem"
        crl_path.write_text(crl_pem)
        args += ["-crl_check", "-CRLfile", crl_path]
    return openssl(*args, cert_path, cwd=folder)
