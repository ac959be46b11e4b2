"""What a device is flashed with: its key as an NVS CSV and as NVS partition images.

The original Providore firmware reads two strings from the NVS namespace `providore`:
`device_id` (the key ID) and `psk` (the secret key); it calls the server named by its
build option PROVIDORE_SERVER. The images are built in memory with Espressif's NVS
partition generator (esp-idf-nvs-partition-gen), the same code as ESP-IDF's
nvs_partition_gen.py. Pure: no Home Assistant; building an image is CPU work for an
executor.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
import io
import secrets
import struct
from typing import Final
import zlib

from esp_idf_nvs_partition_gen import nvs_partition_gen

from .const import NVS_KEY_DEVICE_ID, NVS_KEY_PSK, NVS_NAMESPACE

NVS_PAGE_SIZE: Final = 0x1000
# ESP-IDF's smallest read/write NVS partition (two pages and the reserved one).
MIN_NVS_SIZE: Final = 0x3000
# Far above any real NVS partition; bounds the memory and time one image takes.
MAX_NVS_SIZE: Final = 0x100000
# Partition offsets and sizes are whole flash sectors.
FLASH_SECTOR: Final = 0x1000
MAX_FLASH_ADDRESS: Final = 0x10000000
# AES-256-XTS: an encryption key and a tweak key of 32 bytes each.
NVS_ENCRYPTION_KEY_BYTES: Final = 64

# The original firmware copies PROVIDORE_SERVER and then the request path into a
# 128-byte buffer (127 characters and the terminating NUL); the longest path it can
# be asked to append is the certificate request.
FIRMWARE_URL_BUFFER: Final = 128
LONGEST_DEVICE_PATH: Final = "/certificates/request"
MAX_SERVER_URL_BYTES: Final = FIRMWARE_URL_BUFFER - 1 - len(LONGEST_DEVICE_PATH)


class ProvisioningFile(StrEnum):
    """A file Flash the device offers for download."""

    CSV = "csv"
    NVS = "nvs"
    ENCRYPTED_NVS = "encrypted_nvs"
    NVS_KEYS = "nvs_keys"

    def filename(self, key_id: str) -> str:
        """Return the file's name for a device (a key ID is safe in a file name)."""
        return f"providore-{key_id}-{_FILENAME_SUFFIXES[self]}"

    @property
    def content_type(self) -> str:
        """Return the file's media type."""
        return (
            "text/csv" if self is ProvisioningFile.CSV else "application/octet-stream"
        )


_FILENAME_SUFFIXES: Final = {
    ProvisioningFile.CSV: "nvs.csv",
    ProvisioningFile.NVS: "nvs.bin",
    ProvisioningFile.ENCRYPTED_NVS: "nvs-encrypted.bin",
    ProvisioningFile.NVS_KEYS: "nvs-keys.bin",
}


@dataclass(frozen=True, slots=True)
class DeviceKeyMaterial:
    """What goes onto one device: its key, and the layout of its NVS partitions.

    `encryption_key` encrypts the NVS image; the NVS keys partition carries it.
    """

    key_id: str
    secret_key: str
    nvs_size: int
    encryption_key: bytes

    def build(self, kind: ProvisioningFile) -> bytes:
        """Return the content of one file (blocking: run it in an executor)."""
        if kind is ProvisioningFile.CSV:
            return nvs_csv(self.key_id, self.secret_key).encode()
        if kind is ProvisioningFile.NVS:
            return nvs_image(self.key_id, self.secret_key, self.nvs_size)
        if kind is ProvisioningFile.ENCRYPTED_NVS:
            return nvs_image(
                self.key_id, self.secret_key, self.nvs_size, self.encryption_key
            )
        return nvs_keys_partition(self.encryption_key)


