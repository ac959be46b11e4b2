"""Flash the device, as the browser drives it: the key shown, the signed downloads served."""

from __future__ import annotations

import csv
from datetime import timedelta
import html
import io
import logging
import re
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http.auth import async_sign_path
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from yarl import URL

from custom_components.providore.const import SUBENTRY_TYPE_DEVICE
from custom_components.providore.provisioning import (
    DeviceKeyMaterial,
    ProvisioningFile,
    new_encryption_key,
)
from custom_components.providore.provisioning_views import (
    DATA_DOWNLOADS,
    DOWNLOAD_PATH,
    LINK_LIFETIME,
    MAX_LINKS,
)

from .conftest import DEVICE_NAME, KEY_ID, SECRET_KEY, loaded_runtime
from .nvs_image import read_nvs

INTERNAL_URL = "http://homeassistant.local:8123"
SERVER_URL = f"{INTERNAL_URL}/api/providore"
LINK = re.compile(r'<a href="([^"]+)" target="_blank">([^<]+)</a>')
EXPECTED_NVS = {"providore": {"device_id": KEY_ID, "psk": SECRET_KEY}}
LAYOUT = {"nvs_offset": "0x9000", "nvs_size": "0x6000", "nvs_keys_offset": "0x310000"}


@pytest.fixture
async def flashing_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> MockConfigEntry:
    """Return the loaded hub, its flows reachable over REST and its URL known."""
    await async_process_ha_core_config(hass, {"internal_url": INTERNAL_URL})
    assert await async_setup_component(hass, "config", {})
    return init_integration


async def _flash_over_http(
    hass_client: ClientSessionGenerator,
    entry: MockConfigEntry,
    layout: dict[str, str] = LAYOUT,
) -> dict[str, Any]:
    """Open the device's Configure → Flash the device as the frontend does; submit."""
    client = await hass_client()
    subentry_id = next(iter(entry.subentries))
    response = await client.post(
        "/api/config/config_entries/subentries/flow",
        json={
            "handler": [entry.entry_id, SUBENTRY_TYPE_DEVICE],
            "subentry_id": subentry_id,
        },
    )
    assert response.status == 200, await response.text()
    menu = await response.json()
    assert menu["type"] == "menu"
    flow_url = f"/api/config/config_entries/subentries/flow/{menu['flow_id']}"
    response = await client.post(flow_url, json={"next_step_id": "flash"})
    form = await response.json()
    assert form["step_id"] == "flash"
    assert SECRET_KEY not in str(form)
    response = await client.post(flow_url, json=layout)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    assert result["type"] == "abort"
    assert result["reason"] == "flash_ready"
    return result


def _links(placeholders: dict[str, str]) -> dict[ProvisioningFile, str]:
    """Return the signed path of each file, read from the links the message shows."""
    links = {}
    for kind in ProvisioningFile:
        match = LINK.fullmatch(placeholders[f"{kind}_link"])
        assert match is not None, placeholders[f"{kind}_link"]
        assert match.group(2) == kind.filename(KEY_ID)
        links[kind] = html.unescape(match.group(1))
    return links


