"""The update manifest an ESPHome device reads, and the manifest.json of ESPHome's CI builds.

Pure: no Home Assistant import. What ESPHome 2026.10 does with the manifest (read in
`esphome/components/http_request/update/http_request_update.cpp` and `ota/`; unchanged
in substance since the platform appeared in 2024.6.0):

- It fetches `source` with a plain GET (no custom headers; ESP-IDF's client sends basic
  auth from credentials in the URL) and needs a Content-Length: the body is read into a
  buffer of that size, so a chunked answer fails.
- The top level must have `name` (string, shown as the update's title), `version`
  (string: a JSON number is an error) and `builds` (array).
- Builds are scanned in order; each must have a string `chipFamily` until the one equal
  to the device's `ESPHOME_VARIANT` ("ESP32", "ESP32-C3", "ESP8266"...). That build needs
  an `ota` object with string `path` and `md5`; `summary` and `release_url` are optional.
  No build for the chip family is an error ("Failed to parse manifest JSON"). ESPHome
  reads no other key: `sha256` is for other clients.
- An update is offered when `version` is not empty and differs, as a string, from the
  device's `esphome: project: version:` (ESPHome's own version without a project):
  serving an older version is a rollback, and "1.0" differs from "1.0.0".
- `ota.path` containing "http" anywhere is taken as a full URL. Otherwise a path starting
  with "/" replaces the source URL's path (scheme, credentials, host and port stay); any
  other path is appended to the source URL up to its last "/" (the manifest's folder).
  No percent-encoding or ".." handling: the text is pasted as it is.
- The device computes the MD5 of the download as lowercase hex and compares it with
  `ota.md5` case-sensitively: the manifest must carry lowercase hex.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import re
from typing import Any, ClassVar, Final, NotRequired, TypedDict

from .esphome_image import ChipFamily

# ESPHome limits `esphome: project: version:` to 127 bytes; no build can match a longer one.
MAX_VERSION_BYTES: Final = 127
# Home Assistant shows at most 255 characters of an update's release summary.
MAX_SUMMARY_LENGTH: Final = 255
MAX_URL_LENGTH: Final = 2048
MAX_CI_MANIFEST_BYTES: Final = 64 * 1024
# The build entry of a manifest that offers nothing: ESPHome still needs one for its chip
# family to read the manifest, but never downloads it (no file has this name).
IDLE_OTA_PATH: Final = "nothing-assigned.bin"
EMPTY_MD5: Final = "d41d8cd98f00b204e9800998ecf8427e"
_MD5_RE: Final = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)
_SHA256_RE: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# A relative path the device resolves against the manifest's folder unchanged: URL-safe
# characters only, no empty, "." or ".." segment, and never "http" (taken for a full URL).
_OTA_PATH_RE: Final = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*", re.ASCII)


class ManifestError(Exception):
    """A manifest was refused; `code` names the reason, the message is safe to show."""

    code: ClassVar[str] = "invalid_manifest"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the message and the values it names (for a translated message)."""
        super().__init__(message)
        self.placeholders = placeholders


class NoBuildForChip(ManifestError):  # noqa: N818
    """The manifest has no build for the device's chip family."""

    code = "no_build_for_chip"


class Md5Mismatch(ManifestError):  # noqa: N818
    """The firmware file is not the one the manifest describes."""

    code = "md5_mismatch"


class OtaEntry(TypedDict):
    """A build's `ota` object."""

    path: str
    md5: str
    sha256: NotRequired[str]
    summary: NotRequired[str]
    release_url: NotRequired[str]


class Build(TypedDict):
    """One entry of `builds`."""

    chipFamily: str
    ota: OtaEntry


class Manifest(TypedDict):
    """The document served at the device's source URL."""

    name: str
    version: str
    builds: list[Build]


def build_manifest(
    *,
    name: str,
    version: str,
    chip_family: ChipFamily,
    ota_path: str,
    md5: str,
    sha256: str | None = None,
    summary: str | None = None,
    release_url: str | None = None,
) -> Manifest:
    """Return the manifest offering one build to a device; raise ValueError on a bad field.

    `ota_path` is relative to the manifest's folder (e.g. "firmware.ota.bin"); the summary
    is cut to MAX_SUMMARY_LENGTH characters.
    """
    check_version(version)
    if not _is_relative_ota_path(ota_path):
        raise ValueError(f"not a relative path the device resolves as is: {ota_path!r}")
    if _MD5_RE.fullmatch(md5) is None:
        raise ValueError("md5 must be 32 hexadecimal digits")
    ota = OtaEntry(path=ota_path, md5=md5.lower())
    if sha256 is not None:
        if _SHA256_RE.fullmatch(sha256) is None:
            raise ValueError("sha256 must be 64 hexadecimal digits")
        ota["sha256"] = sha256.lower()
    if summary:
        ota["summary"] = summary[:MAX_SUMMARY_LENGTH]
    if release_url:
        ota["release_url"] = _checked_url(release_url)
    return Manifest(
        name=name,
        version=version,
        builds=[Build(chipFamily=chip_family.value, ota=ota)],
    )


def build_idle_manifest(
    *, name: str, current_version: str | None, chip_family: ChipFamily
) -> Manifest:
    """Return the manifest of a device with nothing assigned: it offers no update.

    Its version is the one the device runs (ESPHome then sees no update, and Home
    Assistant shows the device up to date), or empty when that is not known (ESPHome
    offers nothing for an empty version).
    """
    return Manifest(
        name=name,
        version=current_version or "",
        builds=[
            Build(
                chipFamily=chip_family.value,
                ota=OtaEntry(path=IDLE_OTA_PATH, md5=EMPTY_MD5),
            )
        ],
    )


