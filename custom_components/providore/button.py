"""A button per device that revokes its certificate."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import ProvidoreEntity, async_add_device_entities
from .runtime import ProvidoreConfigEntry

PARALLEL_UPDATES = 1

REVOKE_CERTIFICATE = ButtonEntityDescription(
    key="revoke_certificate",
    translation_key="revoke_certificate",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the revoke button of every device."""
    async_add_device_entities(
        entry, async_add_entities, ProvidoreRevokeButton, [REVOKE_CERTIFICATE]
    )


class ProvidoreRevokeButton(ProvidoreEntity, ButtonEntity):
    """Revoke the device's valid certificates; they appear in the next CRL."""

    async def async_press(self) -> None:
        """Revoke, or tell the user there is nothing to revoke."""
        await self.runtime.async_revoke_certificates(self.key_id)
