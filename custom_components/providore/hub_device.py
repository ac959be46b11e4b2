"""The hub's own device: hub-level entities (rollouts) and events belong to it."""

from __future__ import annotations

from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from .const import DOMAIN

# A ':' never occurs in a key id, so no device can have the hub's identifier.
HUB_IDENTIFIER: Final = "hub:providore"
HUB_NAME: Final = "Providore"


def hub_device_info() -> DeviceInfo:
    """Return the hub device's registry information."""
    return DeviceInfo(
        identifiers={(DOMAIN, HUB_IDENTIFIER)},
        name=HUB_NAME,
        manufacturer=HUB_NAME,
        entry_type=DeviceEntryType.SERVICE,
    )


@callback
def async_register_hub_device(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Create the hub device (or keep the one there is)."""
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **hub_device_info()
    )


@callback
def async_hub_device_id(hass: HomeAssistant) -> str | None:
    """Return the hub device's registry id, if it exists."""
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, HUB_IDENTIFIER)})
    return device.id if device else None


def is_hub(device: dr.DeviceEntry) -> bool:
    """Return whether a registry device is the hub."""
    return (DOMAIN, HUB_IDENTIFIER) in device.identifiers
