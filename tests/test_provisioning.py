"""The files a device is flashed with: NVS CSV, plain and encrypted NVS images, keys."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
import struct
import subprocess
import sys
import zlib

import pytest

from custom_components.providore.const import API_BASE_PATH
from custom_components.providore.provisioning import (
    LONGEST_DEVICE_PATH,
    MAX_NVS_SIZE,
    MAX_SERVER_URL_BYTES,
    MIN_NVS_SIZE,
    DeviceKeyMaterial,
    ProvisioningFile,
    is_valid_encryption_key,
    is_valid_flash_offset,
    is_valid_nvs_size,
    new_encryption_key,
    nvs_csv,
    nvs_image,
    nvs_keys_partition,
    parse_flash_number,
    server_url_fits,
)
from custom_components.providore.views import VIEWS, SignedView

from .conftest import KEY_ID, SECRET_KEY
from .nvs_image import NvsFormatError, read_nvs

# Every printable character a secret key may hold that CSV, C or Markdown treat specially.
AWKWARD_SECRET = 'a,b"c\\d`e*_[x](y)<b>{z}'
EXPECTED = {"providore": {"device_id": KEY_ID, "psk": SECRET_KEY}}


def _generator(*args: str | Path, cwd: Path) -> None:
    """Run Espressif's nvs_partition_gen command line from the pinned package.

    Without pytest-cov's variables: the child must not write coverage data.
    """
    subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "esp_idf_nvs_partition_gen", *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("COV_CORE_", "COVERAGE_"))
        },
    )


def test_csv_is_what_the_original_firmware_reads() -> None:
    rows = list(csv.reader(io.StringIO(nvs_csv(KEY_ID, SECRET_KEY))))

    assert rows == [
        ["key", "type", "encoding", "value"],
        ["providore", "namespace", "", ""],
        ["device_id", "data", "string", KEY_ID],
        ["psk", "data", "string", SECRET_KEY],
    ]


def test_csv_quotes_an_awkward_secret() -> None:
    rows = list(csv.reader(io.StringIO(nvs_csv(KEY_ID, AWKWARD_SECRET))))

    assert rows[3] == ["psk", "data", "string", AWKWARD_SECRET]


@pytest.mark.parametrize("size", [MIN_NVS_SIZE, 0x4000, 0x6000, MAX_NVS_SIZE])
def test_image_holds_the_key(size: int) -> None:
    image = nvs_image(KEY_ID, SECRET_KEY, size)

    assert len(image) == size
    assert read_nvs(image) == EXPECTED


def test_image_keeps_an_awkward_secret() -> None:
    image = nvs_image(KEY_ID, AWKWARD_SECRET, 0x6000)

    assert read_nvs(image) == {
        "providore": {"device_id": KEY_ID, "psk": AWKWARD_SECRET}
    }


def test_image_is_what_the_generator_command_writes(tmp_path: Path) -> None:
    """Byte for byte what `nvs_partition_gen.py generate` makes of the CSV."""
    (tmp_path / "device.csv").write_text(nvs_csv(KEY_ID, SECRET_KEY))

    _generator(
        "generate",
        "device.csv",
        "nvs.bin",
        "0x6000",
        "--outdir",
        tmp_path,
        cwd=tmp_path,
    )

    assert (tmp_path / "nvs.bin").read_bytes() == nvs_image(KEY_ID, SECRET_KEY, 0x6000)


def test_encrypted_image(tmp_path: Path) -> None:
    key = new_encryption_key()
    image = nvs_image(KEY_ID, SECRET_KEY, 0x4000, key)

    assert len(image) == 0x4000
    assert SECRET_KEY.encode() not in image
    assert KEY_ID.encode() not in image
    assert read_nvs(image, key) == EXPECTED
    with pytest.raises(NvsFormatError):
        read_nvs(image)
    with pytest.raises(NvsFormatError):
        read_nvs(image, new_encryption_key())


def test_encrypted_image_is_what_the_generator_command_writes(tmp_path: Path) -> None:
    """`nvs_partition_gen.py encrypt --inputkey` with our key partition writes the same."""
    key = new_encryption_key()
    (tmp_path / "device.csv").write_text(nvs_csv(KEY_ID, SECRET_KEY))
    (tmp_path / "keys.bin").write_bytes(nvs_keys_partition(key))

    _generator(
        "encrypt", "device.csv", "nvs.bin", "0x4000", "--inputkey", "keys.bin",
        "--outdir", tmp_path, cwd=tmp_path,
    )  # fmt: skip

    assert (tmp_path / "nvs.bin").read_bytes() == nvs_image(
        KEY_ID, SECRET_KEY, 0x4000, key
    )


def test_generator_decrypts_the_image_with_the_key_partition(tmp_path: Path) -> None:
    """The generator's own decrypt, given our key partition, yields the plain image."""
    key = new_encryption_key()
    (tmp_path / "encrypted.bin").write_bytes(nvs_image(KEY_ID, SECRET_KEY, 0x4000, key))
    (tmp_path / "keys.bin").write_bytes(nvs_keys_partition(key))

    _generator(
        "decrypt", "encrypted.bin", "keys.bin", "decrypted.bin", "--outdir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip

    decrypted = (tmp_path / "decrypted.bin").read_bytes()
    assert decrypted == nvs_image(KEY_ID, SECRET_KEY, 0x4000)
    assert read_nvs(decrypted) == EXPECTED


def test_key_partition_layout() -> None:
    key = new_encryption_key()
    partition = nvs_keys_partition(key)

    assert len(partition) == 0x1000
    assert partition[:64] == key
    (crc,) = struct.unpack_from("<I", partition, 64)
    assert crc == zlib.crc32(key, 0xFFFFFFFF) & 0xFFFFFFFF
    assert partition[68:] == b"\xff" * (0x1000 - 68)


def test_encryption_keys_are_random_and_valid() -> None:
    keys = {new_encryption_key() for _ in range(20)}

    assert len(keys) == 20
    assert all(is_valid_encryption_key(key) for key in keys)


@pytest.mark.parametrize(
    "key", [b"", b"\x01" * 63, b"\x01" * 65, b"\x07" * 64, b"ab" * 32]
)
def test_invalid_encryption_keys_are_refused(key: bytes) -> None:
    assert not is_valid_encryption_key(key)
    with pytest.raises(ValueError, match="two different 32-byte halves"):
        nvs_keys_partition(key)
    with pytest.raises(ValueError, match="two different 32-byte halves"):
        nvs_image(KEY_ID, SECRET_KEY, 0x4000, key)


@pytest.mark.parametrize(
    "size", [0, 0x1000, 0x2000, 0x3001, 0x4800, MAX_NVS_SIZE + 0x1000, -0x4000]
)
def test_invalid_sizes_are_refused(size: int) -> None:
    assert not is_valid_nvs_size(size)
    with pytest.raises(ValueError, match="not an NVS partition size"):
        nvs_image(KEY_ID, SECRET_KEY, size)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x9000", 0x9000),
        (" 0X6000 ", 0x6000),
        ("36864", 36864),
        ("24K", 24 * 1024),
        ("1M", 1024 * 1024),
        ("0x10k", 16 * 1024),
        ("", None),
        ("0x", None),
        ("nvs", None),
        ("-4096", None),
        ("0x-10", None),
        ("9000h", None),
        ("4K4", None),
    ],
)
def test_parse_flash_number(text: str, value: int | None) -> None:
    assert parse_flash_number(text) == value


