"""A store that cannot be read: a clean setup error, a repair, never a silent new CA.

These tests read and write real files in the test's config folder through Home
Assistant's own store code (the test harness replaces it with a dictionary), so
that Home Assistant itself moves a corrupt file aside, as it does for users.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http import HTTPStatus
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.components.repairs.issue_handler import (
    async_process_repairs_platforms,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore import stores
from custom_components.providore.const import CONF_CA_FINGERPRINT, DOMAIN

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime

# The stores' real reader and writer, taken before the harness replaces them.
_REAL_LOAD = Store._async_load
_REAL_WRITE = Store._async_write_data
_REAL_REMOVE = Store.async_remove
CA_ISSUE = "store_unreadable_providore.ca"
SECRETS_ISSUE = "store_unreadable_providore.secrets"


@pytest.fixture
def real_files() -> Iterator[None]:
    """Let every store read, write and remove its real file in the test's config folder."""
    with (
        patch.object(Store, "_async_load", _REAL_LOAD),
        patch.object(Store, "_async_write_data", _REAL_WRITE),
        patch.object(Store, "async_remove", _REAL_REMOVE),
    ):
        yield


def _store_path(hass: HomeAssistant, name: str) -> Path:
    return Path(hass.config.path(".storage", f"{DOMAIN}.{name}"))


