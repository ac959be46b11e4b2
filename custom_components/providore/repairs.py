"""Repair flows for what the user must act on."""

from __future__ import annotations

from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant

from .device_auth import DATA_GUARDS


class UnblockAddressRepairFlow(RepairsFlow):
    """Let a throttled address call again once the user has looked into it."""

    def __init__(self, address: str) -> None:
        """Remember the address the issue is about."""
        self._address = address

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Start with the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Clear the address's failures when the user confirms."""
        if user_input is not None:
            self.hass.data[DATA_GUARDS].throttle.clear(self._address)
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm", description_placeholders={"address": self._address}
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    """Return the flow that fixes a Providore repair issue."""
    if data is None or "address" not in data:
        raise ValueError(f"Unknown repair issue {issue_id}")
    return UnblockAddressRepairFlow(str(data["address"]))
