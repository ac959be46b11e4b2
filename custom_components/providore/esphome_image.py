"""ESP chip families and the image header check of an ESPHome `firmware.ota.bin`.

Pure: no Home Assistant import. Facts, from esptool 5.4 (the version ESPHome 2026.10 pins)
and ESPHome 2026.10's OTA backends:

- Every ESP application image starts with the magic byte 0xE9.
- ESP32-family images follow the 8-byte common header with a 16-byte extended header;
  its little-endian uint16 at offset 12 is the chip id (esptool's `IMAGE_CHIP_ID`), and
  ESP-IDF refuses an image whose chip id is not its own. The application description
  (`esp_app_desc_t`) starts at offset 32 with the magic word 0xABCD5432, which tells an
  application from a bootloader (the start of a factory image).
- ESP8266 images have no chip id. ESPHome's ESP8266 OTA backend accepts a 0xE9 image
  or a gzip-compressed one (1F 8B) and refuses everything else, including esptool's
  "version 2" images that start with 0xEA. An image with an ESP-IDF application
  description is an ESP32-family image, refused for an ESP8266.

The check reads only the first `IMAGE_HEADER_SIZE` bytes of the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Final

IMAGE_HEADER_SIZE: Final = 36
ESP_IMAGE_MAGIC: Final = 0xE9
ESP8266_V2_IMAGE_MAGIC: Final = 0xEA
GZIP_MAGIC: Final = b"\x1f\x8b"
APP_DESCRIPTION_MAGIC: Final = 0xABCD5432
_CHIP_ID_OFFSET: Final = 12
_APP_DESCRIPTION_OFFSET: Final = 32


class ChipFamily(StrEnum):
    """A chip family, named as ESPHome names it in `ESPHOME_VARIANT` and `chipFamily`."""

    ESP8266 = "ESP8266"
    ESP32 = "ESP32"
    ESP32_C2 = "ESP32-C2"
    ESP32_C3 = "ESP32-C3"
    ESP32_C5 = "ESP32-C5"
    ESP32_C6 = "ESP32-C6"
    ESP32_C61 = "ESP32-C61"
    ESP32_H2 = "ESP32-H2"
    ESP32_H4 = "ESP32-H4"
    ESP32_H21 = "ESP32-H21"
    ESP32_P4 = "ESP32-P4"
    ESP32_S2 = "ESP32-S2"
    ESP32_S3 = "ESP32-S3"
    ESP32_S31 = "ESP32-S31"

    @property
    def can_verify_tls(self) -> bool:
        """Return whether ESPHome can check a server certificate on this chip."""
        return self is not ChipFamily.ESP8266

    @property
    def variant(self) -> str:
        """Return the `esp32: variant:` / platform name ESPHome's YAML uses (e.g. esp32c3)."""
        return self.value.replace("-", "").lower()


# esptool's IMAGE_CHIP_ID of each ESP32-family target (esptool/targets/*.py).
CHIP_IDS: Final[Mapping[ChipFamily, int]] = {
    ChipFamily.ESP32: 0x0000,
    ChipFamily.ESP32_S2: 0x0002,
    ChipFamily.ESP32_C3: 0x0005,
    ChipFamily.ESP32_S3: 0x0009,
    ChipFamily.ESP32_C2: 0x000C,
    ChipFamily.ESP32_C6: 0x000D,
    ChipFamily.ESP32_H2: 0x0010,
    ChipFamily.ESP32_P4: 0x0012,
    ChipFamily.ESP32_C61: 0x0014,
    ChipFamily.ESP32_C5: 0x0017,
    ChipFamily.ESP32_H21: 0x0019,
    ChipFamily.ESP32_H4: 0x001C,
    ChipFamily.ESP32_S31: 0x0020,
}
_FAMILY_BY_CHIP_ID: Final = {chip_id: family for family, chip_id in CHIP_IDS.items()}


class ImageError(Exception):
    """An image or chip family was refused; `code` names the reason, the message is safe to show."""

    code: ClassVar[str] = "invalid_image"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the message and the values it names (for a translated message)."""
        super().__init__(message)
        self.placeholders = placeholders


class UnknownChipFamily(ImageError):  # noqa: N818
    """The chip family is not one ESPHome serves with an ESP image."""

    code = "unknown_chip_family"


class ImageTooShort(ImageError):  # noqa: N818
    """The file is shorter than an image header."""

    code = "image_too_short"


class BadMagic(ImageError):  # noqa: N818
    """The file does not start like an image this chip family accepts."""

    code = "bad_magic"


class NotAnApplication(ImageError):  # noqa: N818
    """An ESP32 image without an application description: a bootloader or factory image."""

    code = "not_an_application"


class ChipMismatch(ImageError):  # noqa: N818
    """The image was built for another chip."""

    code = "chip_mismatch"


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header check found out about an image."""

    chip_family: ChipFamily
    # A gzip-compressed ESP8266 image: the device inflates it; its header cannot be checked.
    compressed: bool = False


