"""The YAML a user pastes into an ESPHome device's configuration to get firmware from Providore.

Pure: no Home Assistant import. The snippet is one ESPHome package (`packages:
providore: {...}`): ESPHome merges it into the configuration, so it can be pasted as it is
even where the device already has `esphome:`, `ota:` or `esp32:` blocks (a top-level key
written twice is an error in ESPHome's YAML). The manifest URL holds the device's token:
the snippet names it only as a `!secret`, and the line for `secrets.yaml` comes separately.

ESPHome facts behind it (2026.10 source): `update: platform: http_request` appeared in
2024.6.0; `http_request: ca_certificate_path:` works on ESP32 from 2026.2.0 (host only
before); `esp32: framework: advanced: signed_ota_verification:` appeared in 2026.4.0.
ESP8266 cannot check certificates: ESPHome refuses its configuration unless `verify_ssl:
false` (or SSL support is disabled).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import json
import re
from typing import Final
import unicodedata
from urllib.parse import urlsplit

from .esphome_image import ChipFamily
from .esphome_manifest import MAX_VERSION_BYTES, check_version

CA_CERTIFICATE_FILE: Final = "providore_ca.pem"
SIGNING_KEY_FILE: Final = "ota_signing_key.pem"
DEFAULT_PROJECT_VERSION: Final = "1.0.0"
UPDATE_ENTITY_NAME: Final = "Providore firmware"
# The oldest ESPHome each form of the snippet validates with.
MIN_VERSION_UPDATE: Final = "2024.6.0"
MIN_VERSION_CA_CERTIFICATE: Final = "2026.2.0"
MIN_VERSION_SIGNED_OTA: Final = "2026.4.0"
_MAX_SLUG_LENGTH: Final = 40

# The signing scheme each ESP32 variant supports (ESPHome's esp32 component): the original
# ESP32 only Secure Boot V1 ECDSA below chip revision 3.0, the C2 and C61 only ECDSA V2,
# every other variant RSA-3072 (ESPHome's default).
_SIGNING_SCHEMES: Final = {
    ChipFamily.ESP32: "ecdsa_v1",
    ChipFamily.ESP32_C2: "ecdsa256",
    ChipFamily.ESP32_C61: "ecdsa256",
}
_DEFAULT_SIGNING_SCHEME: Final = "rsa3072"


class SnippetWarning(StrEnum):
    """Something the user should know about the device's connection to Providore."""

    # The manifest and firmware travel unencrypted: anyone on the path can change them.
    PLAIN_HTTP = "plain_http"
    # HTTPS, but the chip cannot check the server's certificate (ESP8266).
    TLS_NOT_VERIFIED = "tls_not_verified"


@dataclass(frozen=True, slots=True)
class Snippet:
    """What the user adds to an ESPHome device's configuration."""

    # The package to paste at the top level of the device's YAML.
    yaml: str
    # The lines to add to ESPHome's secrets.yaml.
    secrets: str
    # The name of the secret holding the manifest URL.
    secret_name: str
    # The file the snippet expects Providore's CA certificate in, beside the YAML; or None.
    ca_certificate_file: str | None
    warnings: tuple[SnippetWarning, ...]


