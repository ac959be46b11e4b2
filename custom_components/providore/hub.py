"""The runtime side of the hub entry: its devices, settings and their reported state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .certificate_authority import CertificateUsage
from .certificates import ProvidoreCertificates
from .const import (
    CONF_CERTIFICATE_USAGE,
    CONF_CERTIFICATE_VALIDITY,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_ONLINE_INTERVAL,
    CONF_UPDATE_TIMEOUT,
    DEFAULT_CERTIFICATE_VALIDITY,
    DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_MAX_REQUEST_LIFETIME,
    DEFAULT_ONLINE_INTERVAL,
    DEFAULT_UPDATE_TIMEOUT,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from .firmware_catalog import FirmwareCatalog
from .firmware_manager import FirmwareManager
from .firmware_updates import FirmwareUpdates
from .storage import DeviceState, JsonObject, ProvidoreStorage

type ProvidoreConfigEntry = ConfigEntry[ProvidoreHub]


def signal_device_updated(key_id: str) -> str:
    """Return the dispatcher signal sent when a device's reported state changes."""
    return f"{DOMAIN}_device_updated_{key_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HubSettings:
    """The hub's options, with their defaults filled in."""

    max_clock_skew: timedelta
    max_request_lifetime: timedelta
    online_interval: timedelta
    update_timeout: timedelta
    certificate_validity: timedelta

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HubSettings:
        """Read the settings from the entry's options."""
        return cls(
            max_clock_skew=timedelta(
                seconds=options.get(CONF_MAX_CLOCK_SKEW, DEFAULT_MAX_CLOCK_SKEW)
            ),
            max_request_lifetime=timedelta(
                seconds=options.get(
                    CONF_MAX_REQUEST_LIFETIME, DEFAULT_MAX_REQUEST_LIFETIME
                )
            ),
            online_interval=timedelta(
                seconds=options.get(CONF_ONLINE_INTERVAL, DEFAULT_ONLINE_INTERVAL)
            ),
            update_timeout=timedelta(
                seconds=options.get(CONF_UPDATE_TIMEOUT, DEFAULT_UPDATE_TIMEOUT)
            ),
            certificate_validity=timedelta(
                days=options.get(
                    CONF_CERTIFICATE_VALIDITY, DEFAULT_CERTIFICATE_VALIDITY
                )
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """A device as the user configured it (one config subentry)."""

    subentry_id: str
    key_id: str
    name: str
    firmware_type: str | None
    certificate_usage: CertificateUsage = CertificateUsage.CLIENT


class ProvidoreHub:
    """Everything the device API and the entities of a loaded hub entry share."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        storage: ProvidoreStorage,
        catalog: FirmwareCatalog,
        updates: FirmwareUpdates,
        certificates: ProvidoreCertificates,
    ) -> None:
        """Build the hub from the entry's options and device subentries."""
        self._hass = hass
        self.storage = storage
        self.certificates = certificates
        self.settings = HubSettings.from_options(entry.options)
        self.devices: dict[str, DeviceProfile] = {
            subentry.data[CONF_KEY_ID]: DeviceProfile(
                subentry_id=subentry.subentry_id,
                key_id=subentry.data[CONF_KEY_ID],
                name=subentry.title,
                firmware_type=subentry.data.get(CONF_FIRMWARE_TYPE) or None,
                certificate_usage=CertificateUsage(
                    subentry.data.get(CONF_CERTIFICATE_USAGE, CertificateUsage.CLIENT)
                ),
            )
            for subentry in entry.subentries.values()
            if subentry.subentry_type == SUBENTRY_TYPE_DEVICE
        }
        self.firmware = FirmwareManager(
            hass,
            catalog,
            updates,
            firmware_types={
                key_id: device.firmware_type for key_id, device in self.devices.items()
            },
            device_names={
                key_id: device.name for key_id, device in self.devices.items()
            },
            state=self.state,
            notify=self.notify,
            update_timeout=self.settings.update_timeout,
        )

    def secret(self, key_id: str) -> str | None:
        """Return the secret key of a configured device, else None."""
        if key_id not in self.devices:
            return None
        return self.storage.secret(key_id)

    def state(self, key_id: str) -> DeviceState:
        """Return what a device last reported."""
        return self.storage.state(key_id)

    def is_online(self, key_id: str, now: datetime) -> bool:
        """Return whether a device called within the online interval."""
        last_seen = self.state(key_id).last_seen
        return last_seen is not None and now - last_seen < self.settings.online_interval

    def config_document(self, key_id: str, firmware_version: str) -> JsonObject | None:
        """Return the configuration document a device running a version gets."""
        return self.storage.document(key_id, firmware_version)

    @callback
    def record_request(
        self, key_id: str, address: str | None, firmware_version: str, now: datetime
    ) -> None:
        """Note an authenticated request: when, from where, and which firmware."""
        state = self.state(key_id)
        version_changed = state.firmware_version != firmware_version
        state.last_seen = now
        state.address = address
        state.firmware_version = firmware_version
        self.storage.schedule_state_save()
        if version_changed:
            self._update_device_sw_version(key_id, firmware_version)
        self.firmware.device_reported(key_id, firmware_version)
        self.notify(key_id)

    @callback
    def notify(self, key_id: str) -> None:
        """Tell a device's entities that something they show changed."""
        async_dispatcher_send(self._hass, signal_device_updated(key_id))

    @callback
    def _update_device_sw_version(self, key_id: str, firmware_version: str) -> None:
        device_registry = dr.async_get(self._hass)
        if device := device_registry.async_get_device(identifiers={(DOMAIN, key_id)}):
            device_registry.async_update_device(device.id, sw_version=firmware_version)


@callback
def async_get_loaded_hub(hass: HomeAssistant) -> ProvidoreHub | None:
    """Return the hub of the loaded Providore entry, or None when none is loaded."""
    entries: list[ProvidoreConfigEntry] = hass.config_entries.async_loaded_entries(
        DOMAIN
    )
    return entries[0].runtime_data if entries else None
