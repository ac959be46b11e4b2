"""Connectivity: whether a device is calling in."""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .entity import ProvidoreEntity, async_add_device_entities
from .hub import ProvidoreConfigEntry

PARALLEL_UPDATES = 0

CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    translation_key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
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

    _cancel_offline_timer: CALLBACK_TYPE | None = None

    @property
    def is_on(self) -> bool:
        """Return whether the device called recently."""
        return self.hub.is_online(self.device.key_id, dt_util.utcnow())

    async def async_added_to_hass(self) -> None:
        """Start the timer that turns the sensor off."""
        await super().async_added_to_hass()
        self._schedule_offline()
        self.async_on_remove(self._cancel_timer)

    @callback
    def _handle_device_update(self) -> None:
        """Restart the timer after each request."""
        self._schedule_offline()
        super()._handle_device_update()

    @callback
    def _schedule_offline(self) -> None:
        self._cancel_timer()
        if (last_seen := self.device_state.last_seen) is None:
            return
        self._cancel_offline_timer = async_track_point_in_utc_time(
            self.hass, self._went_offline, last_seen + self.hub.settings.online_interval
        )

    @callback
    def _went_offline(self, _now: datetime) -> None:
        self._cancel_offline_timer = None
        self.async_write_ha_state()

    @callback
    def _cancel_timer(self) -> None:
        if self._cancel_offline_timer is not None:
            self._cancel_offline_timer()
            self._cancel_offline_timer = None
