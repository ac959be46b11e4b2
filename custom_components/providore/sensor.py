"""Sensors of a device: whether it calls, what it last reported, and its certificate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_point_in_utc_time

from .certificates import CertificateStatus
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


class ContactStatus(StrEnum):
    """Whether a device has ever called, and whether it calls now."""

    WAITING_FOR_FIRST_CONTACT = "waiting_for_first_contact"
    ONLINE = "online"
    OFFLINE = "offline"


def contact_status(runtime: ProvidoreRuntime, key_id: str) -> ContactStatus:
    """Return whether the device never called, called recently, or stopped calling."""
    if runtime.state(key_id).last_seen is None:
        return ContactStatus.WAITING_FOR_FIRST_CONTACT
    return ContactStatus.ONLINE if runtime.is_online(key_id) else ContactStatus.OFFLINE


SENSORS: tuple[ProvidoreSensorEntityDescription, ...] = (
    ProvidoreSensorEntityDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ContactStatus],
        value_fn=contact_status,
        # The first request, like every change between online and offline, is one.
        shows=DeviceChange.CONNECTIVITY,
    ),
    ProvidoreSensorEntityDescription(
        key="firmware_version",
        translation_key="firmware_version",
        entity_category=EntityCategory.DIAGNOSTIC,
        # The Firmware update entity and the device's software version show it too.
        entity_registry_enabled_default=False,
        value_fn=lambda runtime, key_id: runtime.state(key_id).firmware_version,
        shows=DeviceChange.FIRMWARE_VERSION,
    ),
    ProvidoreSensorEntityDescription(
        key="address",
        translation_key="address",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda runtime, key_id: runtime.state(key_id).address,
        shows=DeviceChange.ADDRESS,
    ),
    ProvidoreSensorEntityDescription(
        key="certificate_expires",
        translation_key="certificate_expires",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        # The Certificate status says what matters; the date is one click away.
        entity_registry_enabled_default=False,
        # When the newest certificate expires (or expired); a revoked one never will.
        value_fn=lambda runtime, key_id: (
            newest.not_after
            if (newest := runtime.newest_certificate(key_id))
            and newest.revoked_at is None
            else None
        ),
        shows=DeviceChange.CERTIFICATE,
    ),
)

CERTIFICATE = ProvidoreSensorEntityDescription(
    key="certificate",
    translation_key="certificate",
    device_class=SensorDeviceClass.ENUM,
    entity_category=EntityCategory.DIAGNOSTIC,
    options=[status.value for status in CertificateStatus],
    value_fn=lambda runtime, key_id: runtime.certificate_status(key_id),
    shows=DeviceChange.CERTIFICATE,
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
        entry, async_add_entities, ProvidoreCertificateSensor, [CERTIFICATE]
    )
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


class ProvidoreCertificateSensor(ProvidoreSensor):
    """The status of the device's newest certificate, turning Expired when it expires."""

    _expiry: CALLBACK_TYPE | None = None

    async def async_added_to_hass(self) -> None:
        """Follow the certificate, and wait for its expiry."""
        await super().async_added_to_hass()
        self._watch_expiry()
        self.async_on_remove(self._stop_watching)

    @callback
    def _device_changed(self, changes: DeviceChange) -> None:
        self._watch_expiry()
        super()._device_changed(changes)

    @callback
    def _watch_expiry(self) -> None:
        """Be written again the moment the valid certificate expires."""
        self._stop_watching()
        if (current := self.runtime.current_certificate(self.key_id)) is not None:
            self._expiry = async_track_point_in_utc_time(
                self.hass, self._expired, current.not_after
            )

    @callback
    def _expired(self, _now: datetime) -> None:
        self._expiry = None
        self.async_write_ha_state()

    @callback
    def _stop_watching(self) -> None:
        if self._expiry is not None:
            self._expiry()
            self._expiry = None


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
