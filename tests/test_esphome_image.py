"""The ESP image header check of an ESPHome firmware.ota.bin.

Hand-built headers cover every refusal; real images come from esptool's `elf2image`
(the esptool ESPHome pins, in .venv-esphome), built offline from a tiny ELF file; and
the chip table is compared with esptool's and ESPHome's own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import gzip
import json
import os
from pathlib import Path
import struct
import threading

import pytest

from custom_components.providore.esphome_image import (
    APP_DESCRIPTION_MAGIC,
    CHIP_IDS,
    IMAGE_HEADER_SIZE,
    BadMagic,
    ChipFamily,
    ChipMismatch,
    ImageHeader,
    ImageTooShort,
    NotAnApplication,
    UnknownChipFamily,
    check_image_file,
    check_image_header,
    parse_chip_family,
)

from .esphome_venv import run_tool

ESP32_FAMILIES = [family for family in ChipFamily if family in CHIP_IDS]
XTENSA_FAMILIES = {
    ChipFamily.ESP8266,
    ChipFamily.ESP32,
    ChipFamily.ESP32_S2,
    ChipFamily.ESP32_S3,
}
ELF_MACHINE_XTENSA = 0x5E
ELF_MACHINE_RISCV = 0xF3
# A RAM address of each chip for the test program: esptool puts a section at a
# flash-mapped address behind padding, so the first segment would not be ours.
RAM_ADDRESSES = {
    ChipFamily.ESP8266: 0x40100000,
    ChipFamily.ESP32: 0x40080000,
    ChipFamily.ESP32_S2: 0x40028000,
    ChipFamily.ESP32_P4: 0x4FF00000,
    ChipFamily.ESP32_S31: 0x2F000000,
}
DEFAULT_RAM_ADDRESS = 0x40380000
APP_DESCRIPTION = struct.pack("<I", APP_DESCRIPTION_MAGIC) + bytes(range(60))


def esp32_header(chip_id: int, *, application: bool = True) -> bytes:
    """Return the first bytes of an ESP32-family image for `chip_id`."""
    common = bytes([0xE9, 1, 2, 0x20]) + struct.pack("<I", 0x40380000)
    extended = struct.pack(
        "<BBBBHBHH4sB", 0xEE, 0, 0, 0, chip_id, 0, 0, 399, bytes(4), 1
    )
    segment = struct.pack("<II", 0x3C000020, 64)
    data = APP_DESCRIPTION if application else bytes(64)
    return common + extended + segment + data


def esp8266_header(magic: int = 0xE9) -> bytes:
    return bytes([magic, 3, 0, 0x20]) + struct.pack("<I", 0x40100000) + bytes(64)


# --- hand-built headers ---------------------------------------------------------


@pytest.mark.parametrize("family", ESP32_FAMILIES, ids=str)
def test_each_esp32_family_accepts_its_own_image(family: ChipFamily) -> None:
    header = esp32_header(CHIP_IDS[family])
    assert check_image_header(header, family) == ImageHeader(family)
    assert check_image_header(header, family.value) == ImageHeader(family)


@pytest.mark.parametrize("family", ESP32_FAMILIES, ids=str)
def test_an_image_for_another_chip_is_refused_naming_its_chip(
    family: ChipFamily,
) -> None:
    for other in ESP32_FAMILIES:
        if other is family:
            continue
        with pytest.raises(ChipMismatch) as caught:
            check_image_header(esp32_header(CHIP_IDS[other]), family)
        assert str(caught.value) == f"This image is for {other}, not for {family}"
        assert caught.value.code == "chip_mismatch"
        assert caught.value.placeholders == {
            "image_chip": other.value,
            "chip_family": family.value,
        }


def test_an_unknown_chip_id_is_refused() -> None:
    with pytest.raises(
        ChipMismatch, match=r"for an unknown chip \(id 31\), not for ESP32-C3"
    ):
        check_image_header(esp32_header(31), ChipFamily.ESP32_C3)


def test_an_esp8266_image_is_not_an_esp32_image() -> None:
    with pytest.raises(ChipMismatch):
        check_image_header(esp8266_header(), ChipFamily.ESP32_C3)


@pytest.mark.parametrize("family", ESP32_FAMILIES, ids=str)
def test_an_esp32_image_is_not_an_esp8266_image(family: ChipFamily) -> None:
    with pytest.raises(
        ChipMismatch, match=f"This image is for {family}, not for ESP8266"
    ):
        check_image_header(esp32_header(CHIP_IDS[family]), ChipFamily.ESP8266)


def test_an_esp32_image_of_an_unknown_chip_is_not_an_esp8266_image() -> None:
    with pytest.raises(
        ChipMismatch, match=r"for an unknown chip \(id 31\), not for ESP8266"
    ):
        check_image_header(esp32_header(31), ChipFamily.ESP8266)


def test_chip_id_is_little_endian() -> None:
    # ESP32-H2 is 0x0010; the bytes 00 10 would read as 0x1000 big-endian.
    header = bytearray(esp32_header(0))
    header[12:14] = b"\x10\x00"
    assert check_image_header(bytes(header), ChipFamily.ESP32_H2).chip_family is (
        ChipFamily.ESP32_H2
    )


@pytest.mark.parametrize("size", [0, 1, IMAGE_HEADER_SIZE - 1])
@pytest.mark.parametrize("family", [ChipFamily.ESP32, ChipFamily.ESP8266], ids=str)
def test_too_short(size: int, family: ChipFamily) -> None:
    with pytest.raises(ImageTooShort, match=f"has {size} bytes") as caught:
        check_image_header(esp32_header(0)[:size], family)
    assert caught.value.code == "image_too_short"


def test_exactly_the_header_is_enough() -> None:
    header = esp32_header(CHIP_IDS[ChipFamily.ESP32_S3])[:IMAGE_HEADER_SIZE]
    assert check_image_header(header, ChipFamily.ESP32_S3).chip_family is (
        ChipFamily.ESP32_S3
    )


@pytest.mark.parametrize("family", [ChipFamily.ESP32, ChipFamily.ESP8266], ids=str)
def test_bad_magic(family: ChipFamily) -> None:
    # An ESP32 factory image starts with the 0xFF padding before its bootloader.
    header = b"\xff" * 4096
    with pytest.raises(BadMagic, match="starts with 0xFF, not 0xE9") as caught:
        check_image_header(header, family)
    assert "OTA format" in str(caught.value)
    assert caught.value.code == "bad_magic"


def test_a_bootloader_is_not_an_application() -> None:
    header = esp32_header(CHIP_IDS[ChipFamily.ESP32_C3], application=False)
    with pytest.raises(NotAnApplication, match="factory image") as caught:
        check_image_header(header, ChipFamily.ESP32_C3)
    assert caught.value.code == "not_an_application"


def test_esp8266_takes_e9_and_gzip_but_not_the_v2_format() -> None:
    assert check_image_header(esp8266_header(), ChipFamily.ESP8266) == ImageHeader(
        ChipFamily.ESP8266
    )
    compressed = gzip.compress(esp8266_header() * 100)
    assert check_image_header(compressed, "ESP8266") == ImageHeader(
        ChipFamily.ESP8266, compressed=True
    )
    with pytest.raises(BadMagic, match=r"version 2 image \(0xEA\)"):
        check_image_header(esp8266_header(0xEA), ChipFamily.ESP8266)


def test_esp32_cannot_take_a_compressed_image() -> None:
    compressed = gzip.compress(esp32_header(0) * 100)
    with pytest.raises(BadMagic, match="gzip-compressed, which ESP32 cannot install"):
        check_image_header(compressed, ChipFamily.ESP32)


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("ESP32-C3", ChipFamily.ESP32_C3),
        ("esp32c3", ChipFamily.ESP32_C3),
        ("ESP32_S3", ChipFamily.ESP32_S3),
        (" esp8266 ", ChipFamily.ESP8266),
        ("ESP32", ChipFamily.ESP32),
        ("esp32-c61", ChipFamily.ESP32_C61),
    ],
)
def test_parse_chip_family(text: str, family: ChipFamily) -> None:
    assert parse_chip_family(text) is family


@pytest.mark.parametrize("text", ["", "RP2040", "ESP32-C4", "ESP32C3X", "BK7231N"])
def test_unknown_chip_family(text: str) -> None:
    with pytest.raises(UnknownChipFamily, match="Unknown chip family") as caught:
        check_image_header(esp32_header(0), text)
    assert caught.value.code == "unknown_chip_family"
    assert "ESP32-C3" in str(caught.value)


def test_chip_family_properties() -> None:
    assert ChipFamily.ESP32_C3.variant == "esp32c3"
    assert ChipFamily.ESP8266.variant == "esp8266"
    assert not ChipFamily.ESP8266.can_verify_tls
    assert all(family.can_verify_tls for family in ESP32_FAMILIES)


def test_check_image_file_reads_only_the_header(tmp_path: Path) -> None:
    """A FIFO that never ends: the check returns without waiting for the rest."""
    fifo = tmp_path / "firmware.ota.bin"
    os.mkfifo(fifo)
    release = threading.Event()

    def write() -> None:
        with fifo.open("wb") as writer:
            writer.write(esp32_header(CHIP_IDS[ChipFamily.ESP32]) + bytes(1000))
            writer.flush()
            release.wait(10)

    with ThreadPoolExecutor(2) as pool:
        writer = pool.submit(write)
        try:
            checked = pool.submit(check_image_file, fifo, ChipFamily.ESP32)
            assert checked.result(timeout=5) == ImageHeader(ChipFamily.ESP32)
        finally:
            release.set()
        writer.result(timeout=5)


def test_check_image_file_too_short(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(ImageTooShort):
        check_image_file(path, ChipFamily.ESP32)


# --- the chip table against esptool and ESPHome --------------------------------


def test_chip_ids_are_esptools_and_families_are_esphomes() -> None:
    output = run_tool(
        "python",
        "-c",
        "import json\n"
        "from esptool.targets import CHIP_DEFS\n"
        "from esphome.components.esp32.const import VARIANT_FRIENDLY\n"
        "ids = {c.CHIP_NAME: c.IMAGE_CHIP_ID for c in CHIP_DEFS.values()"
        " if hasattr(c, 'IMAGE_CHIP_ID')}\n"
        "print(json.dumps({'ids': ids, 'variants': VARIANT_FRIENDLY}))",
    )
    found = json.loads(output)
    esphome_variants = found["variants"]
    assert set(esphome_variants.values()) == {family.value for family in ESP32_FAMILIES}
    for variant, friendly in esphome_variants.items():
        assert parse_chip_family(friendly).variant == variant.lower()
    assert {family.value: chip_id for family, chip_id in CHIP_IDS.items()} == {
        name: found["ids"][name] for name in esphome_variants.values()
    }


# --- real images from esptool ---------------------------------------------------


def make_elf(machine: int, address: int, data: bytes) -> bytes:
    """Return a minimal ELF32 executable: one .text section in one loadable segment."""
    names = b"\0.text\0.shstrtab\0"
    header_size, program_header_size, section_header_size = 52, 32, 40
    data_offset = header_size + program_header_size
    names_offset = data_offset + len(data)
    sections_offset = names_offset + len(names)
    sections_offset += -sections_offset % 4
    elf = b"\x7fELF\x01\x01\x01" + bytes(9)
    elf += struct.pack(
        "<HHIIIIIHHHHHH",
        2,  # executable
        machine,
        1,
        address,  # entry point
        header_size,
        sections_offset,
        0,
        header_size,
        program_header_size,
        1,
        section_header_size,
        3,
        2,  # the section names are section 2
    )
    elf += struct.pack(
        "<8I", 1, data_offset, address, address, len(data), len(data), 5, 4
    )
    elf += data + names
    elf += bytes(sections_offset - len(elf))
    elf += bytes(section_header_size)  # section 0 is empty
    elf += struct.pack("<10I", 1, 1, 6, address, data_offset, len(data), 0, 0, 4, 0)
    elf += struct.pack("<10I", 7, 3, 0, 0, names_offset, len(names), 0, 0, 1, 0)
    return elf


# Runs esptool's own `elf2image` for each job, in one process of .venv-esphome.
ELF2IMAGE = """
import json, sys
import esptool
for job in json.loads(sys.argv[1]):
    esptool.main(job)
