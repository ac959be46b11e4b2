"""An ESPHome device's manifest and firmware, through Home Assistant's real HTTP stack.

The device side is the reference client's ESPHome mode (providore_client.esphome),
which reads manifests and checks downloads as ESPHome's `http_request` code does.
"""

from __future__ import annotations

import hashlib
from http import HTTPStatus
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.update import ATTR_IN_PROGRESS, ATTR_INSTALLED_VERSION
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN, THROTTLE_LIMIT
from custom_components.providore.device_events import EVENT_DEVICE
from custom_components.providore.esphome_manifest import EMPTY_MD5, IDLE_OTA_PATH
from providore_client.esphome import download_update, fetch_update

from .conftest import loaded_runtime
from .device import BASE, signed_headers
from .esphome_setup import (
    ESP_CHIP,
    ESP_KEY_ID,
    ESP_PROJECT,
    ESP_TOKEN,
    ESPHOME_BASE,
    MANIFEST,
    TOKENS_STORE,
    esphome_image,
    hub_with_esphome_device,
    stored_tokens,
)

FIRMWARE = esphome_image(300 * 1024 + 7)
UPDATE = "update.kitchen_sensor_firmware"
ASSIGNED = "select.kitchen_sensor_assigned_firmware"
DOWNLOAD = "sensor.kitchen_sensor_firmware_download"
OTHER_TOKEN = "fedcba9876543210fedcba9876543210"


@pytest.fixture
async def esphome_hub(
    hass: HomeAssistant, hass_storage: dict[str, Any], stored_secrets: dict[str, str]
) -> MockConfigEntry:
    """Set up a hub whose ESPHome device has its token."""
    hass_storage[TOKENS_STORE] = stored_tokens({ESP_KEY_ID: ESP_TOKEN})
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def upload(
    hass: HomeAssistant, version: str, content: bytes = FIRMWARE, **extra: Any
) -> None:
    """Upload a build for the ESPHome device with its action."""
    source = Path(hass.config.path(f"firmware-{version}.ota.bin"))
    await hass.async_add_executor_job(source.write_bytes, content)
    await hass.services.async_call(
        DOMAIN,
        "upload_esphome_firmware",
        {"key_id": ESP_KEY_ID, "path": source.name, "version": version, **extra},
        blocking=True,
    )
    await hass.async_block_till_done()


async def assign(hass: HomeAssistant, version: str) -> None:
    """Choose the version under the device's Assigned firmware."""
    await hass.services.async_call(
        "select",
        "select_option",
        {ATTR_ENTITY_ID: ASSIGNED, "option": version},
        blocking=True,
    )
    await hass.async_block_till_done()


async def get_manifest(client: TestClient, token: str = ESP_TOKEN) -> Any:
    response = await client.get(f"{ESPHOME_BASE}/{token}/manifest.json")
    assert response.status == HTTPStatus.OK
    body = await response.read()
    assert response.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in response.headers
    return json.loads(body)


# --- the manifest ------------------------------------------------------------------


