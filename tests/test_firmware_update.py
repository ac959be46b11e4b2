"""A firmware update from upload to reboot, through Home Assistant's real HTTP stack.

A build is uploaded with the action, assigned with the update entity's Install
(`update.install`), fetched by the device with signed requests from the
independent signer in `device.py`, and confirmed when the device reports it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
import hashlib
from http import HTTPStatus
import os
from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiohttp import ClientError, ClientPayloadError, ClientResponse, web
from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_RELEASE_SUMMARY,
    ATTR_RELEASE_URL,
    ATTR_TITLE,
    ATTR_UPDATE_PERCENTAGE,
)
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_ENTITY_PICTURE,
    STATE_OFF,
    STATE_ON,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.providore import firmware_delivery
from custom_components.providore.const import DEFAULT_UPDATE_TIMEOUT, DOMAIN
from custom_components.providore.device_events import EVENT_DEVICE
from custom_components.providore.protocol import DeviceKey, response_headers

from .conftest import FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .device import BASE, response_is_signed, signed_headers

UPDATE = "update.garden_sensor_firmware"
AUTOMATIC_UPDATES = "switch.garden_sensor_automatic_updates"
OLD_VERSION = "1.0.0"
NEW_VERSION = "1.1.0"
ISSUE_ID = f"update_failed_{KEY_ID}"
# Larger than one read chunk, so streaming and ranges cross chunk boundaries.
FIRMWARE = os.urandom(600 * 1024 + 123)


# --- helpers -------------------------------------------------------------------


async def _upload(
    hass: HomeAssistant,
    version: str,
    content: bytes = FIRMWARE,
    firmware_type: str = FIRMWARE_TYPE,
    **extra: Any,
) -> None:
    source = Path(hass.config.path(f"build-{firmware_type}-{version}.bin"))
    await hass.async_add_executor_job(source.write_bytes, content)
    await hass.services.async_call(
        DOMAIN,
        "upload_firmware",
        {
            "firmware_type": firmware_type,
            "version": version,
            "path": source.name,
            **extra,
        },
        blocking=True,
    )
    await hass.async_block_till_done()


async def _install(hass: HomeAssistant, version: str | None = None) -> None:
    data = {ATTR_ENTITY_ID: UPDATE} | ({"version": version} if version else {})
    await hass.services.async_call("update", "install", data, blocking=True)
    await hass.async_block_till_done()


async def _check(client: TestClient, version: str = OLD_VERSION) -> ClientResponse:
    return await client.get(
        f"{BASE}/firmware/check",
        headers=signed_headers("GET", "/firmware/check", firmware_version=version),
        allow_redirects=False,
    )


async def _download(
    client: TestClient,
    *,
    query: str = "",
    byte_range: str | None = None,
    version: str = OLD_VERSION,
) -> ClientResponse:
    headers = signed_headers("GET", "/firmware", firmware_version=version)
    if byte_range is not None:
        headers["Range"] = byte_range
    return await client.get(f"{BASE}/firmware{query}", headers=headers)


async def _fetch(client: TestClient, **kwargs: Any) -> bytes:
    """Download and read the answer, then let the server's handler finish.

    The device has every byte as soon as sendfile handed the last slice to the
    socket; the server notes that slice's progress a few turns of the loop later.
    """
    body = await (await _download(client, **kwargs)).read()
    for _ in range(20):
        await asyncio.sleep(0)
    return body


async def _report(client: TestClient, version: str) -> None:
    """Make a signed request, as a device does after booting `version`."""
    resp = await _check(client, version)
    assert resp.status in (HTTPStatus.NO_CONTENT, HTTPStatus.FOUND)


def _update_state(hass: HomeAssistant) -> State:
    state = hass.states.get(UPDATE)
    assert state is not None
    return state


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> TestClient:
    """Return a client for the device API of a hub whose device runs 1.0.0.

    The websocket API is set up first: the test server's router takes no new
    routes once a client has started it.
    """
    assert await async_setup_component(hass, "websocket_api", {})
    await loaded_runtime(hass).async_set_config(KEY_ID, {"a": 1})
    device = await hass_client_no_auth()
    await _report(device, OLD_VERSION)
    return device


@pytest.fixture
async def assigned(hass: HomeAssistant, client: TestClient) -> TestClient:
    """Upload 1.1.0 and press Install."""
    await _upload(
        hass,
        NEW_VERSION,
        release_notes="Faster *sensor* readings.",
        release_url="https://example.com/1.1.0",
    )
    await _install(hass)
    return client


# --- the device API --------------------------------------------------------------


async def test_nothing_assigned(hass: HomeAssistant, client: TestClient) -> None:
    """Without an assignment the check says 204 and the download 404."""
    assert (await _check(client)).status == HTTPStatus.NO_CONTENT
    resp = await _download(client)
    assert resp.status == HTTPStatus.NOT_FOUND
    assert "signature" not in resp.headers


async def test_upload_alone_never_reaches_the_device(
    hass: HomeAssistant, client: TestClient
) -> None:
    await _upload(hass, NEW_VERSION)
    assert (await _check(client)).status == HTTPStatus.NO_CONTENT
    assert (await _download(client)).status == HTTPStatus.NOT_FOUND
    state = _update_state(hass)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_LATEST_VERSION] == NEW_VERSION
    assert state.attributes[ATTR_IN_PROGRESS] is False


async def test_check_redirects_to_the_assigned_version(assigned: TestClient) -> None:
    resp = await _check(assigned)
    assert resp.status == HTTPStatus.FOUND
    location = resp.headers["Location"]
    assert location.endswith(f"{BASE}/firmware?version={NEW_VERSION}")
    assert location.startswith("http://127.0.0.1:")
    # Up to date once the device runs it.
    assert (await _check(assigned, NEW_VERSION)).status == HTTPStatus.NO_CONTENT


async def test_download_is_the_signed_file(assigned: TestClient) -> None:
    resp = await _download(assigned, query=f"?version={NEW_VERSION}")
    assert resp.status == HTTPStatus.OK
    body = await resp.read()
    assert body == FIRMWARE
    assert resp.content_type == "application/octet-stream"
    assert resp.headers["Content-Length"] == str(len(FIRMWARE))
    assert resp.headers["X-Firmware-Version"] == NEW_VERSION
    assert resp.headers["X-Firmware-SHA256"] == hashlib.sha256(FIRMWARE).hexdigest()
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert response_is_signed(body, resp.headers)
    assert not response_is_signed(body[:-1] + b"\0", resp.headers)


async def test_query_cannot_choose_another_version(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    await _upload(hass, "1.2.0")
    for query in ("?version=1.2.0", f"?version={OLD_VERSION}", "?version="):
        resp = await _download(assigned, query=query)
        assert resp.status == HTTPStatus.CONFLICT
        assert "signature" not in resp.headers


async def test_unsigned_download_is_refused(assigned: TestClient) -> None:
    resp = await assigned.get(f"{BASE}/firmware")
    assert resp.status == HTTPStatus.BAD_REQUEST
    headers = signed_headers(
        "GET", "/firmware", secret="NotTheRightSecretKeyAtAll1234567"
    )
    resp = await assigned.get(f"{BASE}/firmware", headers=headers)
    assert resp.status == HTTPStatus.UNAUTHORIZED
    assert len(await resp.read()) < 100


async def test_ranged_download_reassembles_and_verifies(assigned: TestClient) -> None:
    """Two ranges make the whole file; each carries the whole file's signature."""
    split = 300_001
    first = await _download(assigned, byte_range=f"bytes=0-{split - 1}")
    second = await _download(assigned, byte_range=f"bytes={split}-")
    assert first.status == second.status == HTTPStatus.PARTIAL_CONTENT
    assert first.headers["Content-Range"] == f"bytes 0-{split - 1}/{len(FIRMWARE)}"
    assert second.headers["Content-Range"] == (
        f"bytes {split}-{len(FIRMWARE) - 1}/{len(FIRMWARE)}"
    )
    assert first.headers["Content-Length"] == str(split)
    whole = await first.read() + await second.read()
    assert whole == FIRMWARE
    assert hashlib.sha256(whole).hexdigest() == second.headers["X-Firmware-SHA256"]
    assert response_is_signed(whole, first.headers)
    assert response_is_signed(whole, second.headers)


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ("bytes=-500", FIRMWARE[-500:]),
        ("bytes=10-19", FIRMWARE[10:20]),
        (f"bytes=0-{10 * len(FIRMWARE)}", FIRMWARE),
    ],
    ids=["suffix", "middle", "past-the-end"],
)
async def test_range_forms(
    assigned: TestClient, byte_range: str, expected: bytes
) -> None:
    resp = await _download(assigned, byte_range=byte_range)
    assert resp.status == HTTPStatus.PARTIAL_CONTENT
    assert await resp.read() == expected


