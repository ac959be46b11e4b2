"""The firmware catalog: uploaded builds per firmware type and version.

Files live under `<config>/providore/firmware/<type>/<version>.bin`; their metadata
(size, SHA-256, upload time, release notes) in a Home Assistant store. A file is
copied to a temporary name beside its target, hashed while it is copied, synced and
only then renamed, so a failed upload leaves nothing behind. An ESPHome build also
records its MD5 (which ESPHome checks) and its chip family: its image header is checked
on the way (the first chunk read), and its MD5 against a CI manifest's before the rename.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cmp_to_key
import hashlib
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Final, NotRequired, TypedDict

from awesomeversion import (
    AwesomeVersion,
    AwesomeVersionCompareException,
    AwesomeVersionStrategy,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .esphome_image import ChipFamily, ImageError, check_image_header
from .stores import async_load, providore_store

CHUNK_SIZE: Final = 64 * 1024
MAX_NAME_LENGTH: Final = 64
TEMPORARY_PREFIX: Final = ".upload-"
FIRMWARE_SUFFIX: Final = ".bin"
# Letters, digits and . _ + - only; the first character is a letter or digit, so
# no name can be empty, hidden, "..", or hold a path separator.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*", re.ASCII)


class FirmwareError(ServiceValidationError):
    """A catalog change was refused; the translation key says why."""

    def __init__(self, translation_key: str, **placeholders: str) -> None:
        """Build a translated error."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=translation_key,
            translation_placeholders=placeholders,
        )


class StoredFirmware(TypedDict):
    """The serialised metadata of one firmware build."""

    size: int
    sha256: str
    uploaded_at: str
    release_notes: str | None
    release_url: str | None
    md5: NotRequired[str]
    chip_family: NotRequired[str]


@dataclass(frozen=True, slots=True)
class EsphomeImage:
    """What an ESPHome build must be: an image for the chip family, with the MD5 a CI manifest names."""

    chip_family: ChipFamily
    md5: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Firmware:
    """One firmware build in the catalog."""

    firmware_type: str
    version: str
    size: int
    sha256: str
    uploaded_at: datetime
    release_notes: str | None = None
    release_url: str | None = None
    # An ESPHome build's MD5, lowercase hex as ESPHome compares it; None for others.
    md5: str | None = None
    # The chip family an ESPHome build's image header was checked against.
    chip_family: ChipFamily | None = None

    def to_stored(self) -> StoredFirmware:
        """Serialise for the store."""
        stored = StoredFirmware(
            size=self.size,
            sha256=self.sha256,
            uploaded_at=self.uploaded_at.isoformat(),
            release_notes=self.release_notes,
            release_url=self.release_url,
        )
        if self.md5 is not None:
            stored["md5"] = self.md5
        if self.chip_family is not None:
            stored["chip_family"] = self.chip_family.value
        return stored


def is_valid_name(value: str) -> bool:
    """Return whether a firmware type or version is safe as a file name."""
    return (
        len(value) <= MAX_NAME_LENGTH
        and _NAME_RE.fullmatch(value) is not None
        and ".." not in value
    )


def compare_versions(first: str, second: str) -> int:
    """Order semantically where AwesomeVersion can; a name it cannot read is older.

    Return a negative number, zero or a positive number, like a comparison function.
    """
    ours, theirs = AwesomeVersion(first), AwesomeVersion(second)
    known = (
        ours.strategy is not AwesomeVersionStrategy.UNKNOWN,
        theirs.strategy is not AwesomeVersionStrategy.UNKNOWN,
    )
    if known == (True, True):
        with suppress(AwesomeVersionCompareException):
            if ours != theirs:
                return 1 if ours > theirs else -1
    elif known[0] != known[1]:
        return 1 if known[0] else -1
    return (first > second) - (first < second)


def _compare_builds(first: Firmware, second: Firmware) -> int:
    return compare_versions(first.version, second.version)


@dataclass(frozen=True, slots=True)
class _Copy:
    """What copying a build found out."""

    size: int
    sha256: str
    # Computed for ESPHome builds only.
    md5: str | None


