"""Providore on ESPHome's own device: found by MAC, its reported version, the check push.

Where Home Assistant's ESPHome integration has an ESPHome device (a device registry
entry of an `esphome` config entry with the device's MAC), Providore attaches to it:
its entities join that device, and it adds no update entity of its own, since ESPHome's
shows and installs the build. When what the device's manifest offers changes, ESPHome's
update entities are asked to check at once (`homeassistant.update_entity`, which makes
ESPHome's entity send the device its check command), so the device does not wait for its
next check, up to 6 hours away.

The device counts as running a version once ESPHome's integration writes it into the
device registry: each time the device connects, ESPHome sets the device's software
version to "<project version> (ESPHome <version>)" from what the device itself reports.
That is read rather than the `installed_version` of ESPHome's update entity because it
does not depend on which update entities the device's configuration has, what they are
named, or whether the user disabled one; and one registry listener serves both the
attachment and the versions, with O(1) work per registry change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import re
from typing import Final

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import ESPHOME_DOMAIN, LOGGER
from .device_feed import DeviceFeed
from .models import DeviceChange, DeviceProfile

HOMEASSISTANT_DOMAIN: Final = "homeassistant"
SERVICE_UPDATE_ENTITY: Final = "update_entity"
# How ESPHome's integration writes the software version of a device with a project.
_ESPHOME_SW_VERSION: Final = re.compile(r"(?P<project>.+) \(ESPHome [^()]+\)")

type DetachedListener = Callable[[DeviceProfile], None]


def project_version(sw_version: str | None) -> str | None:
    """Return the project version in the software version ESPHome's integration wrote."""
    if sw_version and (match := _ESPHOME_SW_VERSION.fullmatch(sw_version)):
        return match["project"]
    return None


class EsphomeAttachments:
    """Which ESPHome devices ESPHome's integration has, and the versions it reports."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        devices: Mapping[str, DeviceProfile],
        feed: DeviceFeed,
        version_reported: Callable[[str, str], None],
    ) -> None:
        """Follow the ESPHome devices among `devices` (the runtime's live mapping).

        `version_reported(key_id, version)` is called with each version ESPHome reports.
        """
        self._hass = hass
        self._entry = entry
        self._devices = devices
        self._feed = feed
        self._version_reported = version_reported
        # Each ESPHome device's MAC, and each MAC to its key id.
        self._macs: dict[str, str] = {}
        self._by_mac: dict[str, str] = {}
        # ESPHome's device registry id of each attached device, and the reverse.
        self._attached: dict[str, str] = {}
        self._by_device_id: dict[str, str] = {}
        self._detached_listeners: list[DetachedListener] = []

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Follow the device registry; return a stop."""
        return self._hass.bus.async_listen(
            dr.EVENT_DEVICE_REGISTRY_UPDATED, self._registry_updated
        )

    @callback
    def device_added(self, key_id: str, mac: str) -> None:
        """Look for ESPHome's device of a new ESPHome device."""
        self._macs[key_id] = mac
        self._by_mac[mac] = key_id
        self._refresh(key_id, notify=False)

    @callback
    def device_removed(self, key_id: str) -> None:
        """Forget a removed device."""
        if (mac := self._macs.pop(key_id, None)) is not None:
            self._by_mac.pop(mac, None)
        if (device_id := self._attached.pop(key_id, None)) is not None:
            self._by_device_id.pop(device_id, None)

    def is_attached(self, key_id: str) -> bool:
        """Return whether ESPHome's integration has the device."""
        return key_id in self._attached

    @callback
    def async_on_detached(self, listener: DetachedListener) -> CALLBACK_TYPE:
        """Call `listener` with each device ESPHome's integration no longer has."""
        self._detached_listeners.append(listener)
        return lambda: self._detached_listeners.remove(listener)

    @callback
    def request_check(self, key_id: str) -> None:
        """Ask ESPHome's update entities of an attached device to check now."""
        if (device_id := self._attached.get(key_id)) is None:
            return
        entity_ids = [
            entity.entity_id
            for entity in er.async_entries_for_device(
                er.async_get(self._hass), device_id
            )
            if entity.platform == ESPHOME_DOMAIN and entity.domain == UPDATE_DOMAIN
        ]
        if entity_ids:
            self._hass.async_create_task(self._async_check(key_id, entity_ids))

    async def _async_check(self, key_id: str, entity_ids: list[str]) -> None:
        try:
            await self._hass.services.async_call(
                HOMEASSISTANT_DOMAIN,
                SERVICE_UPDATE_ENTITY,
                {ATTR_ENTITY_ID: entity_ids},
                blocking=True,
            )
        except HomeAssistantError as err:
            LOGGER.warning(
                "Could not ask ESPHome's %s to check for firmware for %s: %s",
                ", ".join(entity_ids),
                key_id,
                err,
            )
        else:
            LOGGER.debug("Asked %s to check for firmware", ", ".join(entity_ids))

    @callback
    def _registry_updated(
        self, event: Event[dr.EventDeviceRegistryUpdatedData]
    ) -> None:
        """Follow a device registry change that concerns one of the ESPHome devices."""
        device_id = event.data["device_id"]
        key_id = self._by_device_id.get(device_id)
        if key_id is None:
            entry = dr.async_get(self._hass).async_get(device_id)
            if entry is None:
                return
            key_id = next(
                (
                    self._by_mac[value]
                    for kind, value in entry.connections
                    if kind == dr.CONNECTION_NETWORK_MAC and value in self._by_mac
                ),
                None,
            )
        if key_id is not None:
            self._refresh(key_id, notify=True)

    @callback
    def _refresh(self, key_id: str, *, notify: bool) -> None:
        """Look up ESPHome's device for the MAC; take the version it reports."""
        entry = dr.async_get(self._hass).async_get_device(
            connections={(dr.CONNECTION_NETWORK_MAC, self._macs[key_id])}
        )
        esphome_device = entry if entry and self._is_esphome_device(entry) else None
        attached_to = esphome_device.id if esphome_device else None
        if (before := self._attached.get(key_id)) != attached_to:
            if before is not None:
                del self._attached[key_id]
                self._by_device_id.pop(before, None)
            if attached_to is not None:
                self._attached[key_id] = attached_to
                self._by_device_id[attached_to] = key_id
            LOGGER.debug(
                "%s is %s ESPHome's device",
                key_id,
                "attached to" if attached_to else "detached from",
            )
            if notify:
                self._attachment_changed(key_id)
        if esphome_device and (version := project_version(esphome_device.sw_version)):
            self._version_reported(key_id, version)

    @callback
    def _attachment_changed(self, key_id: str) -> None:
        self._feed.publish(key_id, DeviceChange.ATTACHMENT)
        device = self._devices[key_id]
        if key_id in self._attached or device.subentry_id not in self._entry.subentries:
            return
        for listener in list(self._detached_listeners):
            listener(device)

    def _is_esphome_device(self, device: dr.DeviceEntry) -> bool:
        return any(
            entry.domain == ESPHOME_DOMAIN
            for entry_id in device.config_entries
            if (entry := self._hass.config_entries.async_get_entry(entry_id))
        )