@pytest.mark.parametrize("byte_range", [f"bytes={len(FIRMWARE)}-", "bytes=-0"])
async def test_unsatisfiable_range(assigned: TestClient, byte_range: str) -> None:
    resp = await _download(assigned, byte_range=byte_range)
    assert resp.status == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
    assert resp.headers["Content-Range"] == f"bytes */{len(FIRMWARE)}"
    assert "signature" not in resp.headers


@pytest.mark.parametrize(
    "byte_range", ["bytes=abc", "bytes=5-1", "bytes=0-1,5-9", "items=0-1", "bytes=-"]
)
async def test_unusable_range_is_ignored(assigned: TestClient, byte_range: str) -> None:
    """A malformed or multi-range header gets the whole file (RFC 9110 allows it)."""
    resp = await _download(assigned, byte_range=byte_range)
    assert resp.status == HTTPStatus.OK
    assert "Content-Range" not in resp.headers
    body = await resp.read()
    assert body == FIRMWARE
    assert response_is_signed(body, resp.headers)


async def test_missing_file_is_404(hass: HomeAssistant, assigned: TestClient) -> None:
    catalog = loaded_runtime(hass).firmware.catalog
    build = catalog.get(FIRMWARE_TYPE, NEW_VERSION)
    assert build is not None
    await hass.async_add_executor_job(catalog.path(build).unlink)
    resp = await _download(assigned)
    assert resp.status == HTTPStatus.NOT_FOUND


