"""Wire format of the Providore device protocol, version 1.

Parses and verifies signed device requests and signs responses, as described in
docs/protocol.md. Pure standard library, so it can be tested without Home Assistant.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
import hashlib
import hmac
import re
import secrets
import string
from typing import Final, NamedTuple

MAX_BODY_BYTES: Final = 64 * 1024
MAX_FIRMWARE_VERSION_LENGTH: Final = 64
RESPONSE_LIFETIME: Final = timedelta(minutes=15)

HEADER_AUTHORIZATION: Final = "Authorization"
HEADER_FIRMWARE_VERSION: Final = "X-Firmware-Version"
HEADER_CREATED_AT: Final = "Created-At"
HEADER_EXPIRY: Final = "Expiry"
# Each is signed, so each must be sent exactly once.
SIGNED_HEADERS: Final = (
    HEADER_AUTHORIZATION,
    HEADER_FIRMWARE_VERSION,
    HEADER_CREATED_AT,
    HEADER_EXPIRY,
)

RESPONSE_CREATED_AT: Final = "created-at"
RESPONSE_EXPIRY: Final = "expiry"
RESPONSE_SIGNATURE: Final = "signature"

_SIGNED_BODY_METHODS: Final = frozenset({"POST", "PUT"})
# Signs for unknown key ids, so they cost the same as a wrong signature.
_DUMMY_SECRET: Final = "providore-dummy-key-never-valid!"  # noqa: S105
_SECRET_ALPHABET: Final = string.ascii_letters + string.digits

# Linear on any input: DOTALL lets the tail match everything; parameters are checked later.
_AUTHORIZATION_RE: Final = re.compile(r"([A-Za-z]+)[ \t]+(.*)", re.ASCII | re.DOTALL)
# A parameter value, quoted or bare: visible ASCII except quote, comma, backslash.
_VALUE: Final = r"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]*"
_PARAMETER_RE: Final = re.compile(
    rf'([A-Za-z][A-Za-z0-9_-]*)=(?:"({_VALUE})"|({_VALUE}))', re.ASCII
)
# The form every known device sends, read in one step; any other goes the long way.
_CANONICAL_AUTHORIZATION_RE: Final = re.compile(
    r'Hmac key-id="([A-Za-z0-9_-]{1,32})", signature="([A-Za-z0-9+/]{1,86}={0,2})"',
    re.ASCII,
)
_TIMESTAMP_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
_SECRET_KEY_RE: Final = re.compile(r"[!-~]{16,32}", re.ASCII)
# What a device may report as its firmware version: short, printable, no spaces.
_FIRMWARE_VERSION_RE: Final = re.compile(
    rf"[!-~]{{1,{MAX_FIRMWARE_VERSION_LENGTH}}}", re.ASCII
)


class ProtocolError(Exception):
    """A request the protocol refuses, with its HTTP `status`.

    `reason` is safe to send to the client: never a secret, a received signature,
    or whether a key id exists.
    """

    status: int = 400

    def __init__(self, reason: str) -> None:
        """Store the client-safe reason."""
        super().__init__(reason)
        self.reason = reason


class MalformedRequest(ProtocolError):  # noqa: N818
    """A request whose authentication headers are missing or unparsable."""

    status = 400


class Unauthorized(ProtocolError):  # noqa: N818
    """A request whose signature or validity window is refused."""

    status = 401


class PayloadTooLarge(ProtocolError):  # noqa: N818
    """A request body larger than MAX_BODY_BYTES."""

    status = 413


class SignedRequest(NamedTuple):
    """The authentication headers of a device request."""

    key_id: str
    signature: str
    firmware_version: str
    created_at_header: str
    expiry_header: str
    created_at: datetime
    expiry: datetime


def parse_authorization(value: str) -> tuple[str, str]:
    """Return (key_id, signature) from an `Authorization: Hmac ...` header."""
    if canonical := _CANONICAL_AUTHORIZATION_RE.fullmatch(value):
        return canonical.group(1), canonical.group(2)
    match = _AUTHORIZATION_RE.fullmatch(value.strip(" \t"))
    if match is None:
        raise MalformedRequest("malformed Authorization header")
    if match.group(1).lower() != "hmac":
        raise MalformedRequest("unsupported Authorization scheme")
    parameters: dict[str, str] = {}
    for part in match.group(2).split(","):
        parameter = _PARAMETER_RE.fullmatch(part.strip(" \t"))
        if parameter is None:
            raise MalformedRequest("malformed Authorization header")
        name = parameter.group(1).lower()
        content = parameter.group(2) or parameter.group(3)
        if not content:
            raise MalformedRequest(f"empty {name} in Authorization header")
        if name in parameters:
            raise MalformedRequest(f"duplicate {name} in Authorization header")
        parameters[name] = content
    for required in ("key-id", "signature"):
        if required not in parameters:
            raise MalformedRequest(f"missing {required} in Authorization header")
    return parameters["key-id"], parameters["signature"]


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 date and time; no zone means UTC. Returns it in UTC."""
    return _parse_timestamp(value)


