"""Per device: whether new firmware uploads are assigned to it without a click."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import ProvidoreEntity, async_add_device_entities
from .models import DeviceChange, DeviceKind
from .runtime import ProvidoreConfigEntry

PARALLEL_UPDATES = 0

AUTOMATIC_UPDATES = SwitchEntityDescription(
    key="automatic_updates",
    translation_key="automatic_updates",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the automatic updates switch of every device."""
    async_add_device_entities(
        entry,
        async_add_entities,
        AutomaticUpdatesSwitch,
        [AUTOMATIC_UPDATES],
        frozenset(DeviceKind),
    )


class AutomaticUpdatesSwitch(ProvidoreEntity, SwitchEntity):
    """On: each new build of the device's firmware type is assigned to it at once."""

    shows = DeviceChange.AUTO_UPDATE

    @property
    def is_on(self) -> bool:
        """Return whether new uploads are assigned automatically."""
        return self.runtime.firmware.plan(self.key_id).auto_update

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Assign new uploads automatically."""
        await self.runtime.async_set_auto_update(self.key_id, True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Wait for Update to be pressed."""
        await self.runtime.async_set_auto_update(self.key_id, False)
