"""Unknown devices announce themselves; the admin adopts or ignores them.

The hello endpoint over real HTTP on loopback, its attacks (malformed, oversized,
floods from many key ids), the "New device found" repair, the Add device flow's
adopt steps, and the hub's zeroconf discovery flow.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from http import HTTPStatus
import ipaddress
import json
from typing import Any
from unittest.mock import MagicMock, patch

from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs.issue_handler import (
    async_process_repairs_platforms,
)
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF, ConfigSubentry
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from zeroconf import ServiceStateChange

from custom_components.providore.certificate_authority import CertificateUsage
from custom_components.providore.const import (
    CONF_CERTIFICATE_USAGE,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_SECRET_KEY,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.device_browser import DeviceBrowser
from custom_components.providore.device_flow import KEPT_SECRET
from custom_components.providore.device_hello import (
    DEVICE_SERVICE_TYPE,
    DeviceHello,
    HelloMalformed,
    hello_from_txt,
    parse_hello,
)
from custom_components.providore.pending_devices import (
    MAX_PENDING,
    NEW_DEVICES_PER_HOUR,
    AnnouncementSource,
    PendingDevices,
)
from custom_components.providore.runtime import device_subentry

from .conftest import KEY_ID, loaded_runtime
from .device import BASE

NEW_KEY_ID = "garden-2"
NEW_SECRET = "TheKeyTheDeviceHolds0123456789ab"
HELLO = {
    "key_id": NEW_KEY_ID,
    "firmware_type": "esp32s2-sensor",
    "mac": "AA-BB-CC-00-11-22",
}
ISSUE_ID = f"new_device_{NEW_KEY_ID}"
IGNORED_STORE = f"{DOMAIN}.ignored_devices"


async def _hello(client: TestClient, body: Any = None, **kwargs: Any) -> Any:
    data = json.dumps(HELLO if body is None else body).encode()
    return await client.post(f"{BASE}/hello", data=kwargs.pop("raw", data), **kwargs)


# --- the hello endpoint -------------------------------------------------------------


async def test_hello_makes_a_pending_device_and_a_repair(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
) -> None:
    client = await hass_client_no_auth()
    resp = await _hello(client)
    assert resp.status == HTTPStatus.ACCEPTED
    assert await resp.json() == {"message": "announcement received"}

    pending = loaded_runtime(hass).pending_devices.devices()
    assert [(d.key_id, d.firmware_type, d.mac, d.address) for d in pending] == [
        (NEW_KEY_ID, "esp32s2-sensor", "aa:bb:cc:00:11:22", "127.0.0.1")
    ]
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.is_fixable
    assert not issue.is_persistent
    assert issue.translation_key == "new_device"
    assert issue.translation_placeholders == {
        "key_id": NEW_KEY_ID,
        "firmware_type": "esp32s2-sensor",
        "mac": "aa:bb:cc:00:11:22",
        "address": "127.0.0.1",
        "source": "hello",
    }

    # A known device's key id, or a repeat, gets the same answer and adds nothing.
    resp = await _hello(client, {"key_id": KEY_ID})
    assert resp.status == HTTPStatus.ACCEPTED
    assert await resp.json() == {"message": "announcement received"}
    resp = await _hello(client, {"key_id": NEW_KEY_ID})
    assert resp.status == HTTPStatus.ACCEPTED
    pending = loaded_runtime(hass).pending_devices.devices()
    assert [(d.key_id, d.firmware_type, d.mac) for d in pending] == [
        (NEW_KEY_ID, None, None)
    ]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "malformed hello: not JSON"),
        (b"\xff\xfe", 400, "malformed hello: not JSON"),
        (b"[]", 400, "malformed hello: not a JSON object"),
        (b"{}", 400, "malformed hello: key_id must be 1 to 32 of A-Z a-z 0-9 _ -"),
        (
            b'{"key_id": "a b"}',
            400,
            "malformed hello: key_id must be 1 to 32 of A-Z a-z 0-9 _ -",
        ),
        (
            b'{"key_id": 5}',
            400,
            "malformed hello: key_id must be 1 to 32 of A-Z a-z 0-9 _ -",
        ),
        (
            b'{"key_id": "x", "secret": "y"}',
            400,
            "malformed hello: unknown field 'secret'",
        ),
        (
            b'{"key_id": "x", "firmware_type": "<b>"}',
            400,
            "malformed hello: firmware_type must be 1 to 64 of A-Z a-z 0-9 . _ + -",
        ),
        (
            b'{"key_id": "x", "mac": "aa:bb:cc:dd:ee"}',
            400,
            "malformed hello: mac must be six hex pairs separated by : or -",
        ),
        (
            b'{"key_id": "x", "mac": "aa:bb-cc:dd:ee:ff"}',
            400,
            "malformed hello: mac must be six hex pairs separated by : or -",
        ),
        (b"{" + b" " * 600 + b"}", 413, "a hello has at most 512 bytes"),
    ],
)
async def test_malformed_hellos_are_refused_and_counted(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    body: bytes,
    status: int,
    message: str,
) -> None:
    client = await hass_client_no_auth()
    resp = await _hello(client, raw=body)
    assert resp.status == status
    assert await resp.json() == {"message": message}
    assert loaded_runtime(hass).pending_devices.devices() == []
    guards = hass.data["providore_guards"]
    assert guards.throttle.tracked_addresses == 1


async def test_a_lying_content_length_is_refused_before_reading(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()

    async def endless() -> Any:
        for _ in range(1000):
            yield b"{" * 1024

    resp = await _hello(client, raw=endless())
    assert resp.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


async def test_hellos_are_rate_limited_and_failures_throttled(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    for number in range(6):
        resp = await _hello(client, {"key_id": f"device-{number}"})
        assert resp.status == HTTPStatus.ACCEPTED
    resp = await _hello(client, {"key_id": "device-6"})
    assert resp.status == HTTPStatus.TOO_MANY_REQUESTS
    assert await resp.json() == {"message": "too many announcements"}
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert len(loaded_runtime(hass).pending_devices.devices()) == 6

    # Bad requests of any kind from the address lock it out of hellos too.
    guards = hass.data["providore_guards"]
    now = dt_util.utcnow()
    for _ in range(10):
        guards.record_failure("127.0.0.1", None, now)
    resp = await _hello(client)
    assert resp.status == HTTPStatus.TOO_MANY_REQUESTS
    assert await resp.json() == {"message": "too many failed requests"}


async def test_hello_without_a_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    client = await hass_client_no_auth()
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    resp = await _hello(client)
    assert resp.status == HTTPStatus.NOT_FOUND


# --- the list: capped, rate-limited, expiring ----------------------------------------


async def test_a_flood_of_key_ids_is_capped(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Thousands of key ids from thousands of addresses, over days: bounded."""
    pending = loaded_runtime(hass).pending_devices
    accepted = 0
    for hour in range(12):
        for number in range(1000):
            address = f"10.{hour}.{number // 250}.{number % 250}"
            now = dt_util.utcnow()
            if pending.retry_after(address, now) is None:
                accepted += 1
                hello = DeviceHello(f"flood-{hour}-{number}", None, None)
                pending.announce(hello, address, AnnouncementSource.HELLO, now)
        freezer.tick(timedelta(hours=1))
        # New devices come in at most NEW_DEVICES_PER_HOUR an hour.
        assert len(pending.devices()) == min(
            MAX_PENDING, NEW_DEVICES_PER_HOUR * (hour + 1)
        )
    # Sixty announcements a minute are read at all, whoever sends them.
    assert accepted == 12 * 60
    assert len(pending.devices()) == MAX_PENDING
    issues = [i for (d, i) in issue_registry.issues if d == DOMAIN]
    assert len(issues) == MAX_PENDING
    assert pending._per_address.tracked_keys <= 4096

    # A day after their last announcement, they are gone, issues and all.
    freezer.tick(timedelta(hours=25))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert pending.devices() == []
    assert not [i for (d, i) in issue_registry.issues if d == DOMAIN]