async def test_deleted_build_is_no_longer_offered(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    await hass.services.async_call(
        DOMAIN,
        "delete_firmware",
        {"firmware_type": FIRMWARE_TYPE, "version": NEW_VERSION},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert (await _check(assigned)).status == HTTPStatus.NO_CONTENT
    assert (await _download(assigned)).status == HTTPStatus.NOT_FOUND
    state = _update_state(hass)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_IN_PROGRESS] is False


async def test_deleting_a_build_updates_the_entity_at_once(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    """No device request is needed: the entity drops the deleted build immediately."""
    assert _update_state(hass).attributes[ATTR_IN_PROGRESS] is True
    await hass.services.async_call(
        DOMAIN,
        "delete_firmware",
        {"firmware_type": FIRMWARE_TYPE, "version": NEW_VERSION},
        blocking=True,
    )
    state = _update_state(hass)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_LATEST_VERSION] == OLD_VERSION
    assert loaded_runtime(hass).firmware.plan(KEY_ID).assigned_version is None


async def test_a_version_uploaded_again_is_not_sent_without_a_new_install(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    """The assignment names the build's bytes, not only its version."""
    runtime = loaded_runtime(hass)
    # Deleted and uploaded again with other bytes, behind the runtime's back
    # (as a file restored from elsewhere would be): the plan keeps its SHA-256.
    await runtime.firmware.catalog.async_delete(FIRMWARE_TYPE, NEW_VERSION)
    runtime.firmware.plan(KEY_ID).assigned_version = NEW_VERSION
    runtime.firmware.plan(KEY_ID).assigned_sha256 = hashlib.sha256(FIRMWARE).hexdigest()
    await _upload(hass, NEW_VERSION, content=b"\xe9 other bytes")
    assert (await _check(assigned)).status == HTTPStatus.NO_CONTENT
    assert (await _download(assigned)).status == HTTPStatus.NOT_FOUND

    await _install(hass, NEW_VERSION)
    resp = await _download(assigned)
    assert await resp.read() == b"\xe9 other bytes"


async def test_the_body_is_sent_by_sendfile(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    """The file goes from disk to the socket without passing through Python."""
    loop = asyncio.get_running_loop()
    real_sendfile = loop.sendfile
    sent: list[int] = []

    async def sendfile(transport: Any, file: Any, offset: int, count: int) -> int:
        sent.append(count)
        result: int = await real_sendfile(transport, file, offset, count)
        return result

    with (
        patch.object(loop, "sendfile", sendfile),
        patch.object(web.StreamResponse, "write") as write,
    ):
        resp = await _download(assigned)
        body = await resp.read()
    assert body == FIRMWARE
    assert sum(sent) == len(FIRMWARE)
    write.assert_not_called()


# --- the signature cache --------------------------------------------------------


async def test_second_download_does_not_read_the_file_to_sign(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    with patch.object(
        firmware_delivery, "_sign_file", wraps=firmware_delivery._sign_file
    ) as sign_file:
        first = await _download(assigned)
        second = await _download(assigned, byte_range="bytes=100-")
        assert response_is_signed(await first.read(), first.headers)
        await second.read()
    assert sign_file.call_count == 1
    assert response_is_signed(FIRMWARE, second.headers)


async def test_cached_signature_equals_a_fresh_one(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    runtime = loaded_runtime(hass)
    catalog = runtime.firmware.catalog
    build = catalog.get(FIRMWARE_TYPE, NEW_VERSION)
    cache = runtime.firmware.signatures
    key = DeviceKey(SECRET_KEY)
    signer = await cache.async_signer(hass, KEY_ID, key, build, catalog.path(build))
    again = await cache.async_signer(hass, KEY_ID, key, build, catalog.path(build))
    assert again is signer
    now = dt_util.utcnow()
    assert signer.headers(now) == response_headers(key, FIRMWARE, now)
    later = now + timedelta(minutes=3)
    assert again.headers(later) == response_headers(key, FIRMWARE, later)
    # Another key (a rotated one) never gets the cached state.
    other = DeviceKey("AnotherSecretKeyForThisDevice123")
    rotated = await cache.async_signer(hass, KEY_ID, other, build, catalog.path(build))
    assert rotated is not signer
    assert rotated.headers(now) == response_headers(other, FIRMWARE, now)


# --- the update entity through the whole cycle --------------------------------


async def test_update_cycle(hass: HomeAssistant, client: TestClient) -> None:
    state = _update_state(hass)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_INSTALLED_VERSION] == OLD_VERSION
    assert state.attributes[ATTR_LATEST_VERSION] == OLD_VERSION
    assert state.attributes[ATTR_TITLE] == f"{FIRMWARE_TYPE}: no build assigned"
    # No brand image from the internet: the frontend shows the update icon.
    assert ATTR_ENTITY_PICTURE not in state.attributes

    await _upload(
        hass,
        NEW_VERSION,
        release_notes="Faster *sensor* readings.",
        release_url="https://example.com/1.1.0",
    )
    state = _update_state(hass)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_RELEASE_SUMMARY] == "Faster *sensor* readings."
    assert state.attributes[ATTR_RELEASE_URL] == "https://example.com/1.1.0"

    await _install(hass)
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is True
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] is None
    assert state.attributes[ATTR_TITLE] == (
        f"{FIRMWARE_TYPE} {NEW_VERSION} assigned, not running yet"
    )

    # Half the file reached the device: the entity shows it.
    half = len(FIRMWARE) // 2
    resp = await _download(client, byte_range=f"bytes=0-{half - 1}")
    await resp.read()
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is True
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] == half * 100 // len(FIRMWARE)

    resp = await _download(client, byte_range=f"bytes={half}-")
    await resp.read()
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is True
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] == 100

    # Rebooted into the new build: done.
    await _report(client, NEW_VERSION)
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_INSTALLED_VERSION] == NEW_VERSION
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] is None
    assert state.attributes[ATTR_TITLE] == (
        f"{FIRMWARE_TYPE} {NEW_VERSION} assigned and running"
    )


