"""Sensors of what a device last reported: when, from where, and which firmware."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .certificates import SIGNAL_CERTIFICATES_UPDATED
from .entity import ProvidoreEntity, async_add_device_entities
from .hub import ProvidoreConfigEntry
from .storage import DeviceState

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ProvidoreSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor read from a device's reported state."""

    value_fn: Callable[[DeviceState], str | datetime | None]


SENSORS: tuple[ProvidoreSensorEntityDescription, ...] = (
    ProvidoreSensorEntityDescription(
        key="last_seen",
        translation_key="last_seen",
        # It changes on every request: enabled, it would fill the logbook and history.
        entity_registry_enabled_default=False,
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.last_seen,
    ),
    ProvidoreSensorEntityDescription(
        key="firmware_version",
        translation_key="firmware_version",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.firmware_version,
    ),
    ProvidoreSensorEntityDescription(
        key="address",
        translation_key="address",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.address,
    ),
)

CERTIFICATE_EXPIRES = SensorEntityDescription(
    key="certificate_expires",
    translation_key="certificate_expires",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every device."""
    async_add_device_entities(entry, async_add_entities, ProvidoreSensor, SENSORS)
    async_add_device_entities(
        entry, async_add_entities, ProvidoreCertificateSensor, [CERTIFICATE_EXPIRES]
    )


class ProvidoreSensor(ProvidoreEntity, SensorEntity):
    """A value the device reported."""

    entity_description: ProvidoreSensorEntityDescription

    @property
    def native_value(self) -> str | datetime | None:
        """Return the reported value."""
        return self.entity_description.value_fn(self.device_state)


class ProvidoreCertificateSensor(ProvidoreEntity, SensorEntity):
    """When the device's current certificate expires; unknown without one."""

    @property
    def native_value(self) -> datetime | None:
        """Return the expiry of the newest valid certificate."""
        current = self.hub.certificates.current(self.device.key_id, dt_util.utcnow())
        return current.not_after if current else None

    async def async_added_to_hass(self) -> None:
        """Follow the device's certificates too."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_CERTIFICATES_UPDATED, self._certificates_updated
            )
        )

    @callback
    def _certificates_updated(self, key_id: str) -> None:
        if key_id == self.device.key_id:
            self.async_write_ha_state()