async def test_flash_shows_the_key_and_the_commands(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    result = await _flash_over_http(hass_client, flashing_hub)

    placeholders = result["description_placeholders"]
    assert {
        key: value for key, value in placeholders.items() if not key.endswith("_link")
    } == {
        "name": DEVICE_NAME,
        "key_id": KEY_ID,
        "secret_key": f"<code>{_references(SECRET_KEY)}</code>",
        "server_url": SERVER_URL,
        "max_length": "106",
        "nvs_offset": "0x9000",
        "nvs_size": "0x6000",
        "keys_offset": "0x310000",
        "minutes": "10",
        "csv_file": f"providore-{KEY_ID}-nvs.csv",
        "nvs_file": f"providore-{KEY_ID}-nvs.bin",
        "encrypted_nvs_file": f"providore-{KEY_ID}-nvs-encrypted.bin",
        "nvs_keys_file": f"providore-{KEY_ID}-nvs-keys.bin",
    }
    assert html.unescape(placeholders["secret_key"]) == f"<code>{SECRET_KEY}</code>"


def _references(text: str) -> str:
    return "".join(c if c.isalnum() else f"&#{ord(c)};" for c in text)


async def test_flash_shows_an_awkward_secret_literally(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """Markdown never sees a character of the secret it could act on."""
    secret = 'a*b_c`d<e>f&g"h[i](j)!'
    await loaded_runtime(hass).async_store_secrets({KEY_ID: secret})

    result = await _flash_over_http(hass_client, flashing_hub)

    shown = result["description_placeholders"]["secret_key"]
    assert re.fullmatch(r"<code>[A-Za-z0-9&#;]+</code>", shown)
    assert html.unescape(shown) == f"<code>{secret}</code>"


async def test_flash_without_a_keys_offset(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    result = await _flash_over_http(
        hass_client, flashing_hub, {"nvs_offset": "36K", "nvs_size": "16K"}
    )

    placeholders = result["description_placeholders"]
    assert placeholders["keys_offset"] == "NVS_KEYS_OFFSET"
    assert placeholders["nvs_offset"] == "0x9000"
    assert placeholders["nvs_size"] == "0x4000"


async def test_downloads_are_the_device_files(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    links = _links(
        (await _flash_over_http(hass_client, flashing_hub))["description_placeholders"]
    )
    browser = await hass_client_no_auth()
    files: dict[ProvisioningFile, bytes] = {}
    for kind, link in links.items():
        # Neither the key ID nor the secret is part of the (loggable) URL.
        assert SECRET_KEY not in link
        assert KEY_ID not in link
        assert URL(link).path.startswith("/api/providore/provisioning/")
        response = await browser.get(link)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="{kind.filename(KEY_ID)}"'
        )
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.content_type == kind.content_type
        files[kind] = await response.read()

    rows = list(csv.reader(io.StringIO(files[ProvisioningFile.CSV].decode())))
    assert rows[2:] == [
        ["device_id", "data", "string", KEY_ID],
        ["psk", "data", "string", SECRET_KEY],
    ]
    assert len(files[ProvisioningFile.NVS]) == 0x6000
    assert read_nvs(files[ProvisioningFile.NVS]) == EXPECTED_NVS
    key = files[ProvisioningFile.NVS_KEYS][:64]
    assert len(files[ProvisioningFile.NVS_KEYS]) == 0x1000
    assert SECRET_KEY.encode() not in files[ProvisioningFile.ENCRYPTED_NVS]
    assert read_nvs(files[ProvisioningFile.ENCRYPTED_NVS], key) == EXPECTED_NVS

    # A link works again while it is fresh; the encrypted image keeps its key.
    again = await browser.get(links[ProvisioningFile.ENCRYPTED_NVS])
    assert await again.read() == files[ProvisioningFile.ENCRYPTED_NVS]


async def test_each_flash_gets_its_own_encryption_key(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    client = await hass_client()
    keys = []
    for _ in range(2):
        result = await _flash_over_http(hass_client, flashing_hub)
        link = _links(result["description_placeholders"])[ProvisioningFile.NVS_KEYS]
        keys.append(await (await client.get(link)).read())

    assert keys[0] != keys[1]


async def test_nothing_secret_is_logged(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    links = _links(
        (await _flash_over_http(hass_client, flashing_hub))["description_placeholders"]
    )
    client = await hass_client()
    for link in links.values():
        assert (await client.get(link)).status == 200

    assert SECRET_KEY not in caplog.text


async def test_links_need_their_signature(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    links = _links(
        (await _flash_over_http(hass_client, flashing_hub))["description_placeholders"]
    )
    browser = await hass_client_no_auth()
    link = URL(links[ProvisioningFile.NVS])

    # No signature, or the signature of another file's link.
    assert (await browser.get(link.path)).status == 401
    other = URL(links[ProvisioningFile.NVS_KEYS])
    assert (await browser.get(link.with_query(other.query))).status == 401


async def test_links_expire(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
) -> None:
    links = _links(
        (await _flash_over_http(hass_client, flashing_hub))["description_placeholders"]
    )
    browser = await hass_client_no_auth()

    freezer.tick(LINK_LIFETIME + timedelta(seconds=1))

    assert (await browser.get(links[ProvisioningFile.NVS])).status == 401
    # Past its lifetime a token is forgotten, even under a signature still valid.
    token = URL(links[ProvisioningFile.NVS]).path.rsplit("/", 1)[1]
    assert hass.data[DATA_DOWNLOADS].get(token) is None


async def _admin_signed(hass: HomeAssistant, hass_access_token: str, path: str) -> str:
    refresh_token = hass.auth.async_validate_access_token(hass_access_token)
    assert refresh_token is not None
    return async_sign_path(hass, path, LINK_LIFETIME, refresh_token_id=refresh_token.id)


async def test_an_unknown_token_is_not_found(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_access_token: str,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    path = await _admin_signed(
        hass, hass_access_token, DOWNLOAD_PATH.format(token="guessed")
    )

    response = await (await hass_client_no_auth()).get(path)

    assert response.status == 404
    assert "Flash the device again" in (await response.json())["message"]


async def test_links_are_for_administrators(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_read_only_access_token: str,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    material = DeviceKeyMaterial(KEY_ID, SECRET_KEY, 0x6000, new_encryption_key())
    refresh_token = hass.auth.async_validate_access_token(hass_read_only_access_token)
    assert refresh_token is not None
    with pytest.MonkeyPatch.context() as patch:
        # Signed for the read-only user, as if that user had run the flow.
        patch.setattr(
            "custom_components.providore.provisioning_views.async_sign_path",
            lambda hass, path, expiration: async_sign_path(
                hass, path, expiration, refresh_token_id=refresh_token.id
            ),
        )
        links = hass.data[DATA_DOWNLOADS].async_offer(hass, material)

    response = await (await hass_client_no_auth()).get(links[ProvisioningFile.NVS])

    assert response.status == 401


@pytest.mark.parametrize("change", ["rotate", "remove", "unload"])
async def test_links_end_with_the_key(
    hass: HomeAssistant,
    flashing_hub: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    change: str,
) -> None:
    links = _links(
        (await _flash_over_http(hass_client, flashing_hub))["description_placeholders"]
    )
    client = await hass_client()
    assert (await client.get(links[ProvisioningFile.CSV])).status == 200

    if change == "rotate":
        await loaded_runtime(hass).async_rotate_key(KEY_ID)
    elif change == "remove":
        hass.config_entries.async_remove_subentry(
            flashing_hub, next(iter(flashing_hub.subentries))
        )
    else:
        await hass.config_entries.async_unload(flashing_hub.entry_id)
    await hass.async_block_till_done()

    for link in links.values():
        assert (await client.get(link)).status == 404


async def test_the_oldest_links_go_first(
    hass: HomeAssistant, flashing_hub: MockConfigEntry
) -> None:
    downloads = hass.data[DATA_DOWNLOADS]
    material = DeviceKeyMaterial(KEY_ID, SECRET_KEY, 0x6000, new_encryption_key())
    offers = [downloads.async_offer(hass, material) for _ in range(MAX_LINKS // 4 + 1)]

    def token(link: str) -> str:
        return URL(link).path.rsplit("/", 1)[1]

    assert all(downloads.get(token(link)) is None for link in offers[0].values())
    assert all(downloads.get(token(link)) is not None for link in offers[1].values())
    assert all(downloads.get(token(link)) is not None for link in offers[-1].values())
