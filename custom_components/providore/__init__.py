"""Providore: Home Assistant as a secure provisioning server for home devices."""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType
from homeassistant.util import dt as dt_util

from .certificates import SIGNAL_CERTIFICATES_UPDATED, async_get_certificates
from .const import DOMAIN
from .device_auth import DATA_GUARDS, RequestGuards
from .firmware_catalog import async_get_firmware_catalog
from .firmware_updates import async_get_firmware_updates
from .hub import ProvidoreConfigEntry, ProvidoreHub
from .repairs import (
    async_update_certificate_issues,
    async_update_missing_secret_issues,
)
from .services import async_setup_services
from .storage import async_get_storage
from .views import VIEWS

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.UPDATE,
]
# The CRL is signed again this often; each one is valid for a week.
CRL_REFRESH_INTERVAL = timedelta(days=1)
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the device API and the service actions, once per run."""
    guards = RequestGuards(hass)
    await guards.async_load()
    hass.data[DATA_GUARDS] = guards
    for view in VIEWS:
        hass.http.register_view(view())
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> bool:
    """Set up the hub and the entities of its devices."""
    storage = await async_get_storage(hass)
    updates = await async_get_firmware_updates(hass)
    certificates = await async_get_certificates(hass)
    hub = ProvidoreHub(
        hass,
        entry,
        storage,
        await async_get_firmware_catalog(hass),
        updates,
        certificates,
    )
    # Devices removed while Home Assistant was running take their data with them.
    await storage.async_keep_only(hub.devices)
    await updates.async_keep_only(hub.devices)
    await certificates.async_revoke_all_but(hub.devices)
    async_update_missing_secret_issues(hass, hub)
    async_update_certificate_issues(hass, hub, dt_util.utcnow())
    entry.async_on_unload(hub.firmware.async_start())
    entry.runtime_data = hub

    @callback
    def _certificates_updated(_key_id: str) -> None:
        async_update_certificate_issues(hass, hub, dt_util.utcnow())

    async def _async_daily(now: datetime) -> None:
        await certificates.async_publish_crl()
        async_update_certificate_issues(hass, hub, now)

    entry.async_on_unload(
        async_dispatcher_connect(
            hass, SIGNAL_CERTIFICATES_UPDATED, _certificates_updated
        )
    )
    entry.async_on_unload(
        async_track_time_interval(hass, _async_daily, CRL_REFRESH_INTERVAL)
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_reload_entry))
    return True


async def _async_reload_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> None:
    """Reload when settings or devices change."""
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> bool:
    """Unload the entities; the device API answers 404 until the hub is back."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> None:
    """Delete every device's secrets, documents and state, the firmware and the CA."""
    await (await async_get_storage(hass)).async_remove()
    await (await async_get_firmware_updates(hass)).async_remove()
    await (await async_get_firmware_catalog(hass)).async_remove()
    await (await async_get_certificates(hass)).async_remove()
    await hass.data[DATA_GUARDS].async_remove()
