"""Unknown devices that announced themselves, until the admin adopts or ignores them.

A device Providore does not know cannot sign a request Providore can verify, so it
announces itself instead: a hello (POST /hello) or a `_providore-dev._tcp` zeroconf
service. Each announcement of a new key id becomes a pending device with a repair
issue "New device found"; its fix flow (in `repairs`) and the Add device flow adopt
it. Nothing it says is trusted: it is checked in form (`device_hello`), only shown,
and the admin decides which key the device gets.

The list is capped, announcements are rate-limited per address and overall, and a
pending device expires a day after its last announcement. It lives in memory only:
what it holds is unauthenticated, so it is not worth a write to disk per
announcement, a restart clears whatever a flood left behind, and a device that is
still waiting announces itself again (the protocol asks it to repeat its hello every
few minutes until it is adopted). The ignore list is the admin's decision, so it is
saved and survives restarts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypedDict

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .device_hello import DeviceHello
from .guards import RateLimit
from .stores import async_load, providore_store

MAX_PENDING: Final = 100
PENDING_LIFETIME: Final = timedelta(hours=24)
# Announcements taken from one address, and from all addresses together, per minute.
ANNOUNCEMENTS_PER_ADDRESS: Final = 6
ANNOUNCEMENTS_PER_MINUTE: Final = 60
# New pending devices per hour: a flood fills the list slowly, not at once.
NEW_DEVICES_PER_HOUR: Final = 20
NEW_DEVICE_PREFIX: Final = "new_device_"
_EVERYONE: Final = "*"
_MINUTE: Final = timedelta(minutes=1)
_HOUR: Final = timedelta(hours=1)


class AnnouncementSource(StrEnum):
    """How a pending device announced itself."""

    HELLO = "hello"
    ZEROCONF = "zeroconf"


@dataclass(slots=True)
class PendingDevice:
    """An unknown device as it announced itself: checked in form, not trusted."""

    key_id: str
    firmware_type: str | None
    mac: str | None
    address: str | None
    source: AnnouncementSource
    first_seen: datetime
    last_seen: datetime

    def describe(self) -> str:
        """Return a one-line description for a list to choose from."""
        details = [self.firmware_type, self.mac, self.address]
        return " · ".join([self.key_id, *(d for d in details if d)])


class _IgnoredData(TypedDict):
    key_ids: list[str]


def _ignore_list(hass: HomeAssistant) -> Store[_IgnoredData]:
    return providore_store(hass, "ignored_devices")


def new_device_issue_id(key_id: str) -> str:
    """Return the id of the repair issue about a pending device."""
    return f"{NEW_DEVICE_PREFIX}{key_id}"


class PendingDevices:
    """The pending devices, their repair issues, and the ignore list."""

    def __init__(self, hass: HomeAssistant, is_known: Callable[[str], bool]) -> None:
        """Start empty; `is_known` tells whether a key id is a configured device."""
        self._hass = hass
        self._is_known = is_known
        # Ordered by last announcement, oldest first.
        self._devices: OrderedDict[str, PendingDevice] = OrderedDict()
        self._ignored: set[str] = set()
        self._store = _ignore_list(hass)
        self._per_address = RateLimit(ANNOUNCEMENTS_PER_ADDRESS, _MINUTE)
        self._overall = RateLimit(ANNOUNCEMENTS_PER_MINUTE, _MINUTE, max_keys=1)
        self._new_devices = RateLimit(NEW_DEVICES_PER_HOUR, _HOUR, max_keys=1)
        self._cancel_expiry: CALLBACK_TYPE | None = None
        self._full_logged = False

    async def async_load(self) -> None:
        """Read the ignore list; raise StoreUnreadable when it is lost."""
        if stored := await async_load(self._hass, self._store):
            self._ignored = set(stored["key_ids"])

    @callback
    def async_stop(self) -> None:
        """Forget every pending device and withdraw its issue (the hub unloads)."""
        if self._cancel_expiry is not None:
            self._cancel_expiry()
            self._cancel_expiry = None
        for key_id in list(self._devices):
            self._drop(key_id)

    def retry_after(self, address: str, now: datetime) -> int | None:
        """Count an announcement from `address`; return seconds to wait when over a limit."""
        if (wait := self._per_address.retry_after(address, now)) is not None:
            return wait
        return self._overall.retry_after(_EVERYONE, now)

    @callback
    def announce(
        self,
        hello: DeviceHello,
        address: str | None,
        source: AnnouncementSource,
        now: datetime,
    ) -> None:
        """Note a device's announcement; known and ignored key ids are passed over."""
        key_id = hello.key_id
        if self._is_known(key_id) or key_id in self._ignored:
            return
        if (device := self._devices.get(key_id)) is not None:
            # Still unauthenticated: the newest announcement is shown, no more.
            device.firmware_type, device.mac = hello.firmware_type, hello.mac
            device.address, device.source = address, source
            device.last_seen = now
            self._devices.move_to_end(key_id)
            self._raise_issue(device)
            return
        if len(self._devices) >= MAX_PENDING:
            if not self._full_logged:
                self._full_logged = True
                LOGGER.warning(
                    "%s devices wait to be adopted or ignored: announcements of"
                    " more new devices are passed over until there is room",
                    MAX_PENDING,
                )
            return
        if self._new_devices.retry_after(_EVERYONE, now) is not None:
            LOGGER.debug("Passed over the announcement of %s: too many new", key_id)
            return
        device = PendingDevice(
            key_id=key_id,
            firmware_type=hello.firmware_type,
            mac=hello.mac,
            address=address,
            source=source,
            first_seen=now,
            last_seen=now,
        )
        self._devices[key_id] = device
        LOGGER.info(
            "Unknown device %s announced itself by %s from %s: adopt or ignore it"
            " in Settings → Repairs",
            key_id,
            source,
            address or "an unknown address",
        )
        self._raise_issue(device)
        self._arm_expiry()

    def devices(self) -> list[PendingDevice]:
        """Return the pending devices, the most recently announced first."""
        return list(reversed(self._devices.values()))

    def get(self, key_id: str) -> PendingDevice | None:
        """Return a pending device."""
        return self._devices.get(key_id)

    def is_ignored(self, key_id: str) -> bool:
        """Return whether the admin chose to ignore this key id."""
        return key_id in self._ignored

    @callback
    def device_added(self, key_id: str) -> None:
        """Forget a key id that became a device: it is neither pending nor ignored now."""
        if key_id in self._devices:
            self._drop(key_id)
        if key_id in self._ignored:
            self._ignored.discard(key_id)
            self._save_ignored()

    async def async_ignore(self, key_id: str) -> None:
        """Ignore a key id from now on, across restarts, and drop its pending device."""
        self._ignored.add(key_id)
        await self._store.async_save({"key_ids": sorted(self._ignored)})
        if key_id in self._devices:
            self._drop(key_id)
        LOGGER.info("Ignoring the announcements of device %s", key_id)

    def diagnostics(self) -> dict[str, object]:
        """Return the pending devices (as announced, unchecked) and the ignore list."""
        return {
            "pending": [
                {
                    "key_id": device.key_id,
                    "firmware_type": device.firmware_type,
                    "source": device.source.value,
                    "first_seen": device.first_seen.isoformat(),
                    "last_seen": device.last_seen.isoformat(),
                }
                for device in self.devices()
            ],
            "ignored": sorted(self._ignored),
        }

    @staticmethod
    async def async_remove_store(hass: HomeAssistant) -> None:
        """Delete the ignore list (the hub is removed)."""
        await _ignore_list(hass).async_remove()

    @callback
    def _save_ignored(self) -> None:
        self._store.async_delay_save(lambda: {"key_ids": sorted(self._ignored)})

    @callback
    def _drop(self, key_id: str) -> None:
        del self._devices[key_id]
        if len(self._devices) < MAX_PENDING:
            self._full_logged = False
        ir.async_delete_issue(self._hass, DOMAIN, new_device_issue_id(key_id))

    @callback
    def _raise_issue(self, device: PendingDevice) -> None:
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            new_device_issue_id(device.key_id),
            is_fixable=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key="new_device",
            translation_placeholders={
                "key_id": device.key_id,
                "firmware_type": device.firmware_type or "-",
                "mac": device.mac or "-",
                "address": device.address or "-",
                "source": device.source.value,
            },
            data={"key_id": device.key_id},
        )

    @callback
    def _arm_expiry(self) -> None:
        """Wake up when the oldest pending device expires (one timer at most)."""
        if self._cancel_expiry is not None or not self._devices:
            return
        oldest = next(iter(self._devices.values()))
        self._cancel_expiry = async_track_point_in_utc_time(
            self._hass, self._expire, oldest.last_seen + PENDING_LIFETIME
        )

    @callback
    def _expire(self, _now: datetime) -> None:
        self._cancel_expiry = None
        limit = dt_util.utcnow() - PENDING_LIFETIME
        while self._devices:
            key_id, device = next(iter(self._devices.items()))
            if device.last_seen > limit:
                break
            LOGGER.debug("Device %s did not announce itself again: forgotten", key_id)
            self._drop(key_id)
        self._arm_expiry()
