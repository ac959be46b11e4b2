"""Connectivity: whether a device is calling in."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import ProvidoreEntity, async_add_device_entities
from .models import DeviceChange
from .runtime import ProvidoreConfigEntry

PARALLEL_UPDATES = 0

CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    translation_key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    # The Status sensor shows online and offline too (and a device never seen).
    entity_registry_enabled_default=False,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connectivity sensor of every device."""
    async_add_device_entities(
        entry, async_add_entities, ProvidoreConnectivitySensor, [CONNECTIVITY]
    )


class ProvidoreConnectivitySensor(ProvidoreEntity, BinarySensorEntity):
    """On while the device called within the hub's online interval."""

    shows = DeviceChange.CONNECTIVITY

    @property
    def is_on(self) -> bool:
        """Return whether the device called recently."""
        return self.runtime.is_online(self.key_id)
