"""Push notices: the signed hint that tells a device to pull what changed.

The byte format and the rules a receiver applies are in docs/protocol.md
("Extension: push notices"). Pure standard library and the protocol module, so it can
be tested without Home Assistant; the same bytes go over MQTT and UDP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import hmac
import re
from typing import Final

from .protocol import is_valid_key_id, is_valid_secret_key, sign

# The first line of every notice, and of every message signed for one. A request message
# starts with an upper-case HTTP method and a response message ends with a timestamp, so
# neither can ever be a notice message: see "Domain separation" in the specification.
NOTICE_LABEL: Final = "providore-notice-v1"
MAX_NOTICE_BYTES: Final = 512
NOTICE_LIFETIME: Final = timedelta(seconds=60)
MAX_NOTICE_LIFETIME: Final = timedelta(seconds=300)
MAX_CLOCK_SKEW: Final = timedelta(seconds=300)
MAX_COUNTER: Final = 2**63 - 1
DEFAULT_UDP_PORT: Final = 4870
MQTT_QOS: Final = 1

_LINE_COUNT: Final = 7
_COUNTER_RE: Final = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_SECONDS_RE: Final = re.compile(r"[1-9][0-9]{0,10}", re.ASCII)
_SIGNATURE_RE: Final = re.compile(r"[A-Za-z0-9+/]{43}=", re.ASCII)


class Change(StrEnum):
    """What a notice says has changed, i.e. what the device should pull."""

    CONFIG = "config"
    FIRMWARE = "firmware"
    CERTIFICATE = "certificate"
    # Everything may have changed: pull the configuration, firmware and certificate.
    ALL = "all"
    # Nothing in particular: the admin asks the device to check in now.
    CHECK = "check"


class NoticeError(Exception):
    """A notice the receiver ignores; the message says why, without any secret."""


class NoticeMalformed(NoticeError):  # noqa: N818
    """Not a well-formed notice: size, lines, label or a field."""


class NoticeForAnotherDevice(NoticeError):  # noqa: N818
    """A well-formed notice for another key id (normal with broadcasts)."""


class NoticeBadSignature(NoticeError):  # noqa: N818
    """The signature does not match: forged, corrupted, or signed with another key."""


class NoticeExpired(NoticeError):  # noqa: N818
    """Outside its validity window: expired, or created too far in the future."""


class NoticeReplayed(NoticeError):  # noqa: N818
    """A counter the device has already accepted, or an older one."""


@dataclass(frozen=True, slots=True)
class Notice:
    """The content of a notice; trusted only once verify_notice returned it."""

    key_id: str
    counter: int
    created_at: datetime
    expiry: datetime
    changes: frozenset[Change]


def notice_topic(key_id: str) -> str:
    """Return the MQTT topic a device's notices are published on."""
    return f"providore/{key_id}/notify"


def next_counter(last: int, now: datetime) -> int:
    """Return the counter of a device's next notice: above `last`, and never below now in ms.

    Taking the clock into account keeps counters going up for devices that remember a
    high one even when the server lost its own record (a restore of old data).
    """
    return min(max(last + 1, int(now.timestamp() * 1000)), MAX_COUNTER)


def notice_message(notice: Notice) -> bytes:
    """Return the bytes a notice's signature covers: its first six lines."""
    lines = (
        NOTICE_LABEL,
        notice.key_id,
        str(notice.counter),
        str(int(notice.created_at.timestamp())),
        str(int(notice.expiry.timestamp())),
        ",".join(sorted(notice.changes)),
    )
    return "\n".join(lines).encode("ascii")