"""


@pytest.fixture(scope="module")
def esptool_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return the images esptool built, by key.

    One application per ESP32 family (keyed by its name), "bootloader" (ESP32-S3, no
    application description), "esp8266" and "esp8266-v2".
    """
    folder = tmp_path_factory.mktemp("esptool")
    jobs: list[list[str]] = []
    outputs: dict[str, Path] = {}

    def job(key: str, family: ChipFamily, data: bytes, *extra: str) -> None:
        machine = ELF_MACHINE_XTENSA if family in XTENSA_FAMILIES else ELF_MACHINE_RISCV
        elf = folder / f"{key}.elf"
        elf.write_bytes(
            make_elf(machine, RAM_ADDRESSES.get(family, DEFAULT_RAM_ADDRESS), data)
        )
        output = folder / key
        output.mkdir()
        jobs.append(
            [
                "--chip",
                family.variant,
                "elf2image",
                *extra,
                "--output",
                f"{output}/image-",
                str(elf),
            ]
        )
        outputs[key] = output

    for family in ESP32_FAMILIES:
        job(family.value, family, APP_DESCRIPTION)
    job("bootloader", ChipFamily.ESP32_S3, bytes(64))
    job("esp8266", ChipFamily.ESP8266, bytes(64))
    job("esp8266-v2", ChipFamily.ESP8266, bytes(64), "--version", "2")
    run_tool("python", "-c", ELF2IMAGE, json.dumps(jobs))
    images = {}
    for key, output in outputs.items():
        (image,) = output.iterdir()
        images[key] = image
    return images