def _write_copy(source: Path, descriptor: int, esphome: EsphomeImage | None) -> _Copy:
    """Copy `source` into an open file and sync it, hashing it on the way.

    An ESPHome image's header is checked in the first chunk, before anything is written.
    """
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if esphome is not None else None
    size = 0
    with os.fdopen(descriptor, "wb") as copy, source.open("rb") as original:
        while chunk := original.read(CHUNK_SIZE):
            if size == 0 and esphome is not None:
                _check_esphome_header(chunk, esphome.chip_family)
            sha256.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            copy.write(chunk)
            size += len(chunk)
        copy.flush()
        os.fsync(copy.fileno())
    return _Copy(size, sha256.hexdigest(), md5.hexdigest() if md5 else None)


def _check_esphome_header(header: bytes, chip_family: ChipFamily) -> None:
    try:
        check_image_header(header, chip_family)
    except ImageError as err:
        raise FirmwareError(err.code, **err.placeholders) from err


def _check_copy(copied: _Copy, esphome: EsphomeImage | None) -> None:
    """Refuse an empty file, and an ESPHome build that is not the one its manifest names."""
    if copied.size == 0:
        raise FirmwareError("empty_firmware")
    if esphome is not None and esphome.md5 not in (None, copied.md5):
        raise FirmwareError(
            "md5_mismatch", md5=str(copied.md5), expected=str(esphome.md5)
        )


