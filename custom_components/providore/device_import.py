"""Bulk enrolment: read a CSV of devices, checking every row before anything is added.

Columns (by header name, in any order): `name` (required), `key_id`, `secret_key`
and `firmware_type` (each optional; an empty key id or secret key is generated).
Any bad row refuses the whole file, naming its line.
"""

from __future__ import annotations

from collections.abc import Collection
import csv
from dataclasses import dataclass
import io
from typing import Final

from .firmware_catalog import is_valid_name
from .protocol import (
    generate_key_id,
    generate_secret_key,
    is_valid_key_id,
    is_valid_secret_key,
)

COLUMNS: Final = ("name", "key_id", "secret_key", "firmware_type")
MAX_NAME_LENGTH: Final = 100
MAX_ROWS: Final = 5000


class ImportRefused(Exception):  # noqa: N818
    """The file cannot be imported; `line` (1-based) names the offending row, if any."""

    def __init__(self, reason: str, line: int | None = None, **details: str) -> None:
        """Describe the refusal (`reason` is a translation key)."""
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line
        self.details = details


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedDevice:
    """One checked row of the file."""

    line: int
    name: str
    key_id: str
    secret_key: str
    secret_generated: bool
    firmware_type: str | None


def parse_devices(text: str, key_ids_in_use: Collection[str]) -> list[ImportedDevice]:
    """Return the devices of a CSV text; raise ImportRefused for any bad row."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as err:
        raise ImportRefused("unreadable_csv", 1) from err
    if not header or "name" not in header:
        raise ImportRefused("missing_name_column", 1)
    if unknown := [column for column in header if column not in COLUMNS]:
        raise ImportRefused("unknown_column", 1, column=unknown[0][:40])
    devices: list[ImportedDevice] = []
    taken = set(key_ids_in_use)
    try:
        for row in reader:
            line = reader.line_num
            if len(devices) >= MAX_ROWS:
                raise ImportRefused("too_many_rows", line)
            device = _device(row, line, taken)
            taken.add(device.key_id)
            devices.append(device)
    except csv.Error as err:
        raise ImportRefused("unreadable_csv", reader.line_num) from err
    if not devices:
        raise ImportRefused("no_devices")
    return devices


def _device(
    row: dict[str | None, str | None], line: int, taken: set[str]
) -> ImportedDevice:
    """Check one row; `taken` holds the key ids in use and earlier in the file."""
    if None in row:
        raise ImportRefused("extra_values", line)

    def value(column: str) -> str:
        return (row.get(column) or "").strip()

    name = value("name")
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ImportRefused("invalid_name", line)
    key_id = value("key_id")
    if key_id and not is_valid_key_id(key_id):
        raise ImportRefused("invalid_key_id", line)
    if key_id in taken:
        raise ImportRefused("key_id_in_use", line, key_id=key_id)
    while not key_id or key_id in taken:
        key_id = generate_key_id()
    secret_key = value("secret_key")
    if secret_key and not is_valid_secret_key(secret_key):
        raise ImportRefused("invalid_secret_key", line)
    firmware_type = value("firmware_type")
    if firmware_type and not is_valid_name(firmware_type):
        raise ImportRefused("invalid_firmware_type", line)
    return ImportedDevice(
        line=line,
        name=name,
        key_id=key_id,
        secret_key=secret_key or generate_secret_key(),
        secret_generated=not secret_key,
        firmware_type=firmware_type or None,
    )
