"""The manifest an ESPHome device reads, and reading the manifest.json of ESPHome's CI builds."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from custom_components.providore.esphome_image import ChipFamily
from custom_components.providore.esphome_manifest import (
    MAX_CI_MANIFEST_BYTES,
    MAX_SUMMARY_LENGTH,
    CiBuild,
    ManifestError,
    Md5Mismatch,
    NoBuildForChip,
    build_manifest,
    read_ci_manifest,
)

FIRMWARE = b"\xe9" + bytes(range(255)) * 10
MD5 = hashlib.md5(FIRMWARE, usedforsecurity=False).hexdigest()
SHA256 = hashlib.sha256(FIRMWARE).hexdigest()


# --- the manifest Providore serves ---------------------------------------------


def test_build_manifest_has_exactly_what_esphome_reads() -> None:
    manifest = build_manifest(
        name="Kitchen sensor",
        version="1.2.0",
        chip_family=ChipFamily.ESP32_C3,
        ota_path="firmware.ota.bin",
        md5=MD5.upper(),
        sha256=SHA256.upper(),
        summary="Fixes the humidity reading",
        release_url="https://example.com/releases/1.2.0",
    )
    assert json.loads(json.dumps(manifest)) == {
        "name": "Kitchen sensor",
        "version": "1.2.0",
        "builds": [
            {
                "chipFamily": "ESP32-C3",
                "ota": {
                    "path": "firmware.ota.bin",
                    "md5": MD5,
                    "sha256": SHA256,
                    "summary": "Fixes the humidity reading",
                    "release_url": "https://example.com/releases/1.2.0",
                },
            }
        ],
    }


def test_build_manifest_minimal_and_version_stays_text() -> None:
    manifest = build_manifest(
        name="n",
        version="2",
        chip_family=ChipFamily.ESP8266,
        ota_path="1.0/firmware.ota.bin",
        md5=MD5,
        summary="",
        release_url=None,
    )
    assert manifest["version"] == "2"
    assert '"version": "2"' in json.dumps(manifest)
    assert manifest["builds"] == [
        {
            "chipFamily": "ESP8266",
            "ota": {"path": "1.0/firmware.ota.bin", "md5": MD5},
        }
    ]


def test_build_manifest_cuts_the_summary() -> None:
    manifest = build_manifest(
        name="n",
        version="1",
        chip_family=ChipFamily.ESP32,
        ota_path="f.bin",
        md5=MD5,
        summary="x" * 1000,
    )
    assert manifest["builds"][0]["ota"]["summary"] == "x" * MAX_SUMMARY_LENGTH


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/api/firmware.bin",
        "../firmware.bin",
        "a/../firmware.bin",
        "./firmware.bin",
        "a//b.bin",
        "a/",
        "firmware.bin?x=1",
        "fírmware.bin",
        "firm ware.bin",
        "https.bin",
        "x/http/firmware.bin",
        "https://evil.example/firmware.bin",
    ],
)
def test_build_manifest_refuses_paths_esphome_would_misread(path: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        build_manifest(
            name="n", version="1", chip_family=ChipFamily.ESP32, ota_path=path, md5=MD5
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": ""}, "printable"),
        ({"version": "1.0\n"}, "printable"),
        ({"version": "1" * 128}, "127 bytes"),
        ({"version": "é" * 64}, "127 bytes"),
        ({"md5": MD5[:31]}, "md5"),
        ({"md5": MD5[:31] + "g"}, "md5"),
        ({"sha256": SHA256[:63]}, "sha256"),
        ({"release_url": "javascript:alert(1)"}, "release_url"),
        ({"release_url": "https://example.com/a b"}, "release_url"),
        ({"release_url": "https://example.com/" + "a" * 2048}, "release_url"),
    ],
)
def test_build_manifest_refuses_bad_fields(
    changes: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {
        "name": "n",
        "version": "1.0",
        "chip_family": ChipFamily.ESP32,
        "ota_path": "firmware.ota.bin",
        "md5": MD5,
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        build_manifest(**fields)


def test_a_127_byte_version_is_allowed() -> None:
    version = "1." + "0" * 125
    manifest = build_manifest(
        name="n",
        version=version,
        chip_family=ChipFamily.ESP32,
        ota_path="f.bin",
        md5=MD5,
    )
    assert manifest["version"] == version


# --- reading a CI build's manifest.json ----------------------------------------

# The whole manifest of ESPHome's publish workflow (ESP Web Tools' format with `ota`).
PUBLISHED: dict[str, Any] = {
    "name": "acme.kitchen-sensor",
    "version": "3.5.0",
    "home_assistant_domain": "esphome",
    "new_install_prompt_erase": False,
    "builds": [
        {
            "chipFamily": "ESP32",
            "ota": {"path": "kitchen-esp32.ota.bin", "md5": "0" * 32},
            "parts": [{"path": "kitchen-esp32.factory.bin", "offset": 0}],
        },
        {
            "chipFamily": "ESP32-C3",
            "ota": {
                "path": "kitchen-esp32c3.ota.bin",
                "md5": MD5.upper(),
                "summary": 'Test "release" summary\n* Multiple lines',
                "release_url": "https://example.com/release",
            },
            "parts": [{"path": "kitchen-esp32c3.factory.bin", "offset": 0}],
        },
    ],
}
# What esphome/build-action writes for one configuration: one build, no version.
SINGLE_BUILD: dict[str, Any] = {
    "chipFamily": "ESP8266",
    "ota": {"path": "kitchen-esp8266/kitchen-esp8266.ota.bin", "md5": MD5},
    "parts": [{"path": "kitchen-esp8266/kitchen-esp8266.factory.bin", "offset": 0}],
}


def _read(document: Any, chip_family: ChipFamily = ChipFamily.ESP32_C3) -> CiBuild:
    return read_ci_manifest(json.dumps(document).encode(), chip_family)


def test_read_the_published_manifest() -> None:
    build = _read(PUBLISHED)
    assert build == CiBuild(
        chip_family=ChipFamily.ESP32_C3,
        md5=MD5,
        ota_path="kitchen-esp32c3.ota.bin",
        version="3.5.0",
        name="acme.kitchen-sensor",
        summary='Test "release" summary\n* Multiple lines',
        release_url="https://example.com/release",
    )
    build.check_firmware_md5(MD5)
    build.check_firmware_md5(MD5.upper())


def test_read_a_single_build_manifest() -> None:
    build = _read(SINGLE_BUILD, ChipFamily.ESP8266)
    assert build == CiBuild(
        chip_family=ChipFamily.ESP8266,
        md5=MD5,
        ota_path="kitchen-esp8266/kitchen-esp8266.ota.bin",
        version=None,
        name=None,
        summary=None,
        release_url=None,
    )


def test_md5_mismatch() -> None:
    build = _read(PUBLISHED)
    with pytest.raises(Md5Mismatch, match=f"the manifest says {MD5}") as caught:
        build.check_firmware_md5("f" * 32)
    assert caught.value.code == "md5_mismatch"
    assert caught.value.placeholders == {"md5": "f" * 32, "expected": MD5}


def test_no_build_for_the_chip_family() -> None:
    with pytest.raises(
        NoBuildForChip,
        match=r"no build for ESP32-S3 \(it has: ESP32, ESP32-C3\)",
    ) as caught:
        _read(PUBLISHED, ChipFamily.ESP32_S3)
    assert caught.value.code == "no_build_for_chip"
    with pytest.raises(NoBuildForChip, match=r"it has: none"):
        _read({**PUBLISHED, "builds": []})
    with pytest.raises(NoBuildForChip, match=r"it has: ESP8266"):
        _read(SINGLE_BUILD, ChipFamily.ESP32)


def _with_ota(**changes: Any) -> dict[str, Any]:
    ota = {**SINGLE_BUILD["ota"], **changes}
    return {**SINGLE_BUILD, "ota": {k: v for k, v in ota.items() if v is not None}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"name": "x"}, "neither builds nor a chipFamily"),
        ({"builds": {"chipFamily": "ESP8266"}}, "builds are not a list"),
        ({"builds": [{"ota": {}}]}, "no chipFamily"),
        ({"builds": ["ESP8266"]}, "no chipFamily"),
        ({"builds": [{"chipFamily": 8266}]}, "no chipFamily"),
        ({"version": 1.0, "builds": [SINGLE_BUILD]}, "version is not text"),
        ({"version": "1\n", "builds": [SINGLE_BUILD]}, "version is unusable"),
        ({"name": ["x"], "builds": [SINGLE_BUILD]}, "name is not text"),
        ({"chipFamily": "ESP8266"}, "no OTA image"),
        ({"chipFamily": "ESP8266", "ota": "x.bin"}, "no OTA image"),
        (_with_ota(md5=None), "not an MD5"),
        (_with_ota(md5=MD5 + "0"), "not an MD5"),
        (_with_ota(md5=12), "not an MD5"),
        (_with_ota(path=None), "ota.path is missing"),
        (_with_ota(path=""), "ota.path is missing"),
        (_with_ota(summary=["x"]), "summary is not text"),
        (_with_ota(release_url="ftp://example.com"), "not an http"),
    ],
)
def test_unusable_ci_manifests(document: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as caught:
        _read(document, ChipFamily.ESP8266)
    assert caught.value.code in {"invalid_manifest", "no_build_for_chip"}


@pytest.mark.parametrize(
    "data", [b"", b"{", b"\xff\xfe", b"null", b"[]", b'"x"', b"1e999"]
)
def test_not_a_manifest(data: bytes) -> None:
    with pytest.raises(ManifestError) as caught:
        read_ci_manifest(data, ChipFamily.ESP32)
    assert caught.value.code == "invalid_manifest"


def test_oversized_ci_manifest() -> None:
    padded = json.dumps({**SINGLE_BUILD, "padding": "x" * MAX_CI_MANIFEST_BYTES})
    with pytest.raises(ManifestError, match="larger than 64 KiB"):
        read_ci_manifest(padded.encode(), ChipFamily.ESP8266)


def test_long_ci_summary_is_cut() -> None:
    build = _read(_with_ota(summary="s" * 300), ChipFamily.ESP8266)
    assert build.summary == "s" * MAX_SUMMARY_LENGTH