@pytest.mark.parametrize("family", ESP32_FAMILIES, ids=str)
def test_esptool_images(esptool_images: dict[str, Path], family: ChipFamily) -> None:
    image = esptool_images[family.value]
    assert check_image_file(image, family) == ImageHeader(family)
    other = ChipFamily.ESP32_C3 if family is ChipFamily.ESP32 else ChipFamily.ESP32
    for wrong in (other, ChipFamily.ESP8266):
        with pytest.raises(
            ChipMismatch, match=f"This image is for {family}, not for {wrong}"
        ):
            check_image_file(image, wrong)


def test_esptool_image_without_application_description(
    esptool_images: dict[str, Path],
) -> None:
    with pytest.raises(NotAnApplication):
        check_image_file(esptool_images["bootloader"], ChipFamily.ESP32_S3)


def test_esptool_esp8266_images(esptool_images: dict[str, Path]) -> None:
    image = esptool_images["esp8266"]
    assert check_image_file(image, ChipFamily.ESP8266) == ImageHeader(
        ChipFamily.ESP8266
    )
    with pytest.raises(ChipMismatch):
        check_image_file(image, ChipFamily.ESP32_C6)
    with pytest.raises(BadMagic, match="0xEA"):
        check_image_file(esptool_images["esp8266-v2"], ChipFamily.ESP8266)
