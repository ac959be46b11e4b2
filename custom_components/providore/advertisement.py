"""What Providore advertises by zeroconf, so that devices find it on their own.

The service type and TXT layout are specified in docs/protocol.md ("Finding
the server"). No Home Assistant import: registering the service on Home Assistant's
shared zeroconf instance is `server_advertisement`'s job.
"""

from __future__ import annotations

import re
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes

SERVICE_TYPE: Final = "_providore._tcp.local."
PROTOCOL_VERSION: Final = 1
API_PATH: Final = "/api/providore"

_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9._~-]+)+", re.ASCII)


def ca_fingerprint(certificate: x509.Certificate) -> str:
    """Return the SHA-256 of the certificate's DER: 64 lowercase hex digits, no colons."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def advertisement_properties(
    *, tls: bool, ca_certificate: x509.Certificate, path: str = API_PATH
) -> dict[str, str]:
    """Return the TXT properties of the `_providore._tcp` service."""
    if _PATH_RE.fullmatch(path) is None or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise ValueError(f"not an API base path: {path!r}")
    return {
        "path": path,
        "protocol": str(PROTOCOL_VERSION),
        "tls": "1" if tls else "0",
        "ca": ca_fingerprint(ca_certificate),
    }
