"""The ESPHome actions: firmware uploads (a real esptool image), the YAML (the real esphome config)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import subprocess
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.network import NoURLAvailableError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN
from custom_components.providore.esphome_image import ChipFamily

from .conftest import FIRMWARE_TYPE, KEY_ID, loaded_runtime
from .esphome_setup import (
    ESP_FIRMWARE_TYPE,
    ESP_KEY_ID,
    ESP_PROJECT,
    ESP_TOKEN,
    TOKENS_STORE,
    esphome_image,
    hub_with_esphome_device,
    stored_tokens,
)
from .esphome_venv import TIMEOUT, esphome_tool, run_tool
from .test_esphome_image import (
    APP_DESCRIPTION,
    DEFAULT_RAM_ADDRESS,
    ELF2IMAGE,
    ELF_MACHINE_RISCV,
    make_elf,
)
from .test_esphome_snippet import device_config


@pytest.fixture
async def hub(
    hass: HomeAssistant, hass_storage: dict[str, Any], stored_secrets: dict[str, str]
) -> MockConfigEntry:
    """Set up a hub with a Providore and an ESPHome device."""
    await async_process_ha_core_config(
        hass, {"internal_url": "http://192.168.1.20:8123"}
    )
    hass_storage[TOKENS_STORE] = stored_tokens({ESP_KEY_ID: ESP_TOKEN})
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture(scope="module")
def esptool_image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Return an ESP32-C3 application image made by esptool's elf2image."""
    folder = tmp_path_factory.mktemp("esptool-c3")
    elf = folder / "app.elf"
    elf.write_bytes(make_elf(ELF_MACHINE_RISCV, DEFAULT_RAM_ADDRESS, APP_DESCRIPTION))
    job = ["--chip", "esp32c3", "elf2image", "--output", f"{folder}/app.bin", str(elf)]
    run_tool("python", "-c", ELF2IMAGE, json.dumps([job]))
    return (folder / "app.bin").read_bytes()


async def _write(hass: HomeAssistant, name: str, content: bytes) -> str:
    path = Path(hass.config.path(name))
    await hass.async_add_executor_job(path.parent.mkdir, 0o755, True, True)
    await hass.async_add_executor_job(path.write_bytes, content)
    return name


async def _upload(hass: HomeAssistant, **data: Any) -> None:
    await hass.services.async_call(
        DOMAIN,
        "upload_esphome_firmware",
        {"key_id": ESP_KEY_ID, **data},
        blocking=True,
    )


async def test_upload_an_esptool_image(
    hass: HomeAssistant, hub: MockConfigEntry, esptool_image: bytes
) -> None:
    path = await _write(hass, "esphome/firmware.ota.bin", esptool_image)

    await _upload(hass, path=path, version="1.2.0", release_notes="Notes")

    (build,) = loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE)
    assert build.md5 == hashlib.md5(esptool_image, usedforsecurity=False).hexdigest()
    assert build.sha256 == hashlib.sha256(esptool_image).hexdigest()
    assert build.chip_family is ChipFamily.ESP32_C3


async def test_upload_with_a_ci_manifest(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    image = esphome_image()
    md5 = hashlib.md5(image, usedforsecurity=False).hexdigest()
    path = await _write(hass, "ci/firmware.ota.bin", image)
    manifest = await _write(
        hass,
        "ci/manifest.json",
        json.dumps(
            {
                "name": ESP_PROJECT,
                "version": "2.0.0",
                "builds": [
                    {"chipFamily": "ESP32-C3", "ota": {"path": "f", "md5": md5}}
                ],
            }
        ).encode(),
    )

    await _upload(hass, path=path, manifest_path=manifest)

    (build,) = loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE)
    assert (build.version, build.md5) == ("2.0.0", md5)


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"version": "1.2.0", "path": "other-chip.bin"}, "chip_mismatch"),
        (
            {
                "version": "1.2.0",
                "path": "big-manifest.json",
                "manifest_path": "big-manifest.json",
            },
            "invalid_manifest",
        ),
        ({"path": "fine.bin"}, "version_required"),
        ({"version": "1.2.0", "path": "../outside.bin"}, "path_not_allowed"),
        (
            {
                "version": "1.2.0",
                "path": "fine.bin",
                "manifest_path": "configuration.yaml",
            },
            "path_configuration",
        ),
    ],
)
async def test_upload_refusals(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    data: dict[str, str],
    translation_key: str,
) -> None:
    await _write(hass, "other-chip.bin", esphome_image(family=ChipFamily.ESP32))
    await _write(hass, "fine.bin", esphome_image())
    await _write(hass, "big-manifest.json", b" " * (64 * 1024 + 1))
    await _write(hass, "configuration.yaml", b"{}")

    with pytest.raises(ServiceValidationError) as raised:
        await _upload(hass, **data)

    assert raised.value.translation_key == translation_key
    assert loaded_runtime(hass).builds(ESP_FIRMWARE_TYPE) == []