def build_notice(
    *,
    key_id: str,
    secret_key: str,
    changes: Iterable[Change],
    counter: int,
    now: datetime,
    lifetime: timedelta = NOTICE_LIFETIME,
) -> bytes:
    """Return a signed notice, made at `now` (whole seconds) and valid for `lifetime`."""
    if not is_valid_key_id(key_id):
        raise ValueError("invalid key id")
    if not is_valid_secret_key(secret_key):
        raise ValueError("invalid secret key")
    if not 1 <= counter <= MAX_COUNTER:
        raise ValueError("the counter must be 1 to 2**63 - 1")
    if not timedelta(seconds=1) <= lifetime <= MAX_NOTICE_LIFETIME:
        raise ValueError("the lifetime must be 1 to 300 s")
    wanted = frozenset(Change(change) for change in changes)
    if not wanted:
        raise ValueError("a notice names at least one change")
    created = datetime.fromtimestamp(int(now.timestamp()), UTC)
    expiry = created + timedelta(seconds=int(lifetime.total_seconds()))
    notice = Notice(key_id, counter, created, expiry, wanted)
    message = notice_message(notice)
    return message + b"\n" + sign(secret_key, message).encode("ascii")


def parse_notice(data: bytes) -> tuple[Notice, bytes, bytes]:
    """Split a notice into (content, signed message, signature); nothing is verified yet."""
    if len(data) > MAX_NOTICE_BYTES:
        raise NoticeMalformed(f"longer than {MAX_NOTICE_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise NoticeMalformed("not ASCII") from None
    lines = text.split("\n")
    if len(lines) != _LINE_COUNT:
        raise NoticeMalformed(f"{len(lines)} lines instead of {_LINE_COUNT}")
    label, key_id, counter, created, expiry, changes, signature = lines
    if label != NOTICE_LABEL:
        raise NoticeMalformed("not a providore-notice-v1")
    if not is_valid_key_id(key_id):
        raise NoticeMalformed("invalid key id")
    if _COUNTER_RE.fullmatch(counter) is None or int(counter) > MAX_COUNTER:
        raise NoticeMalformed("invalid counter")
    created_at, expires = _seconds(created), _seconds(expiry)
    if not timedelta(seconds=1) <= expires - created_at <= MAX_NOTICE_LIFETIME:
        raise NoticeMalformed("expiry must be 1 to 300 s after created-at")
    if _SIGNATURE_RE.fullmatch(signature) is None:
        raise NoticeMalformed("invalid signature field")
    notice = Notice(key_id, int(counter), created_at, expires, _changes(changes))
    message = data[: data.rindex(b"\n")]
    return notice, message, signature.encode("ascii")


def verify_notice(
    data: bytes,
    *,
    key_id: str,
    secret_key: str,
    now: datetime,
    last_counter: int,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
) -> Notice:
    """Return the notice if it is for key_id, authentic, valid now and newer than last_counter.

    The checks run in the order of the specification, so the error names the first
    rule broken: NoticeMalformed, NoticeForAnotherDevice, NoticeBadSignature,
    NoticeExpired, NoticeReplayed.
    """
    notice, message, signature = parse_notice(data)
    if notice.key_id != key_id:
        raise NoticeForAnotherDevice(f"for device {notice.key_id}")
    expected = sign(secret_key, message).encode("ascii")
    if not hmac.compare_digest(expected, signature):
        raise NoticeBadSignature("the signature does not match")
    if notice.expiry <= now:
        raise NoticeExpired(f"expired at {notice.expiry:%Y-%m-%dT%H:%M:%SZ}")
    if notice.created_at > now + max_clock_skew:
        raise NoticeExpired(
            f"created in the future, at {notice.created_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    if notice.counter <= last_counter:
        what = "replayed" if notice.counter == last_counter else "older"
        raise NoticeReplayed(
            f"{what} counter {notice.counter}, last accepted {last_counter}"
        )
    return notice


def _seconds(field: str) -> datetime:
    if _SECONDS_RE.fullmatch(field) is None:
        raise NoticeMalformed("invalid time")
    return datetime.fromtimestamp(int(field), UTC)


def _changes(field: str) -> frozenset[Change]:
    if not field:
        raise NoticeMalformed("no change named")
    words = field.split(",")
    try:
        changes = frozenset(Change(word) for word in words)
    except ValueError:
        raise NoticeMalformed("unknown change") from None
    if len(changes) != len(words):
        raise NoticeMalformed("a change is named twice")
    return changes
