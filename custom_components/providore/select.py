"""Per ESPHome device: the build Providore offers it, chosen among its type's builds.

Choosing a version assigns it, as Install does on Providore's own update entity: the
device's manifest offers it, ESPHome's update entity is asked to check, and ESPHome's
Install (or an automation) installs it. An older version is a rollback.
"""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import ProvidoreEntity, async_add_device_entities
from .models import DeviceChange, DeviceKind
from .runtime import ProvidoreConfigEntry

PARALLEL_UPDATES = 1

ASSIGNED_FIRMWARE = SelectEntityDescription(
    key="assigned_firmware",
    translation_key="assigned_firmware",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the assigned firmware of every ESPHome device."""
    async_add_device_entities(
        entry,
        async_add_entities,
        AssignedFirmwareSelect,
        [ASSIGNED_FIRMWARE],
        frozenset({DeviceKind.ESPHOME}),
    )


class AssignedFirmwareSelect(ProvidoreEntity, SelectEntity):
    """The version assigned to the device; unknown while none is."""

    shows = DeviceChange.UPDATE | DeviceChange.PROFILE

    @property
    def options(self) -> list[str]:
        """Return the versions uploaded for the device's firmware type, oldest first."""
        device = self.runtime.devices.get(self.key_id)
        firmware_type = device.firmware_type if device else None
        return [build.version for build in self.runtime.builds(firmware_type or "")]

    @property
    def current_option(self) -> str | None:
        """Return the version the device's manifest offers, if any is assigned."""
        build = self.runtime.firmware.assigned(self.key_id)
        return build.version if build else None

    async def async_select_option(self, option: str) -> None:
        """Assign that version to the device."""
        await self.runtime.async_install_firmware(self.key_id, option)
