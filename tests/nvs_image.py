"""An independent reader of ESP-IDF NVS partition images, as the firmware reads them.

Written from ESP-IDF's NVS format description (pages of 4096 bytes: a 32-byte header,
a 32-byte entry state bitmap, 126 entries of 32 bytes; every CRC-32 checked), so
that a test of Providore's images does not trust the generator that wrote them.
An encrypted image is decrypted entry by entry with AES-XTS, the tweak being the
entry's address in the partition.
"""

from __future__ import annotations

import struct
import zlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAGE_SIZE = 4096
ENTRY_SIZE = 32
FIRST_ENTRY = 64
ENTRIES_PER_PAGE = 126
PAGE_ACTIVE = 0xFFFFFFFE
PAGE_FULL = 0xFFFFFFFC
PAGE_UNINITIALIZED = 0xFFFFFFFF
ENTRY_WRITTEN = 0b10
TYPE_U8 = 0x01
TYPE_STRING = 0x21
NAMESPACE_INDEX = 0


class NvsFormatError(AssertionError):
    """The image is not what ESP-IDF's NVS can read."""


def _crc32(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise NvsFormatError(message)


def read_nvs(
    image: bytes, encryption_key: bytes | None = None
) -> dict[str, dict[str, str | int]]:
    """Return {namespace: {key: value}} of an NVS image (strings and u8 values)."""
    _check(len(image) % PAGE_SIZE == 0, "an NVS image is whole pages")
    _check(len(image) >= 3 * PAGE_SIZE, "an NVS partition has at least three pages")
    namespaces: dict[int, str] = {}
    items: list[tuple[int, str, str | int]] = []
    for page_number in range(len(image) // PAGE_SIZE):
        page = bytearray(image[page_number * PAGE_SIZE : (page_number + 1) * PAGE_SIZE])
        state, _sequence = struct.unpack_from("<II", page, 0)
        if state == PAGE_UNINITIALIZED:
            _check(page == b"\xff" * PAGE_SIZE, "an uninitialised page is erased")
            continue
        _check(
            state in (PAGE_ACTIVE, PAGE_FULL), f"page {page_number}: state {state:#x}"
        )
        _check(page[8] == 0xFE, f"page {page_number}: not NVS format version 2")
        (header_crc,) = struct.unpack_from("<I", page, 28)
        _check(
            header_crc == _crc32(bytes(page[4:28])), f"page {page_number}: header CRC"
        )
        if encryption_key is not None:
            _decrypt_entries(page, page_number, encryption_key)
        items.extend(_read_page(page, page_number))
    for namespace, key, value in items:
        if namespace == NAMESPACE_INDEX:
            _check(isinstance(value, int), f"namespace {key} has an index")
            namespaces[int(value)] = key
    result: dict[str, dict[str, str | int]] = {}
    for namespace, key, value in items:
        if namespace != NAMESPACE_INDEX:
            _check(
                namespace in namespaces, f"{key} is in a namespace that was declared"
            )
            result.setdefault(namespaces[namespace], {})[key] = value
    return result


def _decrypt_entries(page: bytearray, page_number: int, key: bytes) -> None:
    """Decrypt every entry slot that is not erased, in place."""
    for index in range(ENTRIES_PER_PAGE):
        start = FIRST_ENTRY + index * ENTRY_SIZE
        slot = bytes(page[start : start + ENTRY_SIZE])
        if slot == b"\xff" * ENTRY_SIZE:
            continue
        address = page_number * PAGE_SIZE + start
        decryptor = Cipher(
            algorithms.AES(key), modes.XTS(address.to_bytes(16, "little"))
        ).decryptor()
        page[start : start + ENTRY_SIZE] = decryptor.update(slot) + decryptor.finalize()


def _entry_state(page: bytes, index: int) -> int:
    bitmap = page[32:64]
    return (bitmap[index // 4] >> ((index % 4) * 2)) & 0b11


def _read_page(page: bytes, page_number: int) -> list[tuple[int, str, str | int]]:
    """Return the (namespace index, key, value) of the written entries of a page."""
    items: list[tuple[int, str, str | int]] = []
    index = 0
    while index < ENTRIES_PER_PAGE:
        if _entry_state(page, index) != ENTRY_WRITTEN:
            index += 1
            continue
        start = FIRST_ENTRY + index * ENTRY_SIZE
        entry = page[start : start + ENTRY_SIZE]
        namespace, item_type, span, _chunk = entry[0:4]
        (crc,) = struct.unpack_from("<I", entry, 4)
        where = f"page {page_number} entry {index}"
        _check(crc == _crc32(entry[0:4] + entry[8:32]), f"{where}: entry CRC")
        key = entry[8:24].split(b"\0", 1)[0].decode("ascii")
        data = entry[24:32]
        if item_type == TYPE_U8:
            _check(span == 1, f"{where}: a u8 spans one entry")
            items.append((namespace, key, data[0]))
        elif item_type == TYPE_STRING:
            size, _reserved, data_crc = struct.unpack_from("<HHI", data, 0)
            payload = page[start + ENTRY_SIZE : start + ENTRY_SIZE + size]
            _check(span == 1 + -(-size // ENTRY_SIZE), f"{where}: string span")
            _check(data_crc == _crc32(payload), f"{where}: string CRC")
            _check(payload.endswith(b"\0"), f"{where}: a string ends with NUL")
            items.append((namespace, key, payload[:-1].decode("utf-8")))
        else:
            raise NvsFormatError(f"{where}: type {item_type:#x} is not expected here")
        _check(
            all(
                _entry_state(page, i) == ENTRY_WRITTEN
                for i in range(index, index + span)
            ),
            f"{where}: every entry of its span is written",
        )
        index += span
    return items
