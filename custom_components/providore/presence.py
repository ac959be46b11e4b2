"""Whether each device is connected: it called within the hub's online interval.

A request only moves the device's last-seen time. Each online device has one
timer, set for when it would go offline; when it fires and the device has called
since, it is set again for the new time. So a request costs no timer work at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_point_in_utc_time


class Presence:
    """Tracks which devices are online and says when that changes."""

    def __init__(
        self,
        hass: HomeAssistant,
        online_interval: timedelta,
        last_seen: Callable[[str], datetime | None],
        changed: Callable[[str], None],
    ) -> None:
        """Read last-seen times through `last_seen`; call `changed` on each transition."""
        self._hass = hass
        self._interval = online_interval
        self._last_seen = last_seen
        self._changed = changed
        self._timers: dict[str, CALLBACK_TYPE] = {}

    def is_online(self, key_id: str) -> bool:
        """Return whether the device called within the online interval."""
        return key_id in self._timers

    @callback
    def device_seen(self, key_id: str, seen: datetime) -> None:
        """Note a request; only a device that was offline costs any work."""
        if key_id not in self._timers:
            self._arm(key_id, seen)
            self._changed(key_id)

    @callback
    def resume(self, key_id: str, now: datetime) -> None:
        """After start-up: count the device online if it called recently enough."""
        if (seen := self._last_seen(key_id)) is not None and now - seen < (
            self._interval
        ):
            self._arm(key_id, seen)

    @callback
    def forget(self, key_id: str) -> None:
        """Stop tracking a removed device."""
        if cancel := self._timers.pop(key_id, None):
            cancel()

    @callback
    def stop(self) -> None:
        """Cancel every timer."""
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()

    @callback
    def _arm(self, key_id: str, seen: datetime) -> None:
        @callback
        def deadline(now: datetime) -> None:
            latest = self._last_seen(key_id)
            if latest is not None and latest + self._interval > now:
                self._arm(key_id, latest)
                return
            del self._timers[key_id]
            self._changed(key_id)

        self._timers[key_id] = async_track_point_in_utc_time(
            self._hass, deadline, seen + self._interval
        )