async def _set_up_once(
    hass: HomeAssistant, entry: MockConfigEntry
) -> tuple[str, dict[str, str]]:
    """Set the hub up with its device's key on disk; return the CA and store contents."""
    entry.add_to_hass(hass)
    secrets = _store_path(hass, "secrets")
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text(
        json.dumps(
            {
                "version": 1,
                "minor_version": 1,
                "key": f"{DOMAIN}.secrets",
                "data": {KEY_ID: SECRET_KEY},
            }
        )
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    fingerprint = loaded_runtime(hass).certificate_authority.fingerprint
    assert entry.data[CONF_CA_FINGERPRINT] == fingerprint
    saved = {name: _store_path(hass, name).read_text() for name in ("ca", "secrets")}
    assert await hass.config_entries.async_unload(entry.entry_id)
    return fingerprint, saved


async def _fix(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, issue_id: str, step: str
) -> dict[str, Any]:
    """Open the repair of an issue, choose `step` in its menu, submit it."""
    assert await async_setup_component(hass, "repairs", {})
    await async_process_repairs_platforms(hass)
    client = await hass_client()
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == HTTPStatus.OK
    flow = await resp.json()
    assert flow["type"] == "menu"
    assert flow["menu_options"] == ["restored", "start_afresh"]
    url = f"/api/repairs/issues/fix/{flow['flow_id']}"
    flow = await (await client.post(url, json={"next_step_id": step})).json()
    assert flow["type"] == "form"
    assert flow["step_id"] == step
    return dict(await (await client.post(url, json={})).json())


@pytest.mark.usefixtures("real_files")
async def test_corrupt_ca_store_stops_setup_and_never_makes_a_new_ca(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    entry = mock_config_entry
    fingerprint, saved = await _set_up_once(hass, entry)
    ca_path = _store_path(hass, "ca")
    ca_path.write_text('{"version": 1, "data": {"certificate": "trunc')

    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
    assert "providore.ca" in entry.reason
    # Home Assistant moved the corrupt file aside; no new CA took its place.
    assert not ca_path.exists()
    [corrupt] = ca_path.parent.glob("providore.ca.corrupt.*")
    issue = issue_registry.async_get_issue(DOMAIN, CA_ISSUE)
    assert issue is not None
    assert issue.is_persistent
    assert issue.translation_key == "ca_unreadable"
    assert issue.translation_placeholders == {
        "store": ".storage/providore.ca",
        "corrupt_path": str(corrupt),
        "reason": "not valid JSON",
    }

    # Trying again without restoring it still refuses (the store is not "empty").
    assert not await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert not ca_path.exists()

    # "I restored the file" before it is restored keeps the repair open.
    result = await _fix(hass, hass_client, CA_ISSUE, "restored")
    assert result["type"] == "form"
    assert result["errors"] == {"base": "still_unreadable"}

    ca_path.write_text(saved["ca"])
    result = await _fix(hass, hass_client, CA_ISSUE, "restored")
    assert result["type"] == "create_entry"
    assert entry.state is ConfigEntryState.LOADED
    assert loaded_runtime(hass).certificate_authority.fingerprint == fingerprint
    assert issue_registry.async_get_issue(DOMAIN, CA_ISSUE) is None


@pytest.mark.usefixtures("real_files")
async def test_a_new_ca_only_when_the_user_chooses_it(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    entry = mock_config_entry
    fingerprint, _saved = await _set_up_once(hass, entry)
    # Deleted by hand rather than corrupt: just as lost.
    _store_path(hass, "ca").unlink()

    assert not await hass.config_entries.async_setup(entry.entry_id)
    issue = issue_registry.async_get_issue(DOMAIN, CA_ISSUE)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["reason"] == "missing"

    result = await _fix(hass, hass_client, CA_ISSUE, "start_afresh")
    assert result["type"] == "create_entry"
    assert entry.state is ConfigEntryState.LOADED
    new_fingerprint = loaded_runtime(hass).certificate_authority.fingerprint
    assert new_fingerprint != fingerprint
    assert entry.data[CONF_CA_FINGERPRINT] == new_fingerprint
    assert issue_registry.async_get_issue(DOMAIN, CA_ISSUE) is None


@pytest.mark.usefixtures("real_files")
async def test_corrupt_secrets_store_keeps_every_key_until_restored(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    entry = mock_config_entry
    _fingerprint, saved = await _set_up_once(hass, entry)
    secrets_path = _store_path(hass, "secrets")
    secrets_path.write_bytes(b"\x00\x00\x00")

    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = issue_registry.async_get_issue(DOMAIN, SECRETS_ISSUE)
    assert issue is not None
    assert issue.translation_key == "store_unreadable"
    # No device lost its key silently: no "missing secret" issue, no empty store.
    assert issue_registry.async_get_issue(DOMAIN, f"missing_secret_{KEY_ID}") is None
    assert not secrets_path.exists()

    secrets_path.write_text(saved["secrets"])
    result = await _fix(hass, hass_client, SECRETS_ISSUE, "restored")
    assert result["type"] == "create_entry"
    assert loaded_runtime(hass).secret(KEY_ID) == SECRET_KEY


@pytest.mark.usefixtures("real_files")
async def test_start_afresh_without_an_unreadable_store(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    """A store with valid JSON of the wrong shape stays in place until moved aside."""
    entry = mock_config_entry
    await _set_up_once(hass, entry)
    documents = _store_path(hass, "documents")
    documents.write_text('{"unexpected": true}')

    assert not await hass.config_entries.async_setup(entry.entry_id)
    issue = issue_registry.async_get_issue(
        DOMAIN, "store_unreadable_providore.documents"
    )
    assert issue is not None
    assert documents.exists()

    result = await _fix(
        hass, hass_client, "store_unreadable_providore.documents", "start_afresh"
    )
    assert result["type"] == "create_entry"
    assert entry.state is ConfigEntryState.LOADED
    assert not documents.exists()
    [kept] = documents.parent.glob("providore.documents.corrupt.*")
    assert kept.read_text() == '{"unexpected": true}'


async def test_a_store_that_never_loads_is_retried_later(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """A wait is bounded: a hanging load puts the entry into retry, never blocks."""
    never = asyncio.Event()
    real_load = Store.async_load

    async def hang(store: Store[Any]) -> Any:
        if store.key.startswith(f"{DOMAIN}."):
            await never.wait()
        return await real_load(store)

    assert await async_setup_component(hass, DOMAIN, {})
    mock_config_entry.add_to_hass(hass)
    with (
        patch.object(stores, "LOAD_TIMEOUT", 0.05),
        patch.object(Store, "async_load", hang),
    ):
        assert not await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason is not None


@pytest.mark.usefixtures("real_files")
async def test_an_entry_in_setup_error_can_be_removed(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Nothing waits forever on a failed load: removal finishes and deletes the stores."""
    entry = mock_config_entry
    await _set_up_once(hass, entry)
    _store_path(hass, "ca").write_text("{")
    assert not await hass.config_entries.async_setup(entry.entry_id)

    async with asyncio.timeout(10):
        await hass.config_entries.async_remove(entry.entry_id)
    assert not _store_path(hass, "secrets").exists()
    assert not _store_path(hass, "certificates").exists()


@pytest.mark.usefixtures("real_files")
async def test_a_corrupt_replay_store_never_stops_home_assistant(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    replay = _store_path(hass, "replay")
    replay.parent.mkdir(parents=True, exist_ok=True)
    replay.write_text("not json")
    assert await async_setup_component(hass, DOMAIN, {})
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