async def test_rollback_is_detected(
    hass: HomeAssistant,
    assigned: TestClient,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Still the old version after the timeout: no more progress, a repair issue."""
    await _fetch(assigned)
    await _report(assigned, OLD_VERSION)
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT - 5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_IN_PROGRESS] is True
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None

    freezer.tick(timedelta(seconds=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_INSTALLED_VERSION] == OLD_VERSION
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_key == "update_failed"
    assert issue.translation_placeholders == {
        "device": "Garden sensor",
        "version": NEW_VERSION,
        "installed": OLD_VERSION,
    }
    # The build is no longer offered, so the device does not loop on it.
    assert (await _check(assigned)).status == HTTPStatus.NO_CONTENT

    # Trying again clears the issue.
    await _install(hass)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert (await _check(assigned)).status == HTTPStatus.FOUND


async def test_the_update_history_is_recorded(
    hass: HomeAssistant, client: TestClient, freezer: FrozenDateTimeFactory
) -> None:
    """Assigned, downloaded and completed, or failed: each a line in the Logbook."""
    events = async_capture_events(hass, EVENT_DEVICE)
    await _upload(hass, NEW_VERSION)
    await _install(hass)
    await _fetch(client)
    await _report(client, NEW_VERSION)
    await _upload(hass, "1.2.0")
    await _install(hass)
    await _fetch(client, version=NEW_VERSION)
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert [(e.data["type"], e.data["version"]) for e in events] == [
        ("update_assigned", NEW_VERSION),
        ("update_downloaded", NEW_VERSION),
        ("update_completed", NEW_VERSION),
        ("update_assigned", "1.2.0"),
        ("update_downloaded", "1.2.0"),
        ("update_failed", "1.2.0"),
    ]
    assert events[-1].data["installed"] == NEW_VERSION


async def test_update_in_time_raises_no_issue(
    hass: HomeAssistant,
    assigned: TestClient,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
) -> None:
    await _fetch(assigned)
    await _report(assigned, NEW_VERSION)
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT + 60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert _update_state(hass).attributes[ATTR_INSTALLED_VERSION] == NEW_VERSION


async def test_rollback_watch_survives_a_restart(
    hass: HomeAssistant,
    assigned: TestClient,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
) -> None:
    await _fetch(assigned)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_UPDATE_PERCENTAGE] == 100

    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None


async def test_install_specific_version(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Roll back or pin: install an older build than the newest."""
    await _upload(hass, "1.9.0")
    await _upload(hass, "1.10.0")
    assert _update_state(hass).attributes[ATTR_LATEST_VERSION] == "1.10.0"
    with pytest.raises(HomeAssistantError) as err:
        await _install(hass, "7.0.0")
    assert err.value.translation_key == "unknown_firmware"
    assert (await _check(client)).status == HTTPStatus.NO_CONTENT

    await _install(hass, "1.9.0")
    resp = await _check(client)
    assert resp.headers["Location"].endswith("?version=1.9.0")
    assert _update_state(hass).attributes[ATTR_LATEST_VERSION] == "1.9.0"


async def test_install_without_any_build(
    hass: HomeAssistant, client: TestClient
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await loaded_runtime(hass).async_install_firmware(KEY_ID, None)
    assert err.value.translation_key == "no_firmware"


async def test_release_notes(
    hass: HomeAssistant, assigned: TestClient, hass_ws_client: WebSocketGenerator
) -> None:
    ws = await hass_ws_client(hass)
    await ws.send_json({"id": 1, "type": "update/release_notes", "entity_id": UPDATE})
    result = await ws.receive_json()
    assert result["success"]
    assert result["result"] == "Faster *sensor* readings."


async def test_release_notes_say_when_there_are_none(
    hass: HomeAssistant, client: TestClient, hass_ws_client: WebSocketGenerator
) -> None:
    """Never empty: Home Assistant 2025.4's dialog would wait for them forever."""
    ws = await hass_ws_client(hass)

    async def release_notes(message_id: int) -> str:
        await ws.send_json(
            {"id": message_id, "type": "update/release_notes", "entity_id": UPDATE}
        )
        result = await ws.receive_json()
        assert result["success"]
        notes: str = result["result"]
        return notes

    assert await release_notes(1) == (
        "No firmware was uploaded for this device's firmware type yet."
    )
    await _upload(hass, NEW_VERSION)
    assert await release_notes(2) == "No release notes were uploaded with this build."


# --- automatic updates ---------------------------------------------------------


async def test_automatic_updates_assign_new_uploads(
    hass: HomeAssistant, client: TestClient, init_integration: MockConfigEntry
) -> None:
    state = hass.states.get(AUTOMATIC_UPDATES)
    assert state is not None
    assert state.state == STATE_OFF
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: AUTOMATIC_UPDATES}, blocking=True
    )
    assert hass.states.get(AUTOMATIC_UPDATES).state == STATE_ON

    await _upload(hass, NEW_VERSION)
    resp = await _check(client)
    assert resp.status == HTTPStatus.FOUND
    assert resp.headers["Location"].endswith(f"?version={NEW_VERSION}")

    # An older build uploaded later is not newer: it is not assigned.
    await _upload(hass, "1.0.5")
    assert (
        (await _check(client)).headers["Location"].endswith(f"?version={NEW_VERSION}")
    )

    # The setting survives a restart.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(AUTOMATIC_UPDATES).state == STATE_ON

    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: AUTOMATIC_UPDATES}, blocking=True
    )
    await _upload(hass, "2.0.0")
    assert (
        (await _check(client)).headers["Location"].endswith(f"?version={NEW_VERSION}")
    )


