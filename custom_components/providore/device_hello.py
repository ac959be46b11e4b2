"""How an unknown device announces itself: the hello body and the device's zeroconf TXT.

Neither is authenticated, so both are read strictly: a few short fields of a known
form, nothing else, and what is kept is only shown to the admin until they confirm
the device. The format is in docs/protocol.md ("Extension: device announcements").
Pure standard library and the protocol module, so it can be tested without Home
Assistant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
import re
from typing import Final

from .protocol import is_valid_key_id

# The service type a device advertises. RFC 6763 allows service names of at most 15
# characters, which rules out "_providore-device"; python-zeroconf enforces it too.
DEVICE_SERVICE_TYPE: Final = "_providore-dev._tcp.local."
MAX_HELLO_BYTES: Final = 512

FIELD_KEY_ID: Final = "key_id"
FIELD_FIRMWARE_TYPE: Final = "firmware_type"
FIELD_MAC: Final = "mac"
_FIELDS: Final = frozenset({FIELD_KEY_ID, FIELD_FIRMWARE_TYPE, FIELD_MAC})

_FIRMWARE_TYPE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", re.ASCII)
_MAC_RE: Final = re.compile(
    r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}", re.ASCII
)


class HelloMalformed(Exception):  # noqa: N818
    """Not a well-formed announcement; the message says which rule it broke."""


@dataclass(frozen=True, slots=True)
class DeviceHello:
    """What an unknown device says of itself: checked in form, never trusted."""

    key_id: str
    firmware_type: str | None
    # Lowercase, colon-separated.
    mac: str | None


def parse_hello(body: bytes) -> DeviceHello:
    """Read the JSON body of POST /hello."""
    if len(body) > MAX_HELLO_BYTES:
        raise HelloMalformed(f"longer than {MAX_HELLO_BYTES} bytes")
    try:
        fields = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HelloMalformed("not JSON") from None
    if not isinstance(fields, dict):
        raise HelloMalformed("not a JSON object")
    return _hello(fields)


def hello_from_txt(
    properties: Mapping[bytes, bytes | None] | Mapping[str, str | None],
) -> DeviceHello:
    """Read the TXT record of a `_providore-dev._tcp` service; other keys are ignored.

    A TXT record is shared with whatever else the device's mDNS stack announces, so
    unknown keys are not an error here, unlike in a hello body. python-zeroconf gives
    the record as bytes, Home Assistant's discovery as text.
    """
    fields: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        try:
            key = _text(raw_key).lower()
        except UnicodeError:
            continue
        if key not in _FIELDS:
            continue
        if raw_value is None:
            raise HelloMalformed(f"{key} has no value")
        try:
            fields[key] = _text(raw_value)
        except UnicodeError:
            raise HelloMalformed(f"{key} is not ASCII") from None
    return _hello(fields)


def _text(value: str | bytes) -> str:
    """Return ASCII text; raise UnicodeError for anything else."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    value.encode("ascii")
    return value


def _hello(fields: Mapping[str, object]) -> DeviceHello:
    if unknown := set(fields) - _FIELDS:
        raise HelloMalformed(f"unknown field {sorted(unknown)[0]!r}")
    key_id = fields.get(FIELD_KEY_ID)
    if not isinstance(key_id, str) or not is_valid_key_id(key_id):
        raise HelloMalformed("key_id must be 1 to 32 of A-Z a-z 0-9 _ -")
    firmware_type = fields.get(FIELD_FIRMWARE_TYPE)
    if firmware_type is not None and (
        not isinstance(firmware_type, str)
        or _FIRMWARE_TYPE_RE.fullmatch(firmware_type) is None
    ):
        raise HelloMalformed("firmware_type must be 1 to 64 of A-Z a-z 0-9 . _ + -")
    mac = fields.get(FIELD_MAC)
    if mac is not None and (not isinstance(mac, str) or _MAC_RE.fullmatch(mac) is None):
        raise HelloMalformed("mac must be six hex pairs separated by : or -")
    return DeviceHello(
        key_id=key_id,
        firmware_type=firmware_type,
        mac=mac.lower().replace("-", ":") if mac is not None else None,
    )
