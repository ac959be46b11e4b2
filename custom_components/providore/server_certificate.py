"""Home Assistant's own HTTPS certificate, issued by Providore's CA.

Pure: no Home Assistant import. Served by Home Assistant (`http: ssl_certificate:` and
`ssl_key:`), this certificate lets a device that trusts only Providore's CA (an ESPHome
device with `ca_certificate_path`) check whom it talks to. The private key is made here,
written once to a file readable by its owner only (mode 0600), and never shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
import ipaddress
import os
from pathlib import Path
import re
import tempfile
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .certificate_authority import (
    CertificateAuthority,
    CertificateUsage,
    certificate_pem,
)

MAX_HOSTS: Final = 20
CERTIFICATE_FILE: Final = "providore_server_certificate.pem"
KEY_FILE: Final = "providore_server_key.pem"
COMMON_NAME: Final = "Home Assistant"
_LABEL_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_MAX_DNS_NAME_LENGTH: Final = 253


class InvalidHosts(ValueError):  # noqa: N818
    """The host names given cannot all go into a certificate; `host` is the first bad one."""

    def __init__(self, message: str, host: str = "") -> None:
        """Keep the offending host (shown to the user)."""
        super().__init__(message)
        self.host = host


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """A certificate for Home Assistant and its private key, in PEM."""

    certificate_pem: str
    private_key_pem: str
    not_after: datetime
    hosts: tuple[str, ...]


def parse_hosts(values: Iterable[str]) -> list[x509.GeneralName]:
    """Return the DNS names and IP addresses to certify; raise InvalidHosts.

    Host names are plain ASCII names (letters, digits and hyphens between dots), no
    wildcards, no URLs; each host is named once.
    """
    names: list[x509.GeneralName] = []
    for value in values:
        host = value.strip().lower()
        if not host:
            continue
        name = _general_name(host)
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidHosts("Give at least one host name or IP address")
    if len(names) > MAX_HOSTS:
        raise InvalidHosts(f"Give at most {MAX_HOSTS} host names")
    return names


def _general_name(host: str) -> x509.GeneralName:
    with suppress(ValueError):
        return x509.IPAddress(ipaddress.ip_address(host))
    labels = host.removesuffix(".").split(".")
    if len(host) > _MAX_DNS_NAME_LENGTH or not all(
        _LABEL_RE.fullmatch(label) for label in labels
    ):
        raise InvalidHosts(
            f"{host[:80]!r} is not a host name or IP address", host=host[:80]
        )
    return x509.DNSName(".".join(labels))


def issue_server_certificate(
    authority: CertificateAuthority,
    names: list[x509.GeneralName],
    now: datetime,
    validity: timedelta,
) -> ServerCertificate:
    """Make a key and have the CA certify it for `names` (CPU work: run it in an executor)."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate = authority.issue(
        request,
        usage=CertificateUsage.SERVER,
        now=now,
        validity=validity,
        crl_url=None,
    )
    return ServerCertificate(
        certificate_pem=certificate_pem(certificate),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        not_after=certificate.not_valid_after_utc,
        hosts=tuple(str(name.value) for name in names),
    )


def write_server_certificate(
    directory: Path, issued: ServerCertificate
) -> tuple[Path, Path]:
    """Write the certificate and its key (mode 0600) into `directory`; return both paths.

    Both are written to temporary names and synced first, then renamed, so Home
    Assistant never reads half a file, and a failed write changes neither. Blocking:
    run it in an executor.
    """
    certificate = directory / CERTIFICATE_FILE
    key = directory / KEY_FILE
    written: list[Path] = []
    try:
        written.append(_write_temporary(key, issued.private_key_pem, 0o600))
        written.append(_write_temporary(certificate, issued.certificate_pem, 0o644))
    except BaseException:
        for temporary in written:
            temporary.unlink(missing_ok=True)
        raise
    written[0].replace(key)
    written[1].replace(certificate)
    return certificate, key


def _write_temporary(path: Path, text: str, mode: int) -> Path:
    """Write `text` to a synced temporary file beside `path`; return the file."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