def check_version(version: str) -> None:
    """Raise ValueError unless `version` can be an ESPHome project version."""
    if not version or not version.isprintable():
        raise ValueError("the version must be printable text")
    if len(version.encode()) > MAX_VERSION_BYTES:
        raise ValueError(
            f"the version is longer than ESPHome's {MAX_VERSION_BYTES} bytes"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CiBuild:
    """The build for one chip family in an ESPHome CI `manifest.json`."""

    chip_family: ChipFamily
    md5: str
    # The firmware file the manifest names (as written, relative to the manifest).
    ota_path: str
    # The project version; None in a single build's manifest, which has none.
    version: str | None
    # The manifest's `name` (ESPHome's publish workflow puts the project name there).
    name: str | None
    summary: str | None
    release_url: str | None

    def check_firmware_md5(self, md5: str) -> None:
        """Raise Md5Mismatch unless the uploaded file's MD5 is the manifest's."""
        if md5.lower() != self.md5:
            raise Md5Mismatch(
                f"The firmware file is not the build the manifest describes (MD5 {md5.lower()}, "
                f"the manifest says {self.md5})",
                md5=md5.lower(),
                expected=self.md5,
            )


def read_ci_manifest(data: bytes, chip_family: ChipFamily) -> CiBuild:
    """Read an ESPHome CI `manifest.json`; return its build for `chip_family`.

    Two shapes are accepted: the whole manifest of ESPHome's publish workflow (`name`,
    `version`, `builds[]`, as ESP Web Tools reads it) and the single build that
    esphome/build-action writes per configuration (`chipFamily`, `ota`, `parts`), which
    has no version. The build must have `ota.md5`; factory `parts` are ignored.
    """
    if len(data) > MAX_CI_MANIFEST_BYTES:
        raise ManifestError(
            f"The manifest is larger than {MAX_CI_MANIFEST_BYTES // 1024} KiB"
        )
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("The manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise ManifestError("The manifest is not a JSON object")
    if "builds" in document:
        builds = document["builds"]
        if not isinstance(builds, list):
            raise ManifestError("The manifest's builds are not a list")
        version = _optional_text(document, "version", "The manifest's version")
        if version is not None:
            _manifest_version(version)
        name = _optional_text(document, "name", "The manifest's name")
    elif "chipFamily" in document:
        builds, version, name = [document], None, None
    else:
        raise ManifestError(
            "This is not an ESPHome manifest: it has neither builds nor a chipFamily"
        )
    ota = _build_for(builds, chip_family).get("ota")
    if not isinstance(ota, dict):
        raise ManifestError(
            f"The {chip_family.value} build has no OTA image (no ota in the manifest)",
            chip_family=chip_family.value,
        )
    return _ci_build(ota, chip_family, version, name)


def _ci_build(
    ota: dict[str, Any], chip_family: ChipFamily, version: str | None, name: str | None
) -> CiBuild:
    """Check the `ota` object of the chosen build."""
    md5 = ota.get("md5")
    if not isinstance(md5, str) or _MD5_RE.fullmatch(md5) is None:
        raise ManifestError("The manifest's ota.md5 is not an MD5 (32 hex digits)")
    path = ota.get("path")
    if not isinstance(path, str) or not path:
        raise ManifestError("The manifest's ota.path is missing")
    summary = _optional_text(ota, "summary", "The manifest's ota.summary")
    release_url = _optional_text(ota, "release_url", "The manifest's ota.release_url")
    if release_url is not None:
        try:
            release_url = _checked_url(release_url)
        except ValueError:
            raise ManifestError(
                "The manifest's ota.release_url is not an http(s) URL"
            ) from None
    return CiBuild(
        chip_family=chip_family,
        md5=md5.lower(),
        ota_path=path,
        version=version,
        name=name,
        summary=summary[:MAX_SUMMARY_LENGTH] if summary else None,
        release_url=release_url,
    )


def _build_for(builds: list[Any], chip_family: ChipFamily) -> dict[str, Any]:
    families: list[str] = []
    for build in builds:
        if not isinstance(build, dict) or not isinstance(build.get("chipFamily"), str):
            raise ManifestError("A build in the manifest has no chipFamily")
        if build["chipFamily"] == chip_family.value:
            return build
        families.append(build["chipFamily"][:40])
    found = ", ".join(families) or "none"
    raise NoBuildForChip(
        f"The manifest has no build for {chip_family.value} (it has: {found})",
        chip_family=chip_family.value,
        found=found,
    )


def _manifest_version(version: str) -> None:
    try:
        check_version(version)
    except ValueError as err:
        raise ManifestError(
            f"The manifest's version is unusable: {err}", version=version[:40]
        ) from None


def _optional_text(document: dict[str, Any], key: str, what: str) -> str | None:
    value = document.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise ManifestError(f"{what} is not text")


def _is_relative_ota_path(path: str) -> bool:
    return (
        _OTA_PATH_RE.fullmatch(path) is not None
        and "http" not in path
        and not any(segment in {".", ".."} for segment in path.split("/"))
    )


def _checked_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH or not url.startswith(("http://", "https://")):
        raise ValueError("release_url must be an http(s) URL")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise ValueError("release_url must be an http(s) URL")
    return url
