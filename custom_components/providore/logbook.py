"""Describe a device's events in the Logbook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN
from .device_events import EVENT_DEVICE, describe
from .hub_device import HUB_NAME
from .rollout_events import EVENT_ROLLOUT, describe as describe_rollout


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[
        [str, str, Callable[[Event[dict[str, Any]]], dict[str, str]]], None
    ],
) -> None:
    """Describe Providore's device and rollout events."""
    registry = dr.async_get(hass)

    @callback
    def async_describe_device_event(event: Event[dict[str, Any]]) -> dict[str, str]:
        data = event.data
        device = registry.async_get(data.get("device_id") or "")
        name = (device and (device.name_by_user or device.name)) or data["key_id"]
        details = {key: str(value) for key, value in data.items()}
        return {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: describe(data["type"], details),
        }

    @callback
    def async_describe_rollout_event(event: Event[dict[str, Any]]) -> dict[str, str]:
        data = event.data
        device = registry.async_get(data.get("device_id") or "")
        details = {key: str(value) for key, value in data.items()}
        return {
            LOGBOOK_ENTRY_NAME: (device and device.name_by_user) or HUB_NAME,
            LOGBOOK_ENTRY_MESSAGE: describe_rollout(data["type"], details),
        }

    async_describe_event(DOMAIN, EVENT_DEVICE, async_describe_device_event)
    async_describe_event(DOMAIN, EVENT_ROLLOUT, async_describe_rollout_event)
