"""Sensors of what a device last reported: when, from where, which firmware; its certificate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LAST_SEEN_RESOLUTION
from .entity import ProvidoreEntity, async_add_device_entities
from .models import DeviceChange, DeviceKind, DeviceProfile
from .rollout_sensors import async_add_rollout_sensors
from .runtime import ProvidoreConfigEntry, ProvidoreRuntime

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ProvidoreSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of a device: what it shows and when that changes."""

    value_fn: Callable[[ProvidoreRuntime, str], str | int | datetime | None]
    shows: DeviceChange


SENSORS: tuple[ProvidoreSensorEntityDescription, ...] = (
    ProvidoreSensorEntityDescription(
        key="firmware_version",
        translation_key="firmware_version",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda runtime, key_id: runtime.state(key_id).firmware_version,
        shows=DeviceChange.FIRMWARE_VERSION,
    ),
    ProvidoreSensorEntityDescription(
        key="address",
        translation_key="address",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda runtime, key_id: runtime.state(key_id).address,
        shows=DeviceChange.ADDRESS,
    ),
    ProvidoreSensorEntityDescription(
        key="certificate_expires",
        translation_key="certificate_expires",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda runtime, key_id: (
            current.not_after
            if (current := runtime.current_certificate(key_id))
            else None
        ),
        shows=DeviceChange.CERTIFICATE,
    ),
)

# An ESPHome device has no update entity of Providore's where ESPHome shows its own:
# this shows how much of the assigned build it fetched.
FIRMWARE_DOWNLOAD = ProvidoreSensorEntityDescription(
    key="firmware_download",
    translation_key="firmware_download",
    native_unit_of_measurement=PERCENTAGE,
    entity_category=EntityCategory.DIAGNOSTIC,
    value_fn=lambda runtime, key_id: runtime.firmware.progress(key_id),
    shows=DeviceChange.UPDATE,
)

LAST_SEEN = SensorEntityDescription(
    key="last_seen",
    translation_key="last_seen",
    # It changes on every request: enabled, it would fill the logbook and history.
    entity_registry_enabled_default=False,
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every device, and of each firmware type's rollouts."""
    async_add_device_entities(entry, async_add_entities, ProvidoreSensor, SENSORS)
    async_add_device_entities(
        entry,
        async_add_entities,
        ProvidoreSensor,
        [FIRMWARE_DOWNLOAD],
        frozenset({DeviceKind.ESPHOME}),
    )
    async_add_device_entities(
        entry,
        async_add_entities,
        ProvidoreLastSeenSensor,
        [LAST_SEEN],
        frozenset(DeviceKind),
    )
    async_add_rollout_sensors(entry, async_add_entities)


class ProvidoreSensor(ProvidoreEntity, SensorEntity):
    """A value the device reported, or its certificate's expiry."""

    entity_description: ProvidoreSensorEntityDescription

    def __init__(
        self,
        runtime: ProvidoreRuntime,
        device: DeviceProfile,
        description: ProvidoreSensorEntityDescription,
        device_info: DeviceInfo,
    ) -> None:
        """Attach the sensor to its device; it shows what its description says."""
        super().__init__(runtime, device, description, device_info)
        self.shows = description.shows

    @property
    def native_value(self) -> str | int | datetime | None:
        """Return the value."""
        return self.entity_description.value_fn(self.runtime, self.key_id)


class ProvidoreLastSeenSensor(ProvidoreEntity, SensorEntity):
    """When the device last called, written at most once a minute."""

    shows = DeviceChange.LAST_SEEN
    _shown: datetime | None = None

    async def async_added_to_hass(self) -> None:
        """Start from the last time the device called."""
        self._shown = self.device_state.last_seen
        await super().async_added_to_hass()

    @property
    def native_value(self) -> datetime | None:
        """Return when the device last called (lagging by up to a minute)."""
        return self._shown

    @callback
    def _device_changed(self, changes: DeviceChange) -> None:
        seen = self.device_state.last_seen
        if seen is not None and (
            self._shown is None
            or seen - self._shown >= timedelta(seconds=LAST_SEEN_RESOLUTION)
        ):
            self._shown = seen
            self.async_write_ha_state()