def _second_slice_fails(error: BaseException) -> Any:
    """Make the second slice of the file sent to a device fail with `error`."""
    sent: list[int] = []
    real_send = firmware_delivery._async_send_slice

    async def send(*args: Any) -> None:
        if sent:
            raise error
        sent.append(args[-1])
        await real_send(*args)

    return patch.multiple(
        firmware_delivery, MIN_SEND_SLICE=64 * 1024, _async_send_slice=send
    )


@pytest.mark.parametrize(
    "error", [ConnectionResetError(), asyncio.CancelledError()], ids=["reset", "cancel"]
)
async def test_broken_off_download_forgets_its_progress(
    hass: HomeAssistant, assigned: TestClient, error: BaseException
) -> None:
    """A device that drops the connection mid-download shows no stale progress.

    Home Assistant cancels the handler of a client that disconnects; a reset
    connection raises instead.
    """
    with _second_slice_fails(error), pytest.raises(ClientError):
        await _fetch(assigned)
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is True
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] is None


async def test_a_range_received_whole_keeps_its_progress(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    """A device that goes away once it has every byte it asked for broke nothing off."""
    half = len(FIRMWARE) // 2
    with patch.object(
        web.StreamResponse, "write_eof", side_effect=asyncio.CancelledError
    ):
        resp = await _download(assigned, byte_range=f"bytes=0-{half - 1}")
        assert len(await resp.read()) == half
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_UPDATE_PERCENTAGE] == (
        half * 100 // len(FIRMWARE)
    )


