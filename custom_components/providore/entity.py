"""The base of every Providore entity: one device, updated when it calls in."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .hub import (
    DeviceProfile,
    ProvidoreConfigEntry,
    ProvidoreHub,
    signal_device_updated,
)
from .storage import DeviceState


class ProvidoreEntity(Entity):
    """An entity of one Providore device, pushed by the device's requests."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, hub: ProvidoreHub, device: DeviceProfile, description: EntityDescription
    ) -> None:
        """Attach the entity to its device."""
        self.entity_description = description
        self.hub = hub
        self.device = device
        self._attr_unique_id = f"{device.key_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, device.key_id)},
            name=device.name,
            model=device.firmware_type,
            serial_number=device.key_id,
            sw_version=self.device_state.firmware_version,
        )

    @property
    def device_state(self) -> DeviceState:
        """Return what the device last reported."""
        return self.hub.state(self.device.key_id)

    async def async_added_to_hass(self) -> None:
        """Follow the device's requests."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_device_updated(self.device.key_id),
                self._handle_device_update,
            )
        )

    @callback
    def _handle_device_update(self) -> None:
        """Write the new state after the device called in."""
        self.async_write_ha_state()


@callback
def async_add_device_entities[DescriptionT: EntityDescription](
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entity_class: Callable[[ProvidoreHub, DeviceProfile, DescriptionT], Entity],
    descriptions: Iterable[DescriptionT],
) -> None:
    """Add one entity per description to every device, each under its subentry."""
    hub = entry.runtime_data
    for device in hub.devices.values():
        async_add_entities(
            (entity_class(hub, device, description) for description in descriptions),
            config_subentry_id=device.subentry_id,
        )
