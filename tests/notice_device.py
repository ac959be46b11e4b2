"""A device's side of push notices, written from the specification alone.

It imports neither the integration nor the reference client, so that a mistake in
either cannot hide behind the same mistake here; the vectors hold all three to the
same bytes and outcomes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

KNOWN_CHANGES = ("all", "certificate", "check", "config", "firmware")
# The whole notice in one expression: label, key id, counter, created-at, expiry,
# changes, signature; each line ends with \n except the last.
NOTICE_RE = re.compile(
    rb"(providore-notice-v1\n([A-Za-z0-9_-]{1,32})\n([1-9][0-9]{0,18})\n"
    rb"([1-9][0-9]{0,10})\n([1-9][0-9]{0,10})\n([a-z]+(?:,[a-z]+)*))\n"
    rb"([A-Za-z0-9+/]{43}=)"
)


def mac(secret: str, message: bytes) -> bytes:
    """Return the base64 HMAC-SHA256 of message keyed with the secret."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())


def make_notice(
    key_id: str,
    secret: str,
    counter: int,
    created: int,
    expiry: int,
    changes: list[str],
) -> bytes:
    """Return a signed notice (changes in alphabetical order)."""
    message = (
        f"providore-notice-v1\n{key_id}\n{counter}\n{created}\n{expiry}\n"
        + ",".join(sorted(changes))
    ).encode()
    return message + b"\n" + mac(secret, message)


def check_notice(
    data: bytes, key_id: str, secret: str, now: int, last_counter: int
) -> str:
    """Return "accepted" or the first rule the notice breaks, as the vectors name it."""
    match = NOTICE_RE.fullmatch(data) if len(data) <= 512 else None
    if match is None:
        return "malformed"
    message, notice_key, counter, created, expiry, changes, signature = match.groups()
    words = changes.decode().split(",")
    # Each rule with the outcome when it fails, in the order the specification gives.
    rules = (
        (
            int(counter) < 2**63
            and 1 <= int(expiry) - int(created) <= 300
            and len(set(words)) == len(words)
            and set(words) <= set(KNOWN_CHANGES),
            "malformed",
        ),
        (notice_key.decode() == key_id, "another-device"),
        (hmac.compare_digest(mac(secret, message), signature), "bad-signature"),
        (int(created) - 300 <= now < int(expiry), "expired"),
        (int(counter) > last_counter, "replayed"),
    )
    return next((outcome for holds, outcome in rules if not holds), "accepted")