async def test_file_shorter_than_its_catalog_size_breaks_the_download(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    catalog = loaded_runtime(hass).firmware.catalog
    build = catalog.get(FIRMWARE_TYPE, NEW_VERSION)
    assert build is not None
    await _fetch(assigned)  # signed while the file was whole
    await hass.async_add_executor_job(catalog.path(build).write_bytes, FIRMWARE[:1000])
    resp = await _download(assigned)
    with pytest.raises(ClientPayloadError):
        await resp.read()


async def test_signer_cache_keeps_the_most_recent(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    catalog = loaded_runtime(hass).firmware.catalog
    build = catalog.get(FIRMWARE_TYPE, NEW_VERSION)
    path = catalog.path(build)
    cache = firmware_delivery.FirmwareSignatures()
    key = DeviceKey(SECRET_KEY)
    first = await cache.async_signer(hass, "device-0", key, build, path)
    for number in range(1, firmware_delivery.MAX_CACHED_SIGNERS + 1):
        await cache.async_signer(hass, f"device-{number}", key, build, path)
    again = await cache.async_signer(hass, "device-0", key, build, path)
    assert again is not first


def _progress(hass: HomeAssistant) -> int | None:
    return loaded_runtime(hass).firmware.progress(KEY_ID)


async def test_cancel_a_pending_update(
    hass: HomeAssistant, assigned: TestClient, freezer: FrozenDateTimeFactory
) -> None:
    """A pending install can be withdrawn, after which another version can be chosen."""
    await _fetch(assigned)
    await hass.services.async_call(
        DOMAIN, "cancel_firmware_update", {"key_id": KEY_ID}, blocking=True
    )
    await hass.async_block_till_done()
    state = _update_state(hass)
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] is None
    assert (await _check(assigned)).status == HTTPStatus.NO_CONTENT
    assert (await _download(assigned)).status == HTTPStatus.NOT_FOUND
    # The rollback watch of the withdrawn download is gone too.
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID) is None

    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "cancel_firmware_update", {"key_id": KEY_ID}, blocking=True
        )
    assert err.value.translation_key == "no_pending_update"
    await _upload(hass, "1.0.5")
    await _install(hass, "1.0.5")
    assert (await _check(assigned)).headers["Location"].endswith("?version=1.0.5")


