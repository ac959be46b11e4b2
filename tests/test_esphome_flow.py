"""The ESPHome device subentry flow: add, settings, upload (real browser uploads), YAML, tokens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import tempfile
from typing import Any
from unittest.mock import patch

from aiohttp import FormData
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.network import NoURLAvailableError
from homeassistant.helpers.selector import SelectSelector
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import (
    CONF_CHIP_FAMILY,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAC,
    CONF_PROJECT_NAME,
    DOMAIN,
    SUBENTRY_TYPE_ESPHOME_DEVICE,
)
from custom_components.providore.esphome_image import ChipFamily

from .conftest import loaded_runtime
from .esphome_setup import (
    ESP_FIRMWARE_TYPE,
    ESP_KEY_ID,
    ESP_MAC,
    ESP_NAME,
    ESP_PROJECT,
    ESP_TOKEN,
    TOKENS_STORE,
    add_esphome_integration_device,
    esphome_image,
    hub_with_esphome_device,
    stored_tokens,
)

IMAGE = esphome_image(70 * 1024)
IMAGE_MD5 = hashlib.md5(IMAGE, usedforsecurity=False).hexdigest()
NEW_MAC = "24:0a:c4:ab:cd:ef"
# A well-formed upload id that no upload has.
MISSING_UPLOAD = "0b7e3d8a-6f0c-4f8e-9a51-1c2d3e4f5a6b"
GOOD_DEVICE = {
    CONF_NAME: " Porch light ",
    CONF_MAC: NEW_MAC.upper(),
    CONF_CHIP_FAMILY: "ESP32-S3",
    CONF_PROJECT_NAME: "acme.porch_light",
}


@pytest.fixture
async def hub(
    hass: HomeAssistant, hass_storage: dict[str, Any], stored_secrets: dict[str, str]
) -> MockConfigEntry:
    """Set up a hub with a Providore and an ESPHome device, on a plain http URL."""
    await async_process_ha_core_config(
        hass, {"internal_url": "http://192.168.1.20:8123"}
    )
    hass_storage[TOKENS_STORE] = stored_tokens({ESP_KEY_ID: ESP_TOKEN})
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the browser uploads of this test apart from other test runs."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    return temporary


async def _browser_upload(
    hass_client: ClientSessionGenerator, content: bytes, filename: str
) -> str:
    client = await hass_client()
    form = FormData()
    form.add_field("file", content, filename=filename)
    response = await client.post("/api/file_upload", data=form)
    assert response.status == 200
    file_id: str = (await response.json())["file_id"]
    return file_id


def _subentry_id(entry: MockConfigEntry, key_id: str = ESP_KEY_ID) -> str:
    return next(
        subentry.subentry_id
        for subentry in entry.subentries.values()
        if subentry.unique_id == key_id
    )


async def _start_add(hass: HomeAssistant, entry: MockConfigEntry) -> FlowResult:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_ESPHOME_DEVICE), context={"source": SOURCE_USER}
    )


async def _open(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> FlowResult:
    """Open the device's Configure menu and choose `step`."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_ESPHOME_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(entry)},
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == [
        "show_yaml",
        "upload_firmware",
        "settings",
        "rotate_token",
        "revoke_token",
    ]
    placeholders = result["description_placeholders"]
    assert (placeholders["key_id"], placeholders["mac"]) == (ESP_KEY_ID, ESP_MAC)
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


async def _configure(
    hass: HomeAssistant, result: FlowResult, user_input: dict[str, Any]
) -> FlowResult:
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], user_input
    )


# --- adding a device -----------------------------------------------------------------