def nvs_csv(key_id: str, secret_key: str) -> str:
    """Return the CSV ESP-IDF's nvs_partition_gen.py takes for a device."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(
        [
            ("key", "type", "encoding", "value"),
            (NVS_NAMESPACE, "namespace", "", ""),
            (NVS_KEY_DEVICE_ID, "data", "string", key_id),
            (NVS_KEY_PSK, "data", "string", secret_key),
        ]
    )
    return out.getvalue()


def nvs_image(
    key_id: str, secret_key: str, size: int, encryption_key: bytes | None = None
) -> bytes:
    """Return an NVS partition image of `size` bytes holding the device's key.

    With `encryption_key` the entries are encrypted as ESP-IDF's NVS encryption
    reads them (what `nvs_partition_gen.py encrypt` writes).
    """
    if not is_valid_nvs_size(size):
        raise ValueError(f"not an NVS partition size: {size:#x}")
    if encryption_key is not None and not is_valid_encryption_key(encryption_key):
        raise ValueError("an NVS encryption key has two different 32-byte halves")
    out = io.BytesIO()
    # The generator adds the reserved last page itself, as its command line does.
    nvs = nvs_partition_gen.nvs_open(
        out,
        size - NVS_PAGE_SIZE,
        nvs_partition_gen.Page.VERSION2,
        is_encrypt=encryption_key is not None,
        key=encryption_key,
    )
    nvs_partition_gen.write_entry(nvs, NVS_NAMESPACE, "namespace", "", "")
    nvs_partition_gen.write_entry(nvs, NVS_KEY_DEVICE_ID, "data", "string", key_id)
    nvs_partition_gen.write_entry(nvs, NVS_KEY_PSK, "data", "string", secret_key)
    nvs_partition_gen.nvs_close(nvs)
    return out.getvalue()


def new_encryption_key() -> bytes:
    """Return a random NVS encryption key.

    The generator's own --keygen draws it from Python's `random`, which is not
    meant for keys; this one comes from `secrets`.
    """
    return secrets.token_bytes(NVS_ENCRYPTION_KEY_BYTES)


def is_valid_encryption_key(key: bytes) -> bool:
    """Return whether `key` is an XTS key: 64 bytes whose halves differ."""
    half = NVS_ENCRYPTION_KEY_BYTES // 2
    return len(key) == NVS_ENCRYPTION_KEY_BYTES and key[:half] != key[half:]


def nvs_keys_partition(encryption_key: bytes) -> bytes:
    """Return the NVS keys partition that lets ESP-IDF read an encrypted image.

    One flash sector: the 64-byte key, its CRC-32, the rest erased (0xFF), as
    ESP-IDF's `nvs_sec_cfg_t` and `nvs_partition_gen.py --keygen` lay it out.
    """
    if not is_valid_encryption_key(encryption_key):
        raise ValueError("an NVS encryption key has two different 32-byte halves")
    crc = zlib.crc32(encryption_key, 0xFFFFFFFF) & 0xFFFFFFFF
    content = encryption_key + struct.pack("<I", crc)
    return content + b"\xff" * (FLASH_SECTOR - len(content))


def is_valid_nvs_size(size: int) -> bool:
    """Return whether an NVS partition of `size` bytes can hold the key."""
    return MIN_NVS_SIZE <= size <= MAX_NVS_SIZE and size % NVS_PAGE_SIZE == 0


def is_valid_flash_offset(offset: int) -> bool:
    """Return whether a partition can start at `offset`."""
    return 0 <= offset < MAX_FLASH_ADDRESS and offset % FLASH_SECTOR == 0


def parse_flash_number(text: str) -> int | None:
    """Read an offset or size as a partition table writes it (0x9000, 36864, 24K, 1M)."""
    text = text.strip().lower()
    multiplier = 1
    if text.endswith(("k", "m")):
        multiplier = 1024 if text[-1] == "k" else 1024 * 1024
        text = text[:-1]
    try:
        value = int(text, 16) if text.startswith("0x") else int(text, 10)
    except ValueError:
        return None
    return value * multiplier if value >= 0 else None


def server_url_fits(server_url: str) -> bool:
    """Return whether the firmware's URL buffer holds `server_url` and any path."""
    return len(server_url.encode()) <= MAX_SERVER_URL_BYTES