async def test_a_range_from_the_middle_is_no_progress(
    hass: HomeAssistant, assigned: TestClient
) -> None:
    """Only bytes continuing what the device has count: a tail range proves nothing."""
    await _fetch(assigned, byte_range="bytes=-1")
    await _fetch(assigned, byte_range="bytes=1000-")
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_UPDATE_PERCENTAGE] is None

    await _fetch(assigned, byte_range="bytes=0-999")
    await _fetch(assigned, byte_range="bytes=500-")
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_UPDATE_PERCENTAGE] == 100


async def test_changing_the_firmware_type_withdraws_the_build(
    hass: HomeAssistant, assigned: TestClient, init_integration: MockConfigEntry
) -> None:
    """A build of the old type is never served as one of the new type."""
    await _upload(hass, NEW_VERSION, b"another board's image", firmware_type="other")
    subentry = next(iter(init_integration.subentries.values()))
    hass.config_entries.async_update_subentry(
        init_integration,
        subentry,
        data={**subentry.data, "firmware_type": "other"},
    )
    await hass.async_block_till_done()
    assert (await _check(assigned)).status == HTTPStatus.NO_CONTENT
    assert (await _download(assigned)).status == HTTPStatus.NOT_FOUND
    assert _update_state(hass).attributes[ATTR_TITLE] == "other: no build assigned"

    # Without a firmware type nothing can be assigned, and the dialog names nothing.
    hass.config_entries.async_update_subentry(
        init_integration, subentry, data={**subentry.data, "firmware_type": ""}
    )
    await hass.async_block_till_done()
    assert _update_state(hass).attributes[ATTR_TITLE] is None


async def test_late_success_clears_the_failed_update(
    hass: HomeAssistant,
    assigned: TestClient,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A device that was slow to report still ends up without a stale repair."""
    await _fetch(assigned)
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_TIMEOUT + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    await _report(assigned, OLD_VERSION)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None

    await _report(assigned, NEW_VERSION)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_automatic_updates_never_downgrade(
    hass: HomeAssistant, client: TestClient
) -> None:
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: AUTOMATIC_UPDATES}, blocking=True
    )
    await _report(client, "2.0.0")
    await _upload(hass, "1.5.0")
    assert (await _check(client, "2.0.0")).status == HTTPStatus.NO_CONTENT
    await _upload(hass, "2.1.0")
    resp = await _check(client, "2.0.0")
    assert resp.headers["Location"].endswith("?version=2.1.0")