async def test_nothing_is_offered_before_an_assignment(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")

    assert await get_manifest(client) == {
        "name": ESP_PROJECT,
        "version": "",
        "builds": [
            {"chipFamily": "ESP32-C3", "ota": {"path": IDLE_OTA_PATH, "md5": EMPTY_MD5}}
        ],
    }
    # ESPHome offers nothing for an empty version, whatever the device runs.
    update = await fetch_update(
        client.session, str(client.make_url(MANIFEST)), ESP_CHIP.value
    )
    assert not update.offers_update("1.0.0")
    assert hass.states.get(ASSIGNED).state == "unknown"
    assert hass.states.get(DOWNLOAD).state == "unknown"


async def test_an_assigned_build_is_offered_and_delivered(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    events = async_capture_events(hass, EVENT_DEVICE)
    await upload(hass, "1.1.0", release_notes="Faster readings.")
    await assign(hass, "1.1.0")

    sha256 = hashlib.sha256(FIRMWARE).hexdigest()
    md5 = hashlib.md5(FIRMWARE, usedforsecurity=False).hexdigest()
    assert await get_manifest(client) == {
        "name": ESP_PROJECT,
        "version": "1.1.0",
        "builds": [
            {
                "chipFamily": "ESP32-C3",
                "ota": {
                    "path": f"{sha256}.bin",
                    "md5": md5,
                    "sha256": sha256,
                    "summary": "Faster readings.",
                },
            }
        ],
    }
    assert hass.states.get(ASSIGNED).state == "1.1.0"
    state = hass.states.get(UPDATE)
    assert state.attributes[ATTR_IN_PROGRESS] is True

    # The device, as ESPHome's code: it reads the manifest, downloads, checks the MD5.
    update = await fetch_update(
        client.session, str(client.make_url(MANIFEST)), ESP_CHIP.value
    )
    assert update.offers_update("1.0.0")
    target = Path(hass.config.path("downloaded.bin"))
    firmware = await download_update(client.session, update, target)
    assert firmware.size == len(FIRMWARE)
    assert firmware.sha256_checked
    assert await hass.async_add_executor_job(target.read_bytes) == FIRMWARE
    await hass.async_block_till_done()
    assert hass.states.get(DOWNLOAD).state == "100"
    assert hass.states.get(UPDATE).attributes[ATTR_INSTALLED_VERSION] is None

    # It reboots into the build and checks again: the update is complete.
    assert (await get_manifest(client))["version"] == "1.1.0"
    await hass.async_block_till_done()
    state = hass.states.get(UPDATE)
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.state == "off"
    assert hass.states.get(DOWNLOAD).state == "unknown"
    assert [
        event.data["type"] for event in events if event.data["key_id"] == ESP_KEY_ID
    ] == [
        "update_assigned",
        "first_seen",
        "update_downloaded",
        "update_completed",
    ]
    # Now running it, the device is offered no update.
    update = await fetch_update(
        client.session, str(client.make_url(MANIFEST)), ESP_CHIP.value
    )
    assert not update.offers_update("1.1.0")


async def test_the_firmware_answer(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    path = (await get_manifest(client))["builds"][0]["ota"]["path"]

    response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/{path}")

    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Length"] == str(len(FIRMWARE))
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "signature" not in response.headers
    assert await response.read() == FIRMWARE


async def test_only_the_offered_build_can_be_fetched(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    newer = esphome_image(64 * 1024)
    await upload(hass, "1.1.0")
    await upload(hass, "1.2.0", newer)
    await assign(hass, "1.1.0")
    old_path = (await get_manifest(client))["builds"][0]["ota"]["path"]
    await assign(hass, "1.2.0")
    new_path = (await get_manifest(client))["builds"][0]["ota"]["path"]

    for name in (old_path, IDLE_OTA_PATH, "manifest.JSON", "..", "x.bin"):
        response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/{name}")
        assert response.status == HTTPStatus.NOT_FOUND, name
    response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/{new_path}")
    assert await response.read() == newer


async def test_a_missing_file_is_not_found(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    path = (await get_manifest(client))["builds"][0]["ota"]["path"]
    runtime = loaded_runtime(hass)
    build = runtime.firmware.assigned(ESP_KEY_ID)
    assert build is not None
    await hass.async_add_executor_job(runtime.firmware.catalog.path(build).unlink)

    response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/{path}")

    assert response.status == HTTPStatus.NOT_FOUND


# --- tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [OTHER_TOKEN, ESP_TOKEN.upper(), ESP_TOKEN[:-1], ESP_TOKEN + "0", "x", "%00"],
)
async def test_an_unknown_token_is_not_found(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    token: str,
) -> None:
    client = await hass_client_no_auth()

    response = await client.get(f"{ESPHOME_BASE}/{token}/manifest.json")

    assert response.status == HTTPStatus.NOT_FOUND
    assert await response.json() == {"message": "not found"}


async def test_a_revoked_token_answers_as_an_unknown_one(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
) -> None:
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    path = (await get_manifest(client))["builds"][0]["ota"]["path"]
    unknown = await client.get(f"{ESPHOME_BASE}/{OTHER_TOKEN}/manifest.json")

    await loaded_runtime(hass).esphome.async_revoke_token(ESP_KEY_ID)

    for name in ("manifest.json", path):
        response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/{name}")
        assert response.status == unknown.status
        assert await response.read() == await unknown.read()
        assert response.headers["Content-Type"] == unknown.headers["Content-Type"]
    assert hass_storage[TOKENS_STORE]["data"] == {ESP_KEY_ID: None}


async def test_a_rotated_token_replaces_the_old_one_at_once(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
) -> None:
    client = await hass_client_no_auth()
    runtime = loaded_runtime(hass)

    await runtime.esphome.async_rotate_token(ESP_KEY_ID)

    token = runtime.esphome.token(ESP_KEY_ID)
    assert token is not None
    assert token != ESP_TOKEN
    assert len(bytes.fromhex(token)) == 16
    assert hass_storage[TOKENS_STORE]["data"] == {ESP_KEY_ID: token}
    response = await client.get(MANIFEST)
    assert response.status == HTTPStatus.NOT_FOUND
    assert (await get_manifest(client, token))["name"] == ESP_PROJECT


async def test_unknown_tokens_are_throttled_but_a_known_one_never(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    # A known token asking for a file it is not offered is no failure.
    for _ in range(THROTTLE_LIMIT + 2):
        response = await client.get(f"{ESPHOME_BASE}/{ESP_TOKEN}/x.bin")
        assert response.status == HTTPStatus.NOT_FOUND
    for _ in range(THROTTLE_LIMIT):
        response = await client.get(f"{ESPHOME_BASE}/{OTHER_TOKEN}/manifest.json")
        assert response.status == HTTPStatus.NOT_FOUND

    response = await client.get(f"{ESPHOME_BASE}/{OTHER_TOKEN}/manifest.json")

    assert response.status == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response.headers["Retry-After"]) > 0
    # The device with its token is served all the same.
    assert (await get_manifest(client))["name"] == ESP_PROJECT


async def test_not_found_while_providore_is_not_loaded(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    assert await hass.config_entries.async_unload(esphome_hub.entry_id)

    response = await client.get(MANIFEST)

    assert response.status == HTTPStatus.NOT_FOUND


async def test_a_build_for_another_chip_is_never_offered(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """A build of the type never checked for the chip is not served, even assigned.

    (Uploaded before any ESPHome device had the type.)
    """
    client = await hass_client_no_auth()
    runtime = loaded_runtime(hass)
    source = Path(hass.config.path("unchecked.bin"))
    await hass.async_add_executor_job(source.write_bytes, b"not an image at all")
    await runtime.firmware.catalog.async_add(
        runtime.devices[ESP_KEY_ID].firmware_type or "", "9.9.9", source
    )
    await assign(hass, "9.9.9")

    manifest = await get_manifest(client)

    assert manifest["version"] == ""
    assert manifest["builds"][0]["ota"]["path"] == IDLE_OTA_PATH


async def test_a_known_running_version_is_named_when_nothing_is_assigned(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    await upload(hass, "1.1.0")
    await assign(hass, "1.1.0")
    update = await fetch_update(
        client.session, str(client.make_url(MANIFEST)), ESP_CHIP.value
    )
    await download_update(client.session, update, Path(hass.config.path("fw.bin")))
    await get_manifest(client)  # the device booted 1.1.0
    await hass.services.async_call(
        DOMAIN,
        "delete_firmware",
        {"firmware_type": "acme.kitchen_sensor-esp32c3", "version": "1.1.0"},
        blocking=True,
    )
    await hass.async_block_till_done()

    manifest = await get_manifest(client)

    assert manifest["version"] == "1.1.0"
    assert manifest["builds"][0]["ota"]["path"] == IDLE_OTA_PATH


# --- an ESPHome device among the others ------------------------------------------------


async def test_the_token_is_no_key_for_the_signed_api(
    hass: HomeAssistant,
    esphome_hub: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Requests signed with the token as an ESPHome device's key are refused."""
    client = await hass_client_no_auth()
    for method, path in (("GET", "/config"), ("POST", "/certificates/request")):
        headers = signed_headers(
            method, path, key_id=ESP_KEY_ID, secret=ESP_TOKEN, body=b"csr"
        )
        response = await client.request(
            method, f"{BASE}{path}", headers=headers, data=b"csr"
        )
        assert response.status == HTTPStatus.UNAUTHORIZED
    assert loaded_runtime(hass).secret(ESP_KEY_ID) is None
    # An ESPHome device lacks a secret key by design: no repair asks for one.
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"missing_secret_{ESP_KEY_ID}")
        is None
    )


async def test_tokens_survive_a_restart_and_stale_ones_go(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    hass_storage[TOKENS_STORE] = stored_tokens(
        {ESP_KEY_ID: ESP_TOKEN, "removed-while-stopped": OTHER_TOKEN}
    )
    entry = hub_with_esphome_device()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass_storage[TOKENS_STORE]["data"] == {ESP_KEY_ID: ESP_TOKEN}
    runtime = loaded_runtime(hass)
    await runtime.esphome.async_rotate_token(ESP_KEY_ID)
    token = runtime.esphome.token(ESP_KEY_ID)
    assert token is not None

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    client = await hass_client_no_auth()
    assert (await get_manifest(client, token))["name"] == ESP_PROJECT
    for old in (ESP_TOKEN, OTHER_TOKEN):
        response = await client.get(f"{ESPHOME_BASE}/{old}/manifest.json")
        assert response.status == HTTPStatus.NOT_FOUND