async def test_a_device_that_keeps_announcing_stays(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    pending = loaded_runtime(hass).pending_devices
    hello = DeviceHello(NEW_KEY_ID, "esp32", None)
    for _ in range(3):
        pending.announce(hello, "192.0.2.5", AnnouncementSource.HELLO, dt_util.utcnow())
        freezer.tick(timedelta(hours=20))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert [device.key_id for device in pending.devices()] == [NEW_KEY_ID]
    freezer.tick(timedelta(hours=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert pending.devices() == []


async def test_pending_devices_go_with_the_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Kept in memory only: unloading (and so a restart) forgets them and their issues."""
    pending = loaded_runtime(hass).pending_devices
    pending.announce(
        DeviceHello(NEW_KEY_ID, None, None),
        None,
        AnnouncementSource.HELLO,
        dt_util.utcnow(),
    )
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    assert loaded_runtime(hass).pending_devices.devices() == []
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


# --- the repair: adopt or ignore ---------------------------------------------------


async def _start_fix(hass: HomeAssistant, client: TestClient) -> dict[str, Any]:
    await async_process_repairs_platforms(hass)
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": ISSUE_ID}
    )
    assert resp.status == HTTPStatus.OK
    flow: dict[str, Any] = await resp.json()
    assert flow["type"] == "menu"
    assert flow["menu_options"] == ["adopt", "ignore"]
    return flow


async def _step(
    client: TestClient, flow_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    resp = await client.post(f"/api/repairs/issues/fix/{flow_id}", json=data)
    assert resp.status == HTTPStatus.OK, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def _announce(hass: HomeAssistant) -> None:
    loaded_runtime(hass).pending_devices.announce(
        DeviceHello(NEW_KEY_ID, "esp32s2-sensor", "aa:bb:cc:00:11:22"),
        "192.0.2.7",
        AnnouncementSource.HELLO,
        dt_util.utcnow(),
    )


async def test_repair_adopts_with_the_key_the_device_holds(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
    hass_storage: dict[str, Any],
) -> None:
    _announce(hass)
    client = await hass_client()
    flow = await _start_fix(hass, client)
    form = await _step(client, flow["flow_id"], {"next_step_id": "adopt"})
    assert form["step_id"] == "adopt"
    suggested = {
        field["name"]: field.get("description", {}).get("suggested_value")
        for field in form["data_schema"]
    }
    assert suggested[CONF_NAME] == f"esp32s2-sensor {NEW_KEY_ID}"
    assert suggested[CONF_FIRMWARE_TYPE] == "esp32s2-sensor"

    # A bad key is refused, and the key typed never comes back to the browser.
    form = await _step(
        client,
        flow["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_SECRET_KEY: "short",
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert form["errors"] == {CONF_SECRET_KEY: "invalid_secret_key"}
    assert "short" not in json.dumps(form)

    done = await _step(
        client,
        flow["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_FIRMWARE_TYPE: "esp32s2-sensor",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_CERTIFICATE_USAGE: CertificateUsage.BOTH.value,
        },
    )
    assert done["type"] == "create_entry"
    await hass.async_block_till_done()
    runtime = loaded_runtime(hass)
    assert runtime.devices[NEW_KEY_ID].name == "Greenhouse"
    assert runtime.devices[NEW_KEY_ID].certificate_usage is CertificateUsage.BOTH
    assert runtime.secret(NEW_KEY_ID) == NEW_SECRET
    assert hass_storage[f"{DOMAIN}.secrets"]["data"][NEW_KEY_ID] == NEW_SECRET
    assert runtime.pending_devices.devices() == []
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_repair_keeps_a_valid_secret_across_an_error(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """An empty name is refused; the secret typed beside it is kept, never echoed."""
    _announce(hass)
    client = await hass_client()
    flow = await _start_fix(hass, client)
    await _step(client, flow["flow_id"], {"next_step_id": "adopt"})
    form = await _step(
        client,
        flow["flow_id"],
        {
            CONF_NAME: " ",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert form["errors"] == {CONF_NAME: "invalid_name"}
    assert NEW_SECRET not in json.dumps(form)
    suggested = {
        field["name"]: field.get("description", {}).get("suggested_value")
        for field in form["data_schema"]
    }
    assert suggested[CONF_SECRET_KEY] == KEPT_SECRET
    done = await _step(
        client,
        flow["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_SECRET_KEY: KEPT_SECRET,
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert done["type"] == "create_entry"
    await hass.async_block_till_done()
    assert loaded_runtime(hass).secret(NEW_KEY_ID) == NEW_SECRET


async def test_repair_adopts_with_a_new_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    _announce(hass)
    client = await hass_client()
    flow = await _start_fix(hass, client)
    await _step(client, flow["flow_id"], {"next_step_id": "adopt"})
    form = await _step(
        client,
        flow["flow_id"],
        {CONF_NAME: "  ", CONF_CERTIFICATE_USAGE: "client"},
    )
    assert form["errors"] == {CONF_NAME: "invalid_name"}
    done = await _step(
        client,
        flow["flow_id"],
        {CONF_NAME: "Greenhouse", CONF_CERTIFICATE_USAGE: "client"},
    )
    assert done["type"] == "create_entry"
    await hass.async_block_till_done()
    runtime = loaded_runtime(hass)
    secret = runtime.secret(NEW_KEY_ID)
    assert secret is not None
    assert len(secret) == 32
    assert runtime.devices[NEW_KEY_ID].firmware_type is None


async def test_repair_ignores_for_good(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
    hass_storage: dict[str, Any],
) -> None:
    _announce(hass)
    client = await hass_client()
    flow = await _start_fix(hass, client)
    pending = loaded_runtime(hass).pending_devices
    [listed] = pending.diagnostics()["pending"]  # type: ignore[misc]
    assert listed["key_id"] == NEW_KEY_ID
    assert listed["source"] == "hello"
    done = await _step(client, flow["flow_id"], {"next_step_id": "ignore"})
    assert done["type"] == "create_entry"
    assert hass_storage[IGNORED_STORE]["data"] == {"key_ids": [NEW_KEY_ID]}
    assert pending.diagnostics() == {"pending": [], "ignored": [NEW_KEY_ID]}
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None

    # Across a restart of the hub, its announcements are passed over.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    _announce(hass)
    pending = loaded_runtime(hass).pending_devices
    assert pending.devices() == []
    assert pending.is_ignored(NEW_KEY_ID)

    # Added by hand after all: it is no longer ignored.
    hass.config_entries.async_add_subentry(
        init_integration,
        _subentry(NEW_KEY_ID),
    )
    await hass.async_block_till_done()
    assert not pending.is_ignored(NEW_KEY_ID)
    await hass.async_block_till_done()
    assert hass_storage[IGNORED_STORE]["data"] == {"key_ids": []}


def _subentry(key_id: str) -> ConfigSubentry:
    return device_subentry(key_id, "By hand", "", CertificateUsage.CLIENT)


async def test_repair_of_a_device_that_is_gone(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    _announce(hass)
    client = await hass_client()
    flow = await _start_fix(hass, client)
    await loaded_runtime(hass).pending_devices.async_ignore(NEW_KEY_ID)
    result = await _step(client, flow["flow_id"], {"next_step_id": "adopt"})
    assert result == result | {"type": "abort", "reason": "device_gone"}


async def test_repair_without_a_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    _announce(hass)
    client = await hass_client()
    flows = [await _start_fix(hass, client) for _step_id in ("adopt", "ignore")]
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    for flow, step in zip(flows, ("adopt", "ignore"), strict=True):
        result = await _step(client, flow["flow_id"], {"next_step_id": step})
        assert result["reason"] == "not_loaded"


# --- the Add device flow ----------------------------------------------------------------


async def _add_device(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TYPE_DEVICE), context={"source": SOURCE_USER}
    )


async def test_add_device_offers_the_found_devices(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    _announce(hass)
    result = await _add_device(hass, init_integration)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["adopt", "new_key", "existing_key"]

    flows = hass.config_entries.subentries
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    assert result["step_id"] == "adopt"
    result = await flows.async_configure(result["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    assert result["step_id"] == "adopt_device"
    assert result["description_placeholders"] == {CONF_KEY_ID: NEW_KEY_ID}
    result = await flows.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_SECRET_KEY: "x",
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert result["errors"] == {CONF_SECRET_KEY: "invalid_secret_key"}
    result = await flows.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_FIRMWARE_TYPE: "esp32s2-sensor",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    runtime = loaded_runtime(hass)
    assert runtime.secret(NEW_KEY_ID) == NEW_SECRET
    assert runtime.devices[NEW_KEY_ID].firmware_type == "esp32s2-sensor"
    assert runtime.pending_devices.devices() == []
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_adopt_keeps_the_secret_across_an_error(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """An empty name is refused; the valid secret typed beside it is kept, never echoed."""
    _announce(hass)
    flows = hass.config_entries.subentries
    result = await _add_device(hass, init_integration)
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    result = await flows.async_configure(result["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    result = await flows.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "  ",
            CONF_FIRMWARE_TYPE: "esp32s2-sensor",
            CONF_SECRET_KEY: NEW_SECRET,
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert result["errors"] == {CONF_NAME: "invalid_name"}
    shown = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert shown[CONF_SECRET_KEY] == KEPT_SECRET
    assert shown[CONF_FIRMWARE_TYPE] == "esp32s2-sensor"
    assert NEW_SECRET not in repr(result)
    result = await flows.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Greenhouse",
            CONF_SECRET_KEY: KEPT_SECRET,
            CONF_CERTIFICATE_USAGE: "client",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["description"] == "existing_key"
    await hass.async_block_till_done()
    assert loaded_runtime(hass).secret(NEW_KEY_ID) == NEW_SECRET


async def test_adopt_with_a_new_key(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """No secret typed: Providore generates one, and the message says to flash it."""
    _announce(hass)
    flows = hass.config_entries.subentries
    result = await _add_device(hass, init_integration)
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    result = await flows.async_configure(result["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    result = await flows.async_configure(
        result["flow_id"], {CONF_NAME: "Greenhouse", CONF_CERTIFICATE_USAGE: "client"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["description"] == "default"
    await hass.async_block_till_done()
    secret = loaded_runtime(hass).secret(NEW_KEY_ID)
    assert secret is not None
    assert secret != NEW_SECRET


async def test_adopt_steps_abort_when_nothing_waits(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    _announce(hass)
    flows = hass.config_entries.subentries
    result = await _add_device(hass, init_integration)
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    # Meanwhile the device was added another way.
    hass.config_entries.async_add_subentry(init_integration, _subentry(NEW_KEY_ID))
    await hass.async_block_till_done()
    aborted = await flows.async_configure(result["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    assert aborted["reason"] == "already_adopted"


async def test_adopt_device_form_after_the_device_went(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Chosen from the list, then ignored elsewhere: the form offers no suggestion."""
    _announce(hass)
    flows = hass.config_entries.subentries
    result = await _add_device(hass, init_integration)
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    await loaded_runtime(hass).pending_devices.async_ignore(NEW_KEY_ID)
    result = await flows.async_configure(result["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    assert result["step_id"] == "adopt_device"
    assert not any(
        "suggested_value" in (key.description or {})
        for key in result["data_schema"].schema
    )
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    result = await flows.async_configure(
        result["flow_id"], {CONF_NAME: "Late", CONF_CERTIFICATE_USAGE: "client"}
    )
    assert result["reason"] == "not_loaded"


async def test_the_ignore_list_goes_with_the_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    await loaded_runtime(hass).pending_devices.async_ignore(NEW_KEY_ID)
    assert IGNORED_STORE in hass_storage
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert IGNORED_STORE not in hass_storage


async def test_adopt_step_without_pending_devices(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    _announce(hass)
    flows = hass.config_entries.subentries
    result = await _add_device(hass, init_integration)
    await loaded_runtime(hass).pending_devices.async_ignore(NEW_KEY_ID)
    result = await flows.async_configure(result["flow_id"], {"next_step_id": "adopt"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_pending_device"


async def test_adopt_steps_without_a_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    _announce(hass)
    flows = hass.config_entries.subentries
    first = await _add_device(hass, init_integration)
    second = await flows.async_configure(
        (await _add_device(hass, init_integration))["flow_id"],
        {"next_step_id": "adopt"},
    )
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    result = await flows.async_configure(first["flow_id"], {"next_step_id": "adopt"})
    assert result["reason"] == "not_loaded"
    result = await flows.async_configure(second["flow_id"], {CONF_KEY_ID: NEW_KEY_ID})
    assert result["reason"] == "not_loaded"


# --- discovery before the hub exists -----------------------------------------------------


def _service(properties: dict[str, str]) -> ZeroconfServiceInfo:
    return ZeroconfServiceInfo(
        ip_address=ipaddress.ip_address("192.0.2.7"),
        ip_addresses=[ipaddress.ip_address("192.0.2.7")],
        hostname="garden-2.local.",
        name=f"garden-2.{DEVICE_SERVICE_TYPE}",
        port=80,
        type=DEVICE_SERVICE_TYPE,
        properties=properties,
    )


async def test_a_device_service_offers_to_set_up_providore(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_service({"key_id": NEW_KEY_ID, "firmware_type": "esp32"}),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {CONF_KEY_ID: NEW_KEY_ID}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"]["online_interval"] == 600
    await hass.async_block_till_done()

    # With the hub set up, Home Assistant aborts the flow before it runs.
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_service({"key_id": NEW_KEY_ID}),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "single_instance_allowed"


async def test_a_service_that_is_not_a_device_is_passed_over(
    hass: HomeAssistant,
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_service({"key_id": "not valid!"}),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_a_device"


# --- the pure parts ---------------------------------------------------------------------


def test_hello_from_txt() -> None:
    assert hello_from_txt(
        {
            b"key_id": b"d1",
            b"MAC": b"AA:BB:CC:DD:EE:FF",
            b"other": b"\xff",
            b"\xff": b"x",
        }
    ) == DeviceHello("d1", None, "aa:bb:cc:dd:ee:ff")
    assert hello_from_txt({"key_id": "d1", "firmware_type": "t"}) == DeviceHello(
        "d1", "t", None
    )
    with pytest.raises(HelloMalformed, match="mac has no value"):
        hello_from_txt({b"key_id": b"d1", b"mac": None})
    with pytest.raises(HelloMalformed, match="key_id is not ASCII"):
        hello_from_txt({b"key_id": "é".encode()})
    with pytest.raises(HelloMalformed, match="key_id is not ASCII"):
        hello_from_txt({"key_id": "é"})
    with pytest.raises(HelloMalformed, match="longer than 512 bytes"):
        parse_hello(b" " * 513)


# --- the device browser -------------------------------------------------------------


async def test_device_browser_hands_services_to_the_pending_devices(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    pending = loaded_runtime(hass).pending_devices
    browser = DeviceBrowser(hass, pending)
    resolved: dict[str, Any] = {
        "garden-2": (
            {b"key_id": NEW_KEY_ID.encode(), b"mac": b"aa:bb:cc:dd:ee:ff"},
            ["192.0.2.7"],
        ),
        "broken": ({b"key_id": b"not valid!"}, ["192.0.2.8"]),
        "silent": None,
    }

    class Info:
        def __init__(self, service_type: str, name: str) -> None:
            self.answer = resolved[name.split(".")[0]]

        async def async_request(self, *_args: Any) -> bool:
            if self.answer is None:
                return False
            self.properties = self.answer[0]
            return True

        def parsed_addresses(self, version: Any = None) -> list[str]:
            return list(self.answer[1])

    zc = MagicMock()
    with patch("custom_components.providore.device_browser.AsyncServiceInfo", Info):
        for name in ("garden-2", "broken", "silent"):
            browser._service_changed(
                zc,
                DEVICE_SERVICE_TYPE,
                f"{name}.{DEVICE_SERVICE_TYPE}",
                ServiceStateChange.Added,
            )
        browser._service_changed(
            zc,
            DEVICE_SERVICE_TYPE,
            f"gone.{DEVICE_SERVICE_TYPE}",
            ServiceStateChange.Removed,
        )
        await hass.async_block_till_done()
    devices = pending.devices()
    assert [(d.key_id, d.address, d.source) for d in devices] == [
        (NEW_KEY_ID, "192.0.2.7", AnnouncementSource.ZEROCONF)
    ]

    # Services count toward the same announcement limits as hellos.
    now = dt_util.utcnow()
    for number in range(60):
        pending.retry_after(f"10.0.0.{number}", now)
    resolved["late"] = ({b"key_id": b"late"}, ["192.0.2.9"])
    with patch("custom_components.providore.device_browser.AsyncServiceInfo", Info):
        browser._service_changed(
            zc,
            DEVICE_SERVICE_TYPE,
            f"late.{DEVICE_SERVICE_TYPE}",
            ServiceStateChange.Added,
        )
        await hass.async_block_till_done()
    assert [d.key_id for d in pending.devices()] == [NEW_KEY_ID]
    await browser.async_stop()


async def test_device_browser_resolves_a_few_at_a_time(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    pending = PendingDevices(hass, lambda _key_id: False)
    browser = DeviceBrowser(hass, pending)

    class Slow:
        def __init__(self, service_type: str, name: str) -> None:
            pass

        async def async_request(self, *_args: Any) -> bool:
            await asyncio.sleep(3600)
            return False

    with patch("custom_components.providore.device_browser.AsyncServiceInfo", Slow):
        for number in range(50):
            browser._service_changed(
                MagicMock(),
                DEVICE_SERVICE_TYPE,
                f"d{number}.{DEVICE_SERVICE_TYPE}",
                ServiceStateChange.Added,
            )
        assert len(browser._resolving) == 8
        await browser.async_stop()
    assert pending.devices() == []