def _copy_and_hash(
    source: Path, target: Path, esphome: EsphomeImage | None = None
) -> _Copy:
    """Copy `source` to `target` atomically; return the size and digests of the copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=TEMPORARY_PREFIX)
    temporary = Path(name)
    try:
        copied = _write_copy(source, descriptor, esphome)
        _check_copy(copied, esphome)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(target)
    return copied


def _remove_temporary_files(directory: Path) -> None:
    """Delete what an upload interrupted by a crash left behind."""
    for leftover in directory.glob(f"*/{TEMPORARY_PREFIX}*"):
        leftover.unlink(missing_ok=True)


class FirmwareCatalog:
    """Every uploaded firmware build, by type and version."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the catalog; call async_load before use."""
        self._hass = hass
        self.directory = Path(hass.config.path(DOMAIN, "firmware"))
        self._store: Store[dict[str, dict[str, StoredFirmware]]] = providore_store(
            hass, "firmware"
        )
        self._builds: dict[str, dict[str, Firmware]] = {}
        # Builds being copied in or deleted: another upload of them must wait.
        self._busy: set[tuple[str, str]] = set()
        self._listeners: list[Callable[[Firmware, bool], None]] = []
        # The builds of each type in version order, sorted once per change.
        self._ordered: dict[str, list[Firmware]] = {}

    async def async_load(self) -> None:
        """Read the metadata and clear what interrupted uploads left behind.

        Raises StoreUnreadable when the metadata cannot be read.
        """
        stored = await async_load(self._hass, self._store) or {}
        self._builds = {
            firmware_type: {
                version: Firmware(
                    firmware_type=firmware_type,
                    version=version,
                    size=build["size"],
                    sha256=build["sha256"],
                    uploaded_at=dt_util.parse_datetime(build["uploaded_at"])
                    or dt_util.utcnow(),
                    release_notes=build["release_notes"],
                    release_url=build["release_url"],
                    md5=build.get("md5"),
                    chip_family=ChipFamily(family)
                    if (family := build.get("chip_family"))
                    else None,
                )
                for version, build in versions.items()
            }
            for firmware_type, versions in stored.items()
        }
        await self._hass.async_add_executor_job(_remove_temporary_files, self.directory)

    @callback
    def async_add_listener(
        self, listener: Callable[[Firmware, bool], None]
    ) -> Callable[[], None]:
        """Call `listener(build, added)` after every upload (True) and deletion (False)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def firmware_types(self) -> list[str]:
        """Return every firmware type with at least one build."""
        return sorted(self._builds)

    def versions(self, firmware_type: str) -> list[Firmware]:
        """Return the builds of a type, oldest version first."""
        if (ordered := self._ordered.get(firmware_type)) is None:
            ordered = self._ordered[firmware_type] = sorted(
                self._builds.get(firmware_type, {}).values(),
                key=cmp_to_key(_compare_builds),
            )
        return list(ordered)

    def latest(self, firmware_type: str | None) -> Firmware | None:
        """Return the newest build of a type, if any."""
        if firmware_type is None or firmware_type not in self._builds:
            return None
        self.versions(firmware_type)
        return self._ordered[firmware_type][-1]

    def get(self, firmware_type: str | None, version: str | None) -> Firmware | None:
        """Return one build, if the catalog has it."""
        if firmware_type is None or version is None:
            return None
        return self._builds.get(firmware_type, {}).get(version)

    def path(self, firmware: Firmware) -> Path:
        """Return where a build's file is stored."""
        return self._file_path(firmware.firmware_type, firmware.version)

    def _file_path(self, firmware_type: str, version: str) -> Path:
        return self.directory / firmware_type / f"{version}{FIRMWARE_SUFFIX}"

    async def async_add(
        self,
        firmware_type: str,
        version: str,
        source: Path,
        release_notes: str | None = None,
        release_url: str | None = None,
        esphome: EsphomeImage | None = None,
    ) -> Firmware:
        """Copy a build into the catalog; raise FirmwareError when it is refused.

        With `esphome`, the file must be an image for its chip family (and have the
        MD5 it names), else nothing is kept.
        """
        for name in (firmware_type, version):
            if not is_valid_name(name):
                raise FirmwareError("invalid_firmware_name", name=name[:80])
        build_id = (firmware_type, version)
        if self.get(firmware_type, version) is not None or build_id in self._busy:
            raise FirmwareError(
                "duplicate_firmware", firmware_type=firmware_type, version=version
            )
        self._busy.add(build_id)
        try:
            firmware = await self._async_copy_in(
                firmware_type, version, source, release_notes, release_url, esphome
            )
        finally:
            self._busy.discard(build_id)
        self._notify(firmware, True)
        return firmware

    async def _async_copy_in(
        self,
        firmware_type: str,
        version: str,
        source: Path,
        release_notes: str | None,
        release_url: str | None,
        esphome: EsphomeImage | None,
    ) -> Firmware:
        """Copy and hash the file, then record it; undo both on any failure."""
        target = self._file_path(firmware_type, version)
        uploaded_at = dt_util.utcnow()
        try:
            copied = await self._hass.async_add_executor_job(
                _copy_and_hash, source, target, esphome
            )
        except OSError as err:
            raise FirmwareError(
                "firmware_unreadable", error=err.strerror or ""
            ) from err
        firmware = Firmware(
            firmware_type=firmware_type,
            version=version,
            size=copied.size,
            sha256=copied.sha256,
            uploaded_at=uploaded_at,
            release_notes=release_notes or None,
            release_url=release_url or None,
            md5=copied.md5,
            chip_family=esphome.chip_family if esphome else None,
        )
        versions = self._builds.setdefault(firmware_type, {})
        versions[version] = firmware
        self._ordered.pop(firmware_type, None)
        try:
            await self._async_save()
        except BaseException:
            del versions[version]
            if not versions:
                del self._builds[firmware_type]
            self._ordered.pop(firmware_type, None)
            await self._hass.async_add_executor_job(target.unlink, True)
            raise
        return firmware

    async def async_delete(self, firmware_type: str, version: str) -> None:
        """Remove a build and its file."""
        firmware = self.get(firmware_type, version)
        if firmware is None:
            raise FirmwareError(
                "unknown_firmware", firmware_type=firmware_type, version=version
            )
        build_id = (firmware_type, version)
        self._busy.add(build_id)
        try:
            del self._builds[firmware_type][version]
            if not self._builds[firmware_type]:
                del self._builds[firmware_type]
            self._ordered.pop(firmware_type, None)
            await self._async_save()
            await self._hass.async_add_executor_job(self.path(firmware).unlink, True)
        finally:
            self._busy.discard(build_id)
        self._notify(firmware, False)

    async def async_remove(self) -> None:
        """Delete every build and the metadata (when the hub is removed)."""
        self._builds, self._ordered = {}, {}
        await self._store.async_remove()
        await self._hass.async_add_executor_job(shutil.rmtree, self.directory, True)

    async def _async_save(self) -> None:
        await self._store.async_save(
            {
                firmware_type: {
                    version: build.to_stored() for version, build in versions.items()
                }
                for firmware_type, versions in self._builds.items()
            }
        )

    @callback
    def _notify(self, firmware: Firmware, added: bool) -> None:
        for listener in list(self._listeners):
            listener(firmware, added)