# Devices calling in the same second send the same timestamps: each is parsed once.
@lru_cache(maxsize=4096)
def _parse_timestamp(value: str) -> datetime:
    if _TIMESTAMP_RE.fullmatch(value) is None:
        raise MalformedRequest("invalid timestamp")
    try:
        parsed = datetime.fromisoformat(value.upper())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise MalformedRequest("invalid timestamp") from err


def _required_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise MalformedRequest(f"missing {name} header")
    return value


def _timestamp_header(headers: Mapping[str, str], name: str) -> tuple[str, datetime]:
    value = _required_header(headers, name)
    try:
        return value, parse_timestamp(value)
    except MalformedRequest:
        raise MalformedRequest(f"invalid {name} header") from None


def parse_signed_request(headers: Mapping[str, str]) -> SignedRequest:
    """Read the authentication headers from a case-insensitive header mapping."""
    key_id, signature = parse_authorization(
        _required_header(headers, HEADER_AUTHORIZATION)
    )
    firmware_version = _required_header(headers, HEADER_FIRMWARE_VERSION)
    if _FIRMWARE_VERSION_RE.fullmatch(firmware_version) is None:
        raise MalformedRequest(
            f"invalid {HEADER_FIRMWARE_VERSION} header: 1 to "
            f"{MAX_FIRMWARE_VERSION_LENGTH} printable ASCII characters"
        )
    created_header, created = _timestamp_header(headers, HEADER_CREATED_AT)
    expiry_header, expiry = _timestamp_header(headers, HEADER_EXPIRY)
    return SignedRequest(
        key_id=key_id,
        signature=signature,
        firmware_version=firmware_version,
        created_at_header=created_header,
        expiry_header=expiry_header,
        created_at=created,
        expiry=expiry,
    )


def _base64(digest: bytes) -> str:
    """Return the standard base64 of a digest (binascii: base64's wrapper costs more)."""
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def _header_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def request_message(
    method: str, path: str, request: SignedRequest, body: bytes | None
) -> bytes:
    """Build the bytes a device signs for a request."""
    method = method.upper()
    lines = (
        method,
        path,
        request.firmware_version,
        request.created_at_header,
        request.expiry_header,
    )
    message = _header_bytes("\n".join(lines))
    if method in _SIGNED_BODY_METHODS:
        message += b"\n" + (body or b"")
    return message


class DeviceKey:
    """A device's secret key, prepared once to sign and verify any number of messages."""

    __slots__ = ("_last_answer", "_mac")

    def __init__(self, secret_key: str) -> None:
        """Key an HMAC-SHA256 once; every message then starts from a copy of it."""
        self._mac = hmac.new(secret_key.encode("utf-8"), digestmod=hashlib.sha256)
        # The headers of the last answer signed: (body, second, headers).
        self._last_answer: tuple[bytes, int, dict[str, str]] | None = None

    def mac(self) -> hmac.HMAC:
        """Return a fresh HMAC keyed with the secret (for bodies fed in chunks)."""
        return self._mac.copy()

    def digest(self, message: bytes) -> bytes:
        """Return HMAC-SHA256 over message.

        Copying the keyed HMAC skips the key schedule and OpenSSL's digest lookup
        that a one-shot `hmac.digest` repeats on every call.
        """
        mac = self._mac.copy()
        mac.update(message)
        return mac.digest()

    def answer_headers(self, body: bytes, epoch_second: int) -> dict[str, str]:
        """Return the signing headers of an answer; see `response_headers`."""
        last = self._last_answer
        if last is not None and last[1] == epoch_second and last[0] == body:
            return last[2]
        stamp = _stamp_for_second(epoch_second)
        headers = stamp.headers(self.digest(body + stamp.signed_tail))
        self._last_answer = (body, epoch_second, headers)
        return headers

    def sign(self, message: bytes) -> str:
        """Return the standard base64 of HMAC-SHA256 over message."""
        return _base64(self.digest(message))


def sign(secret_key: str, message: bytes) -> str:
    """Return the standard base64 of HMAC-SHA256 over message, keyed with the secret."""
    digest = hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).digest()
    return _base64(digest)


