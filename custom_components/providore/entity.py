"""The base of every Providore entity: one device, written only when what it shows changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import (
    AddConfigEntryEntitiesCallback,
    async_get_current_platform,
)

from .const import DOMAIN
from .device_data import DeviceState
from .models import DeviceChange, DeviceKind, DeviceProfile
from .runtime import ProvidoreConfigEntry, ProvidoreRuntime


class ProvidoreEntity(Entity):
    """An entity of one Providore device, pushed by the device's change feed."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    # The kinds of change to the device that alter what this entity shows.
    shows: DeviceChange = DeviceChange.NONE

    def __init__(
        self,
        runtime: ProvidoreRuntime,
        device: DeviceProfile,
        description: EntityDescription,
        device_info: DeviceInfo,
    ) -> None:
        """Attach the entity to its device."""
        self.entity_description = description
        self.runtime = runtime
        self.key_id = device.key_id
        self._attr_unique_id = entity_unique_id(device.key_id, description.key)
        self._attr_device_info = device_info

    @property
    def device_state(self) -> DeviceState:
        """Return what the device last reported."""
        return self.runtime.state(self.key_id)

    async def async_added_to_hass(self) -> None:
        """Follow the changes this entity shows."""
        await super().async_added_to_hass()
        if self.shows:
            self.async_on_remove(
                self.runtime.async_subscribe(
                    self.key_id, self.shows, self._device_changed
                )
            )

    @callback
    def _device_changed(self, changes: DeviceChange) -> None:
        """Write the new state: something this entity shows changed."""
        self.async_write_ha_state()


def entity_unique_id(key_id: str, key: str) -> str:
    """Return the unique id of a device's entity of one description."""
    return f"{key_id}_{key}"


type EntityFactory[DescriptionT: EntityDescription] = Callable[
    [ProvidoreRuntime, DeviceProfile, DescriptionT, DeviceInfo], Entity
]


def device_info(runtime: ProvidoreRuntime, device: DeviceProfile) -> DeviceInfo:
    """Return the device registry entry a device's entities belong to."""
    if device.esphome is not None:
        return runtime.esphome.device_info(device)
    return DeviceInfo(
        identifiers={(DOMAIN, device.key_id)},
        name=device.name,
        model=device.firmware_type,
        serial_number=device.key_id,
        sw_version=runtime.state(device.key_id).firmware_version,
    )


@callback
def async_add_device_entities[DescriptionT: EntityDescription](
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entity_class: EntityFactory[DescriptionT],
    descriptions: Iterable[DescriptionT],
    kinds: frozenset[DeviceKind] = frozenset({DeviceKind.PROVIDORE}),
) -> None:
    """Add one entity per description to every device of `kinds`, now and as they are added.

    An entity whose registry entry is disabled is not created: Home Assistant would
    only drop it again (at 1,000 devices over a third of the set-up), and enabling it
    reloads the entry, which then creates it.
    """
    runtime = entry.runtime_data
    descriptions = tuple(descriptions)
    registry = er.async_get(runtime.hass)
    platform_domain = async_get_current_platform().domain

    def disabled(key_id: str, description: EntityDescription) -> bool:
        unique_id = entity_unique_id(key_id, description.key)
        entity_id = registry.async_get_entity_id(platform_domain, DOMAIN, unique_id)
        return (
            entity_id is not None
            and (registered := registry.async_get(entity_id)) is not None
            and registered.disabled
        )

    @callback
    def add(device: DeviceProfile) -> None:
        if device.kind not in kinds:
            return
        info = device_info(runtime, device)
        if entities := [
            entity_class(runtime, device, description, info)
            for description in descriptions
            if not disabled(device.key_id, description)
        ]:
            async_add_entities(entities, config_subentry_id=device.subentry_id)

    for device in runtime.devices.values():
        add(device)
    entry.async_on_unload(runtime.async_on_device_added(add))
