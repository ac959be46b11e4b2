"""What the protocol document says of a request, decided without the integration's code.

The fuzz test asks this oracle whether a request it sent was signed with the
device's key over exactly what was sent, inside its validity window: the rules of
docs/protocol.md written out again here, with the independent signer of
tests/device.py. Timestamps are not parsed: the strategies noted what each
timestamp they drew means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import hmac
import re

from .conftest import KEY_ID, SECRET_KEY
from .device import hmac_b64
from .raw_http import RawRequest

BASE = b"/api/providore"
SIGNED_HEADERS = (b"authorization", b"x-firmware-version", b"created-at", b"expiry")
MAX_CLOCK_SKEW = timedelta(seconds=300)
MAX_LIFETIME = timedelta(seconds=900)
_VERSION = re.compile(rb"[\x21-\x7e]{1,64}")
_SCHEME = re.compile(r"([A-Za-z]+)[ \t]+(.*)", re.DOTALL)
_VISIBLE = frozenset(chr(code) for code in range(0x21, 0x7F)) - set('",\\')


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the oracle found; `refusal` names the first rule the request breaks."""

    refusal: str | None
    signature: str | None = None
    created: datetime | None = None
    expiry: datetime | None = None

    @property
    def signed(self) -> bool:
        """Whether it is signed with the device's key over exactly what was sent."""
        return self.refusal is None

    def fresh(self, now: datetime) -> bool | None:
        """Whether its window holds at `now` (None when a timestamp's meaning is unknown)."""
        if self.created is None or self.expiry is None:
            return None
        return (
            self.expiry > now
            and self.created <= now + MAX_CLOCK_SKEW
            and self.created <= self.expiry
            and self.expiry - self.created <= MAX_LIFETIME
        )


def read_authorization(value: bytes) -> tuple[str, str] | None:
    """Return (key id, signature) when the header follows the document, else None."""
    try:
        match = _SCHEME.fullmatch(value.decode("ascii").strip(" \t"))
        if match is None or match.group(1).lower() != "hmac":
            return None
        parameters: dict[str, str] = {}
        for part in match.group(2).split(","):
            name, content = _parameter(part.strip(" \t"))
            if name in parameters:
                return None
            parameters[name] = content
        return parameters["key-id"], parameters["signature"]
    except (UnicodeDecodeError, ValueError, KeyError):
        return None


def _parameter(text: str) -> tuple[str, str]:
    """Return a parameter's lower-case name and its value; ValueError if malformed."""
    name, equals, content = text.partition("=")
    if content.startswith('"'):
        if len(content) < 2 or not content.endswith('"'):
            raise ValueError("unterminated quote")
        content = content[1:-1]
    if not equals or not name or not content or not set(content) <= _VISIBLE:
        raise ValueError("malformed parameter")
    return name.lower(), content


def signed_path(target: bytes) -> bytes:
    """Return the path a device signs for a request target.

    That is the path relative to the base, without the query (nor a fragment,
    which a request line should not carry).
    """
    if target.startswith((b"http://", b"https://")):
        authority_and_path = target.partition(b"://")[2]
        target = b"/" + authority_and_path.partition(b"/")[2]
    path = re.split(rb"[?#]", target, maxsplit=1)[0]
    return path.removeprefix(BASE)


def judge(request: RawRequest, instants: dict[bytes, datetime]) -> Verdict:
    """Decide whether the request is signed with the device's key over what was sent."""
    values: dict[bytes, bytes] = {}
    for name in SIGNED_HEADERS:
        sent = request.header_values(name)
        if len(sent) != 1:
            return Verdict(f"{name.decode()} sent {len(sent)} times")
        values[name] = sent[0]
    authorization = read_authorization(values[b"authorization"])
    if authorization is None:
        return Verdict("Authorization not in the documented form")
    key_id, signature = authorization
    verdict = Verdict(
        None,
        signature,
        instants.get(values[b"created-at"]),
        instants.get(values[b"expiry"]),
    )
    if _VERSION.fullmatch(values[b"x-firmware-version"]) is None:
        return Verdict("X-Firmware-Version is not 1-64 printable ASCII", signature)
    if key_id != KEY_ID:
        return Verdict("another key id", signature)
    message = b"\n".join(
        (
            request.method,
            signed_path(request.target),
            values[b"x-firmware-version"],
            values[b"created-at"],
            values[b"expiry"],
        )
    )
    if request.method in (b"POST", b"PUT"):
        message += b"\n" + request.body
    if not hmac.compare_digest(
        hmac_b64(SECRET_KEY, message).encode(), signature.encode()
    ):
        return Verdict("not signed with the device's key over what was sent", signature)
    return verdict