_DUMMY_KEY: Final = DeviceKey(_DUMMY_SECRET)


def verify_request(
    request: SignedRequest,
    key: DeviceKey | None,
    method: str,
    path: str,
    body: bytes | None,
) -> DeviceKey:
    """Return the key the request is signed with, else raise Unauthorized.

    `key` None (an unknown key id) costs the same work and raises the same error.
    """
    signing_key = _DUMMY_KEY if key is None else key
    message = request_message(method, path, request, body)
    # Compared as base64 bytes, as sent: no text round trip on the hot path.
    expected = binascii.b2a_base64(signing_key.digest(message), newline=False)
    matches = hmac.compare_digest(expected, _header_bytes(request.signature))
    if key is None or not matches:
        raise Unauthorized("invalid signature")
    return key


def check_validity(
    request: SignedRequest,
    now: datetime,
    max_clock_skew: timedelta,
    max_lifetime: timedelta,
) -> None:
    """Raise Unauthorized when the request's validity window does not hold at `now`."""
    if request.expiry <= now:
        raise Unauthorized("request expired")
    if request.created_at > now + max_clock_skew:
        raise Unauthorized("created in the future")
    if request.expiry < request.created_at:
        raise Unauthorized("invalid validity window")
    if request.expiry - request.created_at > max_lifetime:
        raise Unauthorized("validity window too long")


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime exactly as YYYY-MM-DDTHH:MM:SSZ in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("format_timestamp needs an aware datetime")
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def response_message(body: bytes, created_at: str, expiry: str) -> bytes:
    """Build the bytes signed in a response: body, created-at and expiry."""
    return b"\n".join((body, created_at.encode("utf-8"), expiry.encode("utf-8")))


@dataclass(frozen=True, slots=True)
class ResponseStamp:
    """The created-at and expiry of answers sent within one second."""

    created_at: str
    expiry: str
    # What follows the body in the signed message.
    signed_tail: bytes

    def headers(self, digest: bytes) -> dict[str, str]:
        """Return the lower-case signing headers of an answer with this HMAC digest."""
        return {
            RESPONSE_CREATED_AT: self.created_at,
            RESPONSE_EXPIRY: self.expiry,
            RESPONSE_SIGNATURE: _base64(digest),
        }


@lru_cache(maxsize=2)
def _stamp_for_second(epoch_second: int) -> ResponseStamp:
    moment = datetime.fromtimestamp(epoch_second, UTC)
    created_at = format_timestamp(moment)
    expiry = format_timestamp(moment + RESPONSE_LIFETIME)
    return ResponseStamp(created_at, expiry, response_message(b"", created_at, expiry))


def response_stamp(now: datetime) -> ResponseStamp:
    """Return the stamp for answers sent at `now`, formatted once per second."""
    return _stamp_for_second(int(now.timestamp()))


class ResponseSigner:
    """The HMAC of a response body, fed in chunks and finished once per answer.

    Finishing works on a copy, so the state after a large body (a firmware file)
    can be kept and reused: each further answer only adds its two timestamps.
    """

    def __init__(self, key: DeviceKey) -> None:
        """Start an HMAC-SHA256 keyed with the device's secret."""
        self._body_mac = key.mac()

    def update(self, chunk: bytes) -> None:
        """Add the next bytes of the body."""
        self._body_mac.update(chunk)

    def headers(self, now: datetime) -> dict[str, str]:
        """Return the lower-case signing headers for the body sent at `now`."""
        stamp = response_stamp(now)
        mac = self._body_mac.copy()
        mac.update(stamp.signed_tail)
        return stamp.headers(mac.digest())


def response_headers(key: DeviceKey, body: bytes, now: datetime) -> dict[str, str]:
    """Return the lower-case signing headers for a response sent at `now`.

    The same body answered with the same key within one second carries the same
    signature: it is signed once and the headers are reused (never change them).
    """
    return key.answer_headers(body, int(now.timestamp()))


def is_valid_key_id(value: str) -> bool:
    """Return whether value is 1 to 32 characters of A-Z a-z 0-9 _ -."""
    return _KEY_ID_RE.fullmatch(value) is not None


def is_valid_secret_key(value: str) -> bool:
    """Return whether value is 16 to 32 printable ASCII characters without spaces."""
    return _SECRET_KEY_RE.fullmatch(value) is not None


def generate_key_id() -> str:
    """Return a new random key id of 8 lowercase hex characters."""
    return secrets.token_hex(4)


def generate_secret_key() -> str:
    """Return a new random secret key of 32 characters from A-Z a-z 0-9."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(32))
