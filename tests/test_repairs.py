"""Repair issues the user must act on, and the flows that fix them."""

from __future__ import annotations

from http import HTTPStatus

from homeassistant.components.repairs.issue_handler import (
    async_process_repairs_platforms,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN
from custom_components.providore.protocol import is_valid_secret_key
from custom_components.providore.repairs import async_create_fix_flow

from .conftest import KEY_ID, loaded_runtime

ISSUE_ID = f"missing_secret_{KEY_ID}"


async def test_no_issue_while_every_device_has_a_key(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_missing_secret_raises_an_issue_and_the_fix_generates_one(
    hass: HomeAssistant,
    entry_without_secret: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "missing_secret"
    assert issue.translation_placeholders == {"name": "Garden sensor", "key_id": KEY_ID}

    assert await async_setup_component(hass, "repairs", {})
    await async_process_repairs_platforms(hass)
    client = await hass_client()
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": ISSUE_ID}
    )
    assert resp.status == HTTPStatus.OK
    flow = await resp.json()
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {
        "key_id": KEY_ID,
        "name": "Garden sensor",
    }
    runtime = loaded_runtime(hass)
    assert runtime.secret(KEY_ID) is None

    resp = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert resp.status == HTTPStatus.OK
    assert (await resp.json())["type"] == "create_entry"
    secret = runtime.secret(KEY_ID)
    assert secret is not None
    assert is_valid_secret_key(secret)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_removing_the_device_drops_its_issue(
    hass: HomeAssistant,
    entry_without_secret: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    subentry_id = next(iter(entry_without_secret.subentries))
    hass.config_entries.async_remove_subentry(entry_without_secret, subentry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_unknown_issue_has_no_fix(hass: HomeAssistant) -> None:
    with pytest.raises(ValueError, match="unknown_thing"):
        await async_create_fix_flow(hass, "unknown_thing", None)
