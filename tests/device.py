"""A device's side of the protocol, written independently of the integration's code.

Tests sign requests and check answers with this, so that a mistake in the
integration's protocol module cannot hide behind the same mistake here.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
import hashlib
import hmac

from .conftest import KEY_ID, SECRET_KEY

BASE = "/api/providore"


def iso(moment: datetime) -> str:
    """Format a time the way the original firmware does."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hmac_b64(secret: str, message: bytes) -> str:
    """Return base64 HMAC-SHA256."""
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    key_id: str = KEY_ID,
    secret: str = SECRET_KEY,
    firmware_version: str = "1.0.0",
    created: datetime | None = None,
    lifetime: timedelta = timedelta(minutes=15),
    quoted: bool = True,
) -> dict[str, str]:
    """Return the headers of a signed request, in the quoted or the bare style."""
    created = created or datetime.now(UTC)
    created_at, expiry = iso(created), iso(created + lifetime)
    lines = [method, path, firmware_version, created_at, expiry]
    message = "\n".join(lines).encode()
    if method in ("POST", "PUT"):
        message += b"\n" + (body or b"")
    signature = hmac_b64(secret, message)
    if quoted:
        authorization = f'Hmac key-id="{key_id}", signature="{signature}"'
    else:
        authorization = f"Hmac key-id={key_id}, signature={signature}"
    return {
        "Authorization": authorization,
        "X-Firmware-Version": firmware_version,
        "Created-At": created_at,
        "Expiry": expiry,
    }


def response_is_signed(
    body: bytes, headers: dict[str, str], secret: str = SECRET_KEY
) -> bool:
    """Return whether a 200 answer carries a valid signature over its body."""
    message = (
        body
        + b"\n"
        + headers["created-at"].encode()
        + b"\n"
        + headers["expiry"].encode()
    )
    return hmac.compare_digest(hmac_b64(secret, message), headers["signature"])
