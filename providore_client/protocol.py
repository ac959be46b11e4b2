"""The device's side of Providore protocol version 1: signing requests, verifying answers.

Written independently of the integration's protocol module (docs/protocol.md): both
are tested against docs/protocol-vectors-v1.json, so that a mistake made in one shows
up against the other.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import hashlib
import hmac
import re
from typing import Final

from .errors import ResponseRejected

# The server signs answers for 15 minutes and lets clocks run 300 s ahead; so does the client.
RESPONSE_LIFETIME: Final = timedelta(minutes=15)
REQUEST_LIFETIME: Final = timedelta(minutes=15)
MAX_CLOCK_SKEW: Final = timedelta(seconds=300)

_BODY_METHODS: Final = ("POST", "PUT")
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
_SECRET_RE: Final = re.compile(r"[!-~]{16,32}", re.ASCII)
_FIRMWARE_VERSION_RE: Final = re.compile(r"[!-~]{1,64}", re.ASCII)
_TIME_RE: Final = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?", re.ASCII
)


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format a time as the 20 characters YYYY-MM-DDTHH:MM:SSZ, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time of an answer (no zone means UTC)."""
    if _TIME_RE.fullmatch(value) is None:
        raise ResponseRejected(f"unreadable time in the answer: {value[:40]!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ResponseRejected(f"unreadable time in the answer: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def is_valid_key_id(value: str) -> bool:
    """Return whether value is 1 to 32 characters of A-Z a-z 0-9 _ -."""
    return _KEY_ID_RE.fullmatch(value) is not None


def is_valid_secret(value: str) -> bool:
    """Return whether value is 16 to 32 printable ASCII characters without spaces."""
    return _SECRET_RE.fullmatch(value) is not None


def is_valid_firmware_version(value: str) -> bool:
    """Return whether value is 1 to 64 printable ASCII characters without spaces."""
    return _FIRMWARE_VERSION_RE.fullmatch(value) is not None


def hmac_base64(secret: str, message: bytes) -> str:
    """Return the standard base64 of HMAC-SHA256 keyed with the secret's UTF-8 bytes."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def request_message(
    method: str,
    path: str,
    firmware_version: str,
    created_at: str,
    expiry: str,
    body: bytes | None,
) -> bytes:
    """Return the bytes a device signs: five lines, plus the body for POST and PUT."""
    method = method.upper()
    text = f"{method}\n{path}\n{firmware_version}\n{created_at}\n{expiry}"
    message = text.encode("utf-8")
    if method in _BODY_METHODS:
        message += b"\n" + (body or b"")
    return message


def request_headers(
    *,
    key_id: str,
    secret: str,
    method: str,
    path: str,
    firmware_version: str,
    now: datetime,
    body: bytes | None = None,
    lifetime: timedelta = REQUEST_LIFETIME,
) -> dict[str, str]:
    """Return the four authentication headers of a request made at `now`."""
    created_at = format_time(now)
    expiry = format_time(now + lifetime)
    signature = hmac_base64(
        secret,
        request_message(method, path, firmware_version, created_at, expiry, body),
    )
    return {
        "Authorization": f'Hmac key-id="{key_id}", signature="{signature}"',
        "X-Firmware-Version": firmware_version,
        "Created-At": created_at,
        "Expiry": expiry,
    }


def response_message(body: bytes, created_at: str, expiry: str) -> bytes:
    """Return the bytes the server signs in an answer: body, created-at, expiry."""
    return b"\n".join((body, created_at.encode("utf-8"), expiry.encode("utf-8")))


@dataclass(frozen=True, slots=True)
class ResponseStamp:
    """The signing headers of an answer."""

    created_at: str
    expiry: str
    signature: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ResponseStamp:
        """Read the three signing headers; an answer without them is rejected."""
        values = [headers.get(name) for name in ("created-at", "expiry", "signature")]
        created_at, expiry, signature = values
        if created_at is None or expiry is None or signature is None:
            raise ResponseRejected("the answer is not signed")
        return cls(created_at, expiry, signature)

    def check_window(
        self, now: datetime, *, accept_expiry_at_creation: bool = False
    ) -> None:
        """Reject an answer that is expired, from the future, or valid for too long.

        An answer whose expiry equals its created-at (the original Providore server's
        fault) is expired when it is made: it is refused with a message naming the
        fault, or, with `accept_expiry_at_creation`, held valid for RESPONSE_LIFETIME.
        """
        created, expires = parse_time(self.created_at), parse_time(self.expiry)
        if expires == created:
            if not accept_expiry_at_creation:
                raise ResponseRejected(
                    f"the answer's expiry equals its created-at ({self.expiry}), so it "
                    "expired when it was made: a known fault of the original Providore "
                    "server (accept it with --accept-expiry-at-creation)"
                )
            expires = created + RESPONSE_LIFETIME
        if expires <= now:
            raise ResponseRejected(
                f"the answer expired at {format_time(expires)} (is this clock right?)"
            )
        if created > now + MAX_CLOCK_SKEW:
            raise ResponseRejected(
                f"the answer was created in the future, at {self.created_at} (is this clock right?)"
            )
        if not timedelta(0) <= expires - created <= RESPONSE_LIFETIME:
            raise ResponseRejected("the answer has an invalid validity window")


class ResponseVerifier:
    """Check an answer's signature over a body that may arrive in pieces."""

    def __init__(self, secret: str, stamp: ResponseStamp) -> None:
        """Start the HMAC; the stamp's times are appended when the body is complete."""
        self._stamp = stamp
        self._mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        """Add the next piece of the body."""
        self._mac.update(chunk)

    def verify(self) -> None:
        """Raise ResponseRejected unless the signature matches the whole body."""
        # The body went in through update(): add the rest of the message after it.
        self._mac.update(
            response_message(b"", self._stamp.created_at, self._stamp.expiry)
        )
        expected = base64.b64encode(self._mac.digest())
        if not hmac.compare_digest(expected, self._stamp.signature.encode("utf-8")):
            raise ResponseRejected("the answer's signature does not match")


def verify_response(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    *,
    accept_expiry_at_creation: bool = False,
) -> None:
    """Check a whole answer: its validity window at `now`, then its signature."""
    stamp = ResponseStamp.from_headers(headers)
    stamp.check_window(now, accept_expiry_at_creation=accept_expiry_at_creation)
    verifier = ResponseVerifier(secret, stamp)
    verifier.update(body)
    verifier.verify()
