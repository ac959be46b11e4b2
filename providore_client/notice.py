"""The device's side of push notices: read one, and accept it only when it holds.

Written independently of the integration's notice module; both are tested against
docs/protocol-notice-vectors-v1.json. A notice is only a hint to pull: accepting one
never changes anything but the counter.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
import hashlib
import hmac
from typing import Final

from .errors import ProvidoreError
from .protocol import MAX_CLOCK_SKEW, is_valid_key_id

LABEL: Final = b"providore-notice-v1"
MAX_BYTES: Final = 512
MAX_LIFETIME_SECONDS: Final = 300
DEFAULT_UDP_PORT: Final = 4870
MQTT_QOS: Final = 1
_FIELDS: Final = 7
_MAX_COUNTER: Final = 2**63 - 1
_MAX_TIME_DIGITS: Final = 11
_SIGNATURE_LENGTH: Final = 44
_BASE64_BYTES: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)


class Change(StrEnum):
    """What a notice asks the device to pull."""

    CONFIG = "config"
    FIRMWARE = "firmware"
    CERTIFICATE = "certificate"
    ALL = "all"
    CHECK = "check"


class NoticeIgnored(ProvidoreError):  # noqa: N818
    """A notice the device does not act on; the message says why."""


class MalformedNotice(NoticeIgnored):
    """Not a providore-notice-v1."""


class NoticeForAnotherDevice(NoticeIgnored):
    """A notice for another key id, as broadcasts bring."""


class ForgedNotice(NoticeIgnored):
    """A notice whose signature does not match this device's key."""


class ExpiredNotice(NoticeIgnored):
    """A notice outside its validity window (or a clock that is off)."""


class ReplayedNotice(NoticeIgnored):
    """A notice whose counter is not above the last one accepted."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice's fields; times are Unix seconds."""

    device_id: str
    counter: int
    created_at: int
    expiry: int
    changes: frozenset[Change]


def notice_topic(device_id: str) -> str:
    """Return the MQTT topic the device's notices arrive on."""
    return f"providore/{device_id}/notify"


def read_notice(data: bytes) -> tuple[Notice, bytes, bytes]:
    """Return (fields, signed bytes, signature) of a well-formed notice; nothing is trusted."""
    if len(data) > MAX_BYTES:
        raise MalformedNotice(f"{len(data)} bytes, more than {MAX_BYTES}")
    fields = data.split(b"\n")
    if len(fields) != _FIELDS or fields[0] != LABEL:
        raise MalformedNotice("not a providore-notice-v1")
    _label, raw_id, raw_counter, raw_created, raw_expiry, raw_changes, signature = (
        fields
    )
    if not raw_id.isascii() or not is_valid_key_id(device_id := raw_id.decode()):
        raise MalformedNotice("invalid key id")
    counter = _number(raw_counter, 19, "counter")
    created_at = _number(raw_created, _MAX_TIME_DIGITS, "created-at")
    expiry = _number(raw_expiry, _MAX_TIME_DIGITS, "expiry")
    if counter > _MAX_COUNTER:
        raise MalformedNotice("invalid counter")
    if not 0 < expiry - created_at <= MAX_LIFETIME_SECONDS:
        raise MalformedNotice("invalid validity window")
    if not _is_base64_signature(signature):
        raise MalformedNotice("invalid signature field")
    notice = Notice(device_id, counter, created_at, expiry, _read_changes(raw_changes))
    return notice, data[: -len(signature) - 1], signature


def verify_notice(
    data: bytes, *, device_id: str, secret: str, now: datetime, last_counter: int
) -> Notice:
    """Return the notice when it is for this device, signed with its key, valid now and new."""
    notice, signed, signature = read_notice(data)
    if notice.device_id != device_id:
        raise NoticeForAnotherDevice(f"for device {notice.device_id}")
    expected = base64.b64encode(
        hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    )
    if not hmac.compare_digest(expected, signature):
        raise ForgedNotice("the signature does not match")
    seconds = now.timestamp()
    if notice.expiry <= seconds:
        raise ExpiredNotice(
            f"expired {seconds - notice.expiry:.0f} s ago (is this clock right?)"
        )
    if notice.created_at > seconds + MAX_CLOCK_SKEW.total_seconds():
        raise ExpiredNotice(
            f"made {notice.created_at - seconds:.0f} s in the future (is this clock right?)"
        )
    if notice.counter <= last_counter:
        raise ReplayedNotice(
            f"counter {notice.counter} is not above {last_counter}, the last one accepted"
        )
    return notice


def _number(raw: bytes, digits: int, name: str) -> int:
    """Read a decimal of 1 to `digits` digits without a leading zero."""
    if not 0 < len(raw) <= digits or not raw.isdigit() or raw.startswith(b"0"):
        raise MalformedNotice(f"invalid {name}")
    return int(raw)


def _is_base64_signature(raw: bytes) -> bool:
    body = raw[:-1]
    return (
        len(raw) == _SIGNATURE_LENGTH
        and raw.endswith(b"=")
        and body.isascii()
        and all(byte in _BASE64_BYTES for byte in body)
    )


def _read_changes(raw: bytes) -> frozenset[Change]:
    words = raw.split(b",")
    known = {change.value.encode(): change for change in Change}
    if not all(word in known for word in words):
        raise MalformedNotice("an unknown or empty change")
    if len(set(words)) != len(words):
        raise MalformedNotice("a change named twice")
    return frozenset(known[word] for word in words)
