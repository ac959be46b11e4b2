"""The flows that fix Providore's repair issues (the issues themselves are in `issues`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .certificates import ProvidoreCertificates
from .const import CONF_CA_FINGERPRINT, CONF_SECRET_KEY, DOMAIN
from .device_flow import (
    ADOPT_DEVICE_SCHEMA,
    EnteredSecret,
    adoption_suggestions,
    read_adoption,
)
from .issues import CA_STORE_KEY, MISSING_SECRET_PREFIX
from .pending_devices import NEW_DEVICE_PREFIX
from .request_guards import DATA_GUARDS, THROTTLED_ISSUE_ID
from .runtime import async_get_loaded_runtime
from .stores import STORE_UNREADABLE_PREFIX, store_issue_id


class UnblockAddressesRepairFlow(ConfirmRepairFlow):
    """Let the throttled addresses call again once the user has looked into them."""

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Clear the failures of every throttled address when the user confirms."""
        if user_input is not None:
            self.hass.data[DATA_GUARDS].unblock_all()
        return await super().async_step_confirm(user_input)


class NewSecretRepairFlow(ConfirmRepairFlow):
    """Generate a secret key for a device that has none."""

    def __init__(self, key_id: str) -> None:
        """Remember the device the issue is about."""
        self._key_id = key_id

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Store a new secret key when the user confirms."""
        if user_input is not None:
            if (runtime := async_get_loaded_runtime(self.hass)) is None:
                return self.async_abort(reason="not_loaded")
            await runtime.async_rotate_key(self._key_id)
        return await super().async_step_confirm(user_input)


class NewDeviceRepairFlow(RepairsFlow):
    """Adopt a device that announced itself, or ignore it for good.

    A repair flow cannot run a subentry flow (Home Assistant 2025.4 to 2026.2 only
    create subentries from a `user` subentry flow), so adopting adds the device's
    subentry directly, its key saved first (`ProvidoreRuntime.async_adopt_device`).
    """

    def __init__(self, key_id: str) -> None:
        """Remember the device the issue is about; no secret key entered yet."""
        self._key_id = key_id
        self._secret = EnteredSecret()

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Offer to adopt or to ignore the device."""
        return self.async_show_menu(step_id="init", menu_options=["adopt", "ignore"])

    async def async_step_adopt(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Name the device and give it its key: the one it holds, or a new one."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        if (device := runtime.pending_devices.get(self._key_id)) is None:
            return self.async_abort(reason="device_gone")
        errors: dict[str, str] = {}
        suggested = adoption_suggestions(device)
        if user_input is not None:
            adoption, errors = read_adoption(
                user_input | {CONF_SECRET_KEY: self._secret.read(user_input)}
            )
            if adoption is not None:
                await runtime.async_adopt_device(self._key_id, *adoption)
                return self.async_create_entry(data={})
            suggested = self._secret.shown_again(user_input)
        return self.async_show_form(
            step_id="adopt",
            data_schema=self.add_suggested_values_to_schema(
                ADOPT_DEVICE_SCHEMA, suggested
            ),
            errors=errors,
            description_placeholders={"key_id": self._key_id},
        )

    async def async_step_ignore(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Ignore the device's announcements from now on."""
        if (runtime := async_get_loaded_runtime(self.hass)) is None:
            return self.async_abort(reason="not_loaded")
        await runtime.pending_devices.async_ignore(self._key_id)
        return self.async_create_entry(data={})


class UnreadableStoreRepairFlow(RepairsFlow):
    """A store could not be read: try again once it is restored, or start afresh."""

    def __init__(self, entry_id: str, store: str) -> None:
        """Remember the hub entry and the store the issue is about."""
        self._entry_id = entry_id
        self._store = store

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Offer the two ways out."""
        return self.async_show_menu(
            step_id="init", menu_options=["restored", "start_afresh"]
        )

    async def async_step_restored(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Set Providore up again, reading the restored store."""
        errors: dict[str, str] = {}
        if user_input is not None:
            if await self._async_reload():
                return self.async_create_entry(data={})
            errors["base"] = "still_unreadable"
        return self.async_show_form(
            step_id="restored", data_schema=vol.Schema({}), errors=errors
        )

    async def async_step_start_afresh(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Give up the store's content (for the CA: make a new CA) after confirmation."""
        if user_input is None:
            return self.async_show_form(
                step_id="start_afresh", data_schema=vol.Schema({})
            )
        await self.hass.async_add_executor_job(
            _move_aside, Path(self.hass.config.path(".storage", self._store))
        )
        if self._store == CA_STORE_KEY:
            await self._async_forget_ca()
        ir.async_delete_issue(self.hass, DOMAIN, store_issue_id(self._store))
        await self._async_reload()
        return self.async_create_entry(data={})

    async def _async_forget_ca(self) -> None:
        """Forget the lost CA and its certificates, so that setup creates a new CA."""
        if entry := self.hass.config_entries.async_get_entry(self._entry_id):
            self.hass.config_entries.async_update_entry(
                entry,
                data={k: v for k, v in entry.data.items() if k != CONF_CA_FINGERPRINT},
            )
        await ProvidoreCertificates.async_remove_stores(self.hass)

    async def _async_reload(self) -> bool:
        """Reload the hub entry; return whether it is set up now."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return False
        await self.hass.config_entries.async_reload(entry.entry_id)
        return entry.state is ConfigEntryState.LOADED


def _move_aside(path: Path) -> None:
    """Keep an unreadable store's file under another name (as Home Assistant does)."""
    if path.exists():
        path.replace(
            path.with_name(f"{path.name}.corrupt.{dt_util.utcnow().isoformat()}")
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Return the flow that fixes a Providore repair issue."""
    if issue_id == THROTTLED_ISSUE_ID:
        return UnblockAddressesRepairFlow()
    if issue_id.startswith(MISSING_SECRET_PREFIX) and data:
        return NewSecretRepairFlow(str(data["key_id"]))
    if issue_id.startswith(NEW_DEVICE_PREFIX) and data:
        return NewDeviceRepairFlow(str(data["key_id"]))
    if issue_id.startswith(STORE_UNREADABLE_PREFIX) and data:
        return UnreadableStoreRepairFlow(str(data["entry_id"]), str(data["store"]))
    raise ValueError(f"Unknown repair issue {issue_id}")