async def test_the_configure_menu_names_the_device(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    result = await hass.config_entries.subentries.async_init(
        (hub.entry_id, SUBENTRY_TYPE_ESPHOME_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(hub)},
    )

    assert result["description_placeholders"] == {
        "name": ESP_NAME,
        "key_id": ESP_KEY_ID,
        "mac": ESP_MAC,
        "firmware_type": ESP_FIRMWARE_TYPE,
    }


async def test_add_offers_esphomes_devices_and_creates_one(
    hass: HomeAssistant, hub: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    add_esphome_integration_device(hass, NEW_MAC, name="porch-light")

    result = await _start_add(hass, hub)

    assert result["type"] is FlowResultType.FORM
    mac_selector = result["data_schema"].schema[CONF_MAC]
    assert isinstance(mac_selector, SelectSelector)
    assert mac_selector.config["options"] == [
        {"value": NEW_MAC, "label": f"porch-light ({NEW_MAC})"}
    ]
    assert mac_selector.config["custom_value"] is True

    result = await _configure(hass, result, GOOD_DEVICE)
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    key_id = result["unique_id"]
    assert result["data"] == {
        CONF_KEY_ID: key_id,
        CONF_MAC: NEW_MAC,
        CONF_CHIP_FAMILY: "ESP32-S3",
        CONF_PROJECT_NAME: "acme.porch_light",
        CONF_FIRMWARE_TYPE: "acme.porch_light-esp32s3",
    }
    assert result["title"] == "Porch light"
    token = hass_storage[TOKENS_STORE]["data"][key_id]
    assert len(bytes.fromhex(token)) == 16
    runtime = loaded_runtime(hass)
    assert runtime.esphome.device_for_token(token) == key_id
    # Attached to ESPHome's device at once: no update entity of Providore's.
    assert runtime.esphome.is_attached(key_id)
    assert hass.states.get("select.porch_light_assigned_firmware") is not None
    assert hass.states.get("update.porch_light_firmware") is None


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_NAME: "  "}, {CONF_NAME: "invalid_name"}),
        ({CONF_MAC: "24:0a:c4:12:34"}, {CONF_MAC: "invalid_mac"}),
        ({CONF_MAC: "not a mac at all"}, {CONF_MAC: "invalid_mac"}),
        ({CONF_MAC: ESP_MAC.replace(":", "-").upper()}, {CONF_MAC: "mac_in_use"}),
        (
            {CONF_PROJECT_NAME: "porch_light"},
            {CONF_PROJECT_NAME: "invalid_project_name"},
        ),
        ({CONF_PROJECT_NAME: "a.b.c"}, {CONF_PROJECT_NAME: "invalid_project_name"}),
        ({CONF_PROJECT_NAME: "acme."}, {CONF_PROJECT_NAME: "invalid_project_name"}),
        (
            {CONF_PROJECT_NAME: "acme.porch light"},
            {CONF_PROJECT_NAME: "invalid_project_name"},
        ),
        (
            {CONF_PROJECT_NAME: "acme." + "x" * 51},
            {CONF_PROJECT_NAME: "invalid_project_name"},
        ),
    ],
)
async def test_add_errors_keep_what_was_typed(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    changes: dict[str, str],
    errors: dict[str, str],
) -> None:
    result = await _start_add(hass, hub)

    result = await _configure(hass, result, GOOD_DEVICE | changes)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    suggested = {
        key.schema: key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert suggested == GOOD_DEVICE | changes
    # Corrected, the device is added.
    result = await _configure(hass, result, GOOD_DEVICE)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_the_longest_project_name_fits_a_firmware_type(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    project = "acme." + "x" * 50
    result = await _start_add(hass, hub)

    result = await _configure(
        hass,
        result,
        GOOD_DEVICE | {CONF_PROJECT_NAME: project, CONF_CHIP_FAMILY: "ESP32-C61"},
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert len(result["data"][CONF_FIRMWARE_TYPE]) == 64


# --- the Configure menu ----------------------------------------------------------------


async def test_settings_change_the_firmware_type(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    result = await _open(hass, hub, "settings")
    assert result["type"] is FlowResultType.FORM
    result = await _configure(
        hass,
        result,
        {CONF_NAME: " ", CONF_CHIP_FAMILY: "ESP32", CONF_PROJECT_NAME: "x"},
    )
    assert result["errors"] == {
        CONF_NAME: "invalid_name",
        CONF_PROJECT_NAME: "invalid_project_name",
    }

    result = await _configure(
        hass,
        result,
        {
            CONF_NAME: "Kitchen display",
            CONF_CHIP_FAMILY: "ESP32",
            CONF_PROJECT_NAME: "acme.kitchen_display",
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = hub.subentries[_subentry_id(hub)]
    assert subentry.title == "Kitchen display"
    assert subentry.data[CONF_FIRMWARE_TYPE] == "acme.kitchen_display-esp32"
    assert subentry.data[CONF_MAC] == ESP_MAC
    profile = loaded_runtime(hass).devices[ESP_KEY_ID]
    assert profile.esphome is not None
    assert profile.esphome.chip_family is ChipFamily.ESP32
    # Providore's own device follows the name (ESPHome's integration lacks the device).
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, ESP_KEY_ID)})
    assert device is not None
    assert (device.name, device.model) == ("Kitchen display", "kitchen_display")


async def test_renaming_an_attached_device_leaves_esphomes_name(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    esphome_device = add_esphome_integration_device(hass)
    await hass.async_block_till_done()
    result = await _open(hass, hub, "settings")

    await _configure(
        hass,
        result,
        {
            CONF_NAME: "Kitchen display",
            CONF_CHIP_FAMILY: "ESP32-C3",
            CONF_PROJECT_NAME: ESP_PROJECT,
        },
    )
    await hass.async_block_till_done()

    device = dr.async_get(hass).async_get(esphome_device.id)
    assert device is not None
    assert device.name == "kitchen-sensor"


async def test_show_yaml_on_plain_http_warns(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    result = await _open(hass, hub, "show_yaml")

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "plain_http"}
    placeholders = result["description_placeholders"]
    url = f"http://192.168.1.20:8123/api/providore/esphome/{ESP_TOKEN}/manifest.json"
    assert placeholders["secrets"].endswith(
        f'providore_kitchen_sensor_manifest_url: "{url}"\n'
    )
    assert (
        "source: !secret providore_kitchen_sensor_manifest_url"
        in (placeholders["yaml"])
    )
    assert ESP_TOKEN not in placeholders["yaml"]
    assert placeholders["ca_path"] == "/api/providore/certificates/ca.pem"

    result = await _configure(hass, result, {})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "yaml_shown"


async def test_show_yaml_over_https_with_providores_certificate(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "https://ha.lan:8123"})
    hass.config_entries.async_update_entry(
        hub, data={**hub.data, "server_certificate": {"hosts": ["ha.lan"]}}
    )

    result = await _open(hass, hub, "show_yaml")

    assert result["errors"] == {}
    assert (
        "ca_certificate_path: providore_ca.pem"
        in (result["description_placeholders"]["yaml"])
    )


async def test_show_yaml_for_an_esp8266_over_https(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    await async_process_ha_core_config(hass, {"internal_url": "https://ha.lan:8123"})
    subentry = hub.subentries[_subentry_id(hub)]
    hass.config_entries.async_update_subentry(
        hub,
        subentry,
        data=subentry.data
        | {CONF_CHIP_FAMILY: "ESP8266", CONF_FIRMWARE_TYPE: f"{ESP_PROJECT}-esp8266"},
    )
    await hass.async_block_till_done()

    result = await _open(hass, hub, "show_yaml")

    assert result["errors"] == {"base": "tls_not_verified"}
    assert "verify_ssl: false" in result["description_placeholders"]["yaml"]


async def test_show_yaml_without_a_url(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    with patch(
        "custom_components.providore.esphome_devices.get_url",
        side_effect=NoURLAvailableError,
    ):
        result = await _open(hass, hub, "show_yaml")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_url"


async def test_revoke_then_rotate_the_token(
    hass: HomeAssistant, hub: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    result = await _open(hass, hub, "revoke_token")
    assert result["type"] is FlowResultType.FORM
    result = await _configure(hass, result, {})
    assert result["reason"] == "token_revoked"
    assert hass_storage[TOKENS_STORE]["data"] == {ESP_KEY_ID: None}
    runtime = loaded_runtime(hass)
    assert runtime.esphome.device_for_token(ESP_TOKEN) is None

    # Without a token there is no YAML to show.
    result = await _open(hass, hub, "show_yaml")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "token_revoked"

    result = await _open(hass, hub, "rotate_token")
    assert result["type"] is FlowResultType.FORM
    result = await _configure(hass, result, {})
    assert result["reason"] == "token_rotated"
    token = hass_storage[TOKENS_STORE]["data"][ESP_KEY_ID]
    assert token not in (None, ESP_TOKEN)
    assert runtime.esphome.device_for_token(token) == ESP_KEY_ID
    assert runtime.esphome.device_for_token(ESP_TOKEN) is None


@pytest.mark.parametrize(
    "step", ["upload_firmware", "show_yaml", "rotate_token", "revoke_token"]
)
async def test_steps_abort_while_providore_is_not_loaded(
    hass: HomeAssistant, hub: MockConfigEntry, step: str
) -> None:
    result = await hass.config_entries.subentries.async_init(
        (hub.entry_id, SUBENTRY_TYPE_ESPHOME_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(hub)},
    )
    assert await hass.config_entries.async_unload(hub.entry_id)

    result = await _configure(hass, result, {"next_step_id": step})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_add_and_configure_abort_while_providore_is_not_loaded(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    assert await hass.config_entries.async_unload(hub.entry_id)

    result = await _start_add(hass, hub)
    assert result["reason"] == "not_loaded"
    result = await hass.config_entries.subentries.async_init(
        (hub.entry_id, SUBENTRY_TYPE_ESPHOME_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(hub)},
    )
    assert result["reason"] == "not_loaded"


# --- uploads -----------------------------------------------------------------------


async def test_upload_a_build(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    file_id = await _browser_upload(hass_client, IMAGE, "firmware.ota.bin")
    result = await _open(hass, hub, "upload_firmware")
    assert result["type"] is FlowResultType.FORM

    result = await _configure(
        hass,
        result,
        {"firmware_file": file_id, "version": " 1.2.0 ", "release_notes": "Notes"},
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "firmware_uploaded"
    assert result["description_placeholders"]["version"] == "1.2.0"
    (build,) = loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE)
    assert (build.version, build.md5, build.chip_family) == (
        "1.2.0",
        IMAGE_MD5,
        ChipFamily.ESP32_C3,
    )
    assert build.release_notes == "Notes"
    # The browser's temporary file is gone.
    assert await hass.async_add_executor_job(_files, upload_dir) == []


async def test_upload_a_ci_build(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    manifest = {
        "name": "Kitchen sensor",
        "version": "2026.1.3",
        "builds": [
            {"chipFamily": "ESP32", "ota": {"path": "a.bin", "md5": "0" * 32}},
            {
                "chipFamily": "ESP32-C3",
                "ota": {
                    "path": "kitchen-esp32c3.ota.bin",
                    "md5": IMAGE_MD5.upper(),
                    "summary": "From CI",
                    "release_url": "https://example.com/r/2026.1.3",
                },
                "parts": [{"path": "factory.bin", "offset": 0}],
            },
        ],
    }
    file_id = await _browser_upload(hass_client, IMAGE, "firmware.ota.bin")
    manifest_id = await _browser_upload(
        hass_client, json.dumps(manifest).encode(), "manifest.json"
    )
    result = await _open(hass, hub, "upload_firmware")

    result = await _configure(
        hass, result, {"firmware_file": file_id, "manifest_file": manifest_id}
    )

    assert result["reason"] == "firmware_uploaded"
    (build,) = loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE)
    assert build.version == "2026.1.3"
    assert (build.release_notes, build.release_url) == (
        "From CI",
        "https://example.com/r/2026.1.3",
    )


def _single_build(md5: str = IMAGE_MD5, family: str = "ESP32-C3") -> bytes:
    return json.dumps(
        {"chipFamily": family, "ota": {"path": "firmware.ota.bin", "md5": md5}}
    ).encode()


@pytest.mark.parametrize(
    ("content", "manifest", "fields", "error", "placeholders"),
    [
        (
            esphome_image(family=ChipFamily.ESP32_S3),
            None,
            {"version": "1.2.0"},
            "chip_mismatch",
            {"image_chip": "ESP32-S3", "chip_family": "ESP32-C3"},
        ),
        (b"\xe9" * 20, None, {"version": "1.2.0"}, "image_too_short", {"size": "20"}),
        (
            b"\xff" * 4096,
            None,
            {"version": "1.2.0"},
            "bad_magic",
            {"chip_family": "ESP32-C3"},
        ),
        (IMAGE, None, {}, "version_required", {}),
        (IMAGE, _single_build(), {}, "version_required", {}),
        (
            IMAGE,
            _single_build("f" * 32),
            {"version": "1.2.0"},
            "md5_mismatch",
            {"md5": IMAGE_MD5, "expected": "f" * 32},
        ),
        (
            IMAGE,
            _single_build(family="ESP32"),
            {"version": "1.2.0"},
            "no_build_for_chip",
            {"chip_family": "ESP32-C3", "found": "ESP32"},
        ),
        (IMAGE, b"{not json", {"version": "1.2.0"}, "invalid_manifest", {}),
        (
            IMAGE,
            json.dumps(
                {
                    "version": "1.3.0",
                    "builds": json.loads(b"[" + _single_build() + b"]"),
                }
            ).encode(),
            {"version": "1.2.0"},
            "version_not_manifests",
            {"version": "1.2.0", "manifest": "1.3.0"},
        ),
        (IMAGE, None, {"version": "1/2"}, "invalid_firmware_name", {"name": "1/2"}),
    ],
    ids=[
        "other-chip",
        "too-short",
        "factory-image",
        "no-version",
        "single-build-without-version",
        "md5",
        "no-build",
        "not-json",
        "version-differs",
        "bad-version",
    ],
)
async def test_upload_refusals(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
    content: bytes,
    manifest: bytes | None,
    fields: dict[str, str],
    error: str,
    placeholders: dict[str, str],
) -> None:
    user_input: dict[str, Any] = {
        "firmware_file": await _browser_upload(hass_client, content, "fw.bin"),
        "release_url": "https://example.com/r",
        **fields,
    }
    if manifest is not None:
        user_input["manifest_file"] = await _browser_upload(
            hass_client, manifest, "manifest.json"
        )
    result = await _open(hass, hub, "upload_firmware")

    result = await _configure(hass, result, user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert placeholders.items() <= result["description_placeholders"].items()
    assert loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE) == []
    # What was typed stays; the files must be chosen again.
    suggested = {
        key.schema: key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert suggested == {"release_url": "https://example.com/r", **fields}
    directory = loaded_runtime(hass).firmware.catalog.directory
    assert await hass.async_add_executor_job(_files, directory) == []


def _files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


async def test_upload_refuses_a_bad_release_url_and_unreadable_files(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    file_id = await _browser_upload(hass_client, IMAGE, "fw.bin")
    result = await _open(hass, hub, "upload_firmware")

    result = await _configure(
        hass,
        result,
        {"firmware_file": file_id, "version": "1.2.0", "release_url": "not a url"},
    )
    assert result["errors"] == {"release_url": "invalid_release_url"}

    result = await _configure(
        hass, result, {"firmware_file": MISSING_UPLOAD, "version": "1.2.0"}
    )
    assert result["errors"] == {"base": "firmware_unreadable"}

    result = await _configure(
        hass,
        result,
        {"firmware_file": file_id, "manifest_file": MISSING_UPLOAD, "version": "1.2.0"},
    )
    assert result["errors"] == {"base": "firmware_unreadable"}