def parse_chip_family(value: str) -> ChipFamily:
    """Return the chip family named `value` ("ESP32-C3", "esp32c3"); raise UnknownChipFamily."""
    wanted = value.replace("-", "").replace("_", "").strip().upper()
    for family in ChipFamily:
        if family.value.replace("-", "") == wanted:
            return family
    raise UnknownChipFamily(
        f"Unknown chip family {value[:40]!r}: use one of "
        + ", ".join(family.value for family in ChipFamily),
        chip_family=value[:40],
    )


def check_image_header(header: bytes, chip_family: ChipFamily | str) -> ImageHeader:
    """Check the first bytes of a `firmware.ota.bin` against the chip family.

    `header` holds at least the first IMAGE_HEADER_SIZE bytes of the file (more is ignored).
    Raise an ImageError subclass when the image cannot run on the chip family.
    """
    family = (
        chip_family
        if isinstance(chip_family, ChipFamily)
        else parse_chip_family(chip_family)
    )
    if len(header) < IMAGE_HEADER_SIZE:
        raise ImageTooShort(
            f"The file has {len(header)} bytes: too short for a firmware image",
            size=str(len(header)),
        )
    if family is ChipFamily.ESP8266:
        return _check_esp8266(header)
    if header[0] != ESP_IMAGE_MAGIC:
        raise BadMagic(_bad_magic_message(header, family), chip_family=family.value)
    image_chip = _esp32_image_chip(header)
    if image_chip != family.value:
        raise ChipMismatch(
            f"This image is for {image_chip}, not for {family.value}",
            image_chip=image_chip,
            chip_family=family.value,
        )
    if not _has_app_description(header):
        raise NotAnApplication(
            "This is not an application image (a bootloader or a factory image?): "
            "upload firmware.ota.bin, the OTA format"
        )
    return ImageHeader(family)


def check_image_file(path: Path, chip_family: ChipFamily | str) -> ImageHeader:
    """Check the header of the image file at `path` (blocking: run it in an executor)."""
    with path.open("rb") as file:
        return check_image_header(file.read(IMAGE_HEADER_SIZE), chip_family)


def _check_esp8266(header: bytes) -> ImageHeader:
    if header.startswith(GZIP_MAGIC):
        return ImageHeader(ChipFamily.ESP8266, compressed=True)
    if header[0] == ESP8266_V2_IMAGE_MAGIC:
        raise BadMagic(
            "This is an esptool version 2 image (0xEA), which ESPHome's ESP8266 OTA "
            "refuses: upload ESPHome's firmware.ota.bin",
            chip_family=ChipFamily.ESP8266.value,
        )
    if header[0] != ESP_IMAGE_MAGIC:
        raise BadMagic(
            _bad_magic_message(header, ChipFamily.ESP8266),
            chip_family=ChipFamily.ESP8266.value,
        )
    if _has_app_description(header):
        image_chip = _esp32_image_chip(header)
        raise ChipMismatch(
            f"This image is for {image_chip}, not for ESP8266",
            image_chip=image_chip,
            chip_family=ChipFamily.ESP8266.value,
        )
    return ImageHeader(ChipFamily.ESP8266)


def _esp32_image_chip(header: bytes) -> str:
    """Return the chip an ESP32-family image header names."""
    chip_id = int.from_bytes(
        header[_CHIP_ID_OFFSET : _CHIP_ID_OFFSET + 2], byteorder="little"
    )
    built_for = _FAMILY_BY_CHIP_ID.get(chip_id)
    return built_for.value if built_for else f"an unknown chip (id {chip_id})"


def _has_app_description(header: bytes) -> bool:
    """Return whether an ESP-IDF application description follows the first segment header."""
    magic = int.from_bytes(
        header[_APP_DESCRIPTION_OFFSET : _APP_DESCRIPTION_OFFSET + 4],
        byteorder="little",
    )
    return magic == APP_DESCRIPTION_MAGIC


def _bad_magic_message(header: bytes, family: ChipFamily) -> str:
    if header.startswith(GZIP_MAGIC):
        return f"This image is gzip-compressed, which {family.value} cannot install: upload firmware.ota.bin as ESPHome built it"
    return (
        f"This is not a firmware image for {family.value} (it starts with 0x{header[0]:02X}, "
        f"not 0x{ESP_IMAGE_MAGIC:02X}): upload firmware.ota.bin, the OTA format"
    )