async def test_the_generic_upload_checks_an_esphome_type(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """upload_firmware for an ESPHome device's type gets the same image check."""
    await _write(hass, "other-chip.bin", esphome_image(family=ChipFamily.ESP32_S2))
    await _write(hass, "fine.bin", esphome_image())
    await _write(hass, "plain.bin", b"any bytes for a Providore device")

    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "upload_firmware",
            {
                "firmware_type": ESP_FIRMWARE_TYPE,
                "version": "1.0.0",
                "path": "other-chip.bin",
            },
            blocking=True,
        )
    assert raised.value.translation_key == "chip_mismatch"
    assert raised.value.translation_placeholders == {
        "image_chip": "ESP32-S2",
        "chip_family": "ESP32-C3",
    }

    for firmware_type, path in (
        (ESP_FIRMWARE_TYPE, "fine.bin"),
        (FIRMWARE_TYPE, "plain.bin"),
    ):
        await hass.services.async_call(
            DOMAIN,
            "upload_firmware",
            {"firmware_type": firmware_type, "version": "1.0.0", "path": path},
            blocking=True,
        )
    runtime = loaded_runtime(hass)
    assert runtime.builds(ESP_FIRMWARE_TYPE)[0].chip_family is ChipFamily.ESP32_C3
    assert runtime.builds(FIRMWARE_TYPE)[0].chip_family is None
    # Only an ESPHome build records its MD5 (ESPHome checks it; other devices do not).
    assert runtime.builds(ESP_FIRMWARE_TYPE)[0].md5 is not None
    assert runtime.builds(FIRMWARE_TYPE)[0].md5 is None


async def test_esphome_actions_need_an_esphome_device(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    for service, data in (
        ("esphome_yaml", {}),
        ("upload_esphome_firmware", {"path": "x.bin"}),
    ):
        with pytest.raises(ServiceValidationError) as raised:
            await hass.services.async_call(
                DOMAIN,
                service,
                {"key_id": KEY_ID, **data},
                blocking=True,
                return_response=service == "esphome_yaml",
            )
        assert raised.value.translation_key == "not_esphome_device"


async def test_an_esphome_device_has_no_provisioning_bundle(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "provisioning_bundle",
            {"key_id": ESP_KEY_ID},
            blocking=True,
            return_response=True,
        )
    assert raised.value.translation_key == "esphome_no_bundle"


async def _yaml(hass: HomeAssistant) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "esphome_yaml",
        {"key_id": ESP_KEY_ID},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


async def test_the_yaml_action_passes_esphome_config(
    hass: HomeAssistant, hub: MockConfigEntry, tmp_path: Path
) -> None:
    response = await _yaml(hass)

    url = f"http://192.168.1.20:8123/api/providore/esphome/{ESP_TOKEN}/manifest.json"
    assert response["manifest_url"] == url
    assert response["warnings"] == ["plain_http"]
    assert response["ca_certificate_file"] is None
    assert response["secret_name"] == "providore_kitchen_sensor_manifest_url"
    # Pasted as it is into a device's configuration, the real esphome accepts it.
    output = await hass.async_add_executor_job(_esphome_config, tmp_path, response)
    assert url in output


def _esphome_config(folder: Path, response: dict[str, Any]) -> str:
    """Run `esphome config` on a device configuration with the YAML pasted in."""
    (folder / "kitchen.yaml").write_text(
        device_config(ChipFamily.ESP32_C3) + response["yaml"], encoding="utf-8"
    )
    (folder / "secrets.yaml").write_text(response["secrets"], encoding="utf-8")
    result = subprocess.run(  # noqa: S603 (our own venv's program, fixed arguments)
        [esphome_tool("esphome"), "config", "kitchen.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_the_yaml_action_without_a_token_or_url(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    await loaded_runtime(hass).esphome.async_revoke_token(ESP_KEY_ID)
    with pytest.raises(ServiceValidationError) as raised:
        await _yaml(hass)
    assert raised.value.translation_key == "token_revoked"

    await loaded_runtime(hass).esphome.async_rotate_token(ESP_KEY_ID)
    with (
        patch(
            "custom_components.providore.esphome_devices.get_url",
            side_effect=NoURLAvailableError,
        ),
        pytest.raises(HomeAssistantError) as no_url,
    ):
        await _yaml(hass)
    assert no_url.value.translation_key == "no_url"


async def test_diagnostics_describe_the_esphome_device_without_its_token(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, hub)
    device = next(d for d in diagnostics["devices"] if d["key_id"] == ESP_KEY_ID)
    assert device["esphome"] == {
        "chip_family": "ESP32-C3",
        "project_name": ESP_PROJECT,
        "mac": "24:0a:c4:12:34:56",
        "has_token": True,
        "attached_to_esphome_device": False,
    }
    registry_device = dr.async_get(hass).async_get_device(
        identifiers={(DOMAIN, ESP_KEY_ID)}
    )
    assert registry_device is not None
    device_diagnostics = await get_diagnostics_for_device(
        hass, hass_client, hub, registry_device
    )
    assert device_diagnostics["esphome"]["has_token"] is True
    assert ESP_TOKEN not in json.dumps(diagnostics) + json.dumps(device_diagnostics)