@pytest.mark.parametrize(
    ("offset", "valid"),
    [(0, True), (0x9000, True), (0x310000, True), (0x9001, False), (-0x1000, False),
     (0x10000000, False)],
)  # fmt: skip
def test_flash_offsets(offset: int, valid: bool) -> None:
    assert is_valid_flash_offset(offset) is valid


def test_server_url_fits_the_firmware_buffer() -> None:
    # 127 characters and the NUL: the URL and the longest path the firmware appends.
    longest = "http://" + "h" * (MAX_SERVER_URL_BYTES - len("http://"))
    assert len(longest) + len(LONGEST_DEVICE_PATH) == 127
    assert server_url_fits(longest)
    assert not server_url_fits(longest + "x")
    # Bytes, not characters.
    assert not server_url_fits(longest[:-1] + "é")
    assert server_url_fits("http://homeassistant.local:8123/api/providore")


def test_longest_device_path_is_the_longest_signed_path() -> None:
    paths = [
        view.url.removeprefix(API_BASE_PATH)
        for view in VIEWS
        if issubclass(view, SignedView)
    ]

    assert LONGEST_DEVICE_PATH in paths
    assert max(map(len, paths)) == len(LONGEST_DEVICE_PATH)


def test_file_names_and_types() -> None:
    assert {kind: kind.filename(KEY_ID) for kind in ProvisioningFile} == {
        ProvisioningFile.CSV: f"providore-{KEY_ID}-nvs.csv",
        ProvisioningFile.NVS: f"providore-{KEY_ID}-nvs.bin",
        ProvisioningFile.ENCRYPTED_NVS: f"providore-{KEY_ID}-nvs-encrypted.bin",
        ProvisioningFile.NVS_KEYS: f"providore-{KEY_ID}-nvs-keys.bin",
    }
    assert ProvisioningFile.CSV.content_type == "text/csv"
    assert ProvisioningFile.NVS.content_type == "application/octet-stream"


def test_key_material_builds_every_file() -> None:
    key = new_encryption_key()
    material = DeviceKeyMaterial(KEY_ID, SECRET_KEY, 0x5000, key)

    assert material.build(ProvisioningFile.CSV).decode() == nvs_csv(KEY_ID, SECRET_KEY)
    assert material.build(ProvisioningFile.NVS) == nvs_image(KEY_ID, SECRET_KEY, 0x5000)
    assert material.build(ProvisioningFile.ENCRYPTED_NVS) == nvs_image(
        KEY_ID, SECRET_KEY, 0x5000, key
    )
    assert material.build(ProvisioningFile.NVS_KEYS) == nvs_keys_partition(key)