def generate_snippet(
    *,
    device_name: str,
    project_name: str,
    project_version: str | None,
    chip_family: ChipFamily,
    manifest_url: str,
    ca_certificate: bool,
) -> Snippet:
    """Return the snippet for one device; raise ValueError on an unusable argument.

    `project_name` is ESPHome's `author.name`; `project_version` the version of the build
    the user flashes first (DEFAULT_PROJECT_VERSION when None). `manifest_url` is the
    device's source URL; `ca_certificate` says whether Providore's CA certificate is what
    the device should trust for it (HTTPS with a server certificate Providore issued).
    """
    _check_project_name(project_name)
    version = project_version or DEFAULT_PROJECT_VERSION
    check_version(version)
    https = _url_scheme(manifest_url) == "https"
    secret_name = f"providore_{_slug(device_name)}_manifest_url"
    use_ca = https and ca_certificate and chip_family.can_verify_tls
    warnings: list[SnippetWarning] = []
    if not https:
        warnings.append(SnippetWarning.PLAIN_HTTP)
    elif not chip_family.can_verify_tls:
        warnings.append(SnippetWarning.TLS_NOT_VERIFIED)
    lines = [
        "# Providore: firmware updates for this device. Paste at the top level of the",
        "# device's YAML; where it already has packages:, add only the providore: entry.",
        "packages:",
        "  providore:",
        "    esphome:",
        f"      min_version: {MIN_VERSION_CA_CERTIFICATE if use_ca else MIN_VERSION_UPDATE}",
        "      # The version of the build you flash: Providore offers every build whose",
        "      # version differs from it, so give each build its own version.",
        "      project:",
        f"        name: {_quoted(project_name)}",
        f"        version: {_quoted(version)}",
        "    http_request:",
        *_http_request_lines(chip_family, https=https, use_ca=use_ca),
        "    ota:",
        "      - platform: http_request",
        "    update:",
        "      - platform: http_request",
        f"        name: {UPDATE_ENTITY_NAME}",
        f"        source: !secret {secret_name}",
        *_signed_ota_lines(chip_family),
    ]
    secrets = (
        f"# Providore: the manifest URL of {_comment_text(device_name)}. It holds the "
        "device's token: keep it secret.\n"
        f"{secret_name}: {_quoted(manifest_url)}\n"
    )
    return Snippet(
        yaml="\n".join(lines) + "\n",
        secrets=secrets,
        secret_name=secret_name,
        ca_certificate_file=CA_CERTIFICATE_FILE if use_ca else None,
        warnings=tuple(warnings),
    )


def _http_request_lines(
    chip_family: ChipFamily, *, https: bool, use_ca: bool
) -> list[str]:
    if not chip_family.can_verify_tls:
        reason = (
            "the connection is encrypted, but the server is not checked"
            if https
            else "the URL is plain http anyway"
        )
        return [
            f"      # {chip_family.value} cannot check certificates: {reason}.",
            "      verify_ssl: false",
        ]
    if use_ca:
        return [
            f"      # Trust only Providore's CA: save its ca.pem as {CA_CERTIFICATE_FILE}",
            "      # beside this YAML file.",
            f"      ca_certificate_path: {CA_CERTIFICATE_FILE}",
            "      verify_ssl: true",
        ]
    if https:
        return [
            "      # The server's certificate is checked against ESP-IDF's bundle of public CAs.",
            "      verify_ssl: true",
        ]
    return ["      # Plain http: the manifest and the firmware travel unencrypted."]


def _signed_ota_lines(chip_family: ChipFamily) -> list[str]:
    if chip_family is ChipFamily.ESP8266:
        return [
            "    # ESP8266 cannot check a signature on its firmware: it installs any image",
            "    # whose MD5 matches the manifest.",
        ]
    scheme = _SIGNING_SCHEMES.get(chip_family, _DEFAULT_SIGNING_SCHEME)
    return [
        "    # Recommended: install only firmware signed with your own key, whatever the",
        f"    # transport (ESPHome {MIN_VERSION_SIGNED_OTA} or later; raise min_version). Read",
        "    # Providore's ESPHome guide first: a device whose key is lost takes updates",
        "    # over the serial port only.",
        "    # esp32:",
        "    #   framework:",
        "    #     advanced:",
        "    #       signed_ota_verification:",
        f"    #         signing_scheme: {scheme}",
        f"    #         signing_key: {SIGNING_KEY_FILE}",
    ]


def _check_project_name(name: str) -> None:
    if name.count(".") != 1 or not name.isprintable() or name != name.strip():
        raise ValueError("the project name must be author.name (exactly one dot)")
    if len(name.encode()) > MAX_VERSION_BYTES:
        raise ValueError(
            f"the project name is longer than ESPHome's {MAX_VERSION_BYTES} bytes"
        )


def _url_scheme(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the manifest URL must be an http:// or https:// URL")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise ValueError(
            "the manifest URL must not contain spaces or control characters"
        )
    return parts.scheme


def _slug(name: str) -> str:
    """Return `name` as lowercase ASCII letters, digits and underscores."""
    ascii_name = (
        unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    )
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    return slug[:_MAX_SLUG_LENGTH].rstrip("_") or "device"


def _quoted(value: str) -> str:
    """Return `value` as a YAML double-quoted scalar (JSON's escapes are YAML's too)."""
    return json.dumps(value, ensure_ascii=False)


def _comment_text(value: str) -> str:
    """Return `value` fit for a YAML comment: one line of printable characters."""
    return "".join(char if char.isprintable() else " " for char in value).strip()
