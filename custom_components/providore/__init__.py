"""Providore: Home Assistant as a secure provisioning server for home devices."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .issues import async_create_store_issue, delete_store_issues
from .request_guards import DATA_GUARDS, RequestGuards
from .runtime import ProvidoreConfigEntry, ProvidoreRuntime, async_remove_stores
from .services import async_setup_services
from .stores import StoreLoadTimeout, StoreUnreadable
from .views import VIEWS

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.UPDATE,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the device API and the service actions, once per run."""
    guards = RequestGuards(hass)
    await guards.async_load()
    hass.data[DATA_GUARDS] = guards
    hass.bus.async_listen_once(
        EVENT_HOMEASSISTANT_STOP, lambda _event: guards.async_stop()
    )
    for view in VIEWS:
        hass.http.register_view(view())
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> bool:
    """Load the hub's stores, then set up the entities of its devices."""
    try:
        runtime = await ProvidoreRuntime.async_load(hass, entry)
    except StoreLoadTimeout as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="store_timeout",
            translation_placeholders={"store": err.key},
        ) from err
    except StoreUnreadable as err:
        async_create_store_issue(hass, entry.entry_id, err)
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="store_unreadable",
            translation_placeholders={"store": err.key, "reason": err.reason},
        ) from err
    delete_store_issues(hass)
    entry.runtime_data = runtime
    await runtime.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> bool:
    """Bring an entry made by an older Providore up to date."""
    if entry.version > 1:
        return False  # made by a newer Providore
    if entry.minor_version < 2:
        # 1.2: revoking a certificate asks for confirmation in the device's
        # Reconfigure menu; the Revoke certificate buttons are gone.
        registry = er.async_get(hass)
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
            if entity.domain == Platform.BUTTON:
                registry.async_remove(entity.entity_id)
        hass.config_entries.async_update_entry(entry, minor_version=2)
    return True


async def _async_entry_updated(
    hass: HomeAssistant, entry: ProvidoreConfigEntry
) -> None:
    """Follow added, changed and removed devices in place; reload for new settings."""
    await entry.runtime_data.async_sync_devices()


async def async_unload_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> bool:
    """Unload the entities; the device API answers 404 until the hub is back."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: ProvidoreConfigEntry) -> None:
    """Delete every device's secrets, documents and state, the firmware and the CA."""
    await async_remove_stores(hass)
    await hass.data[DATA_GUARDS].async_remove()
    delete_store_issues(hass)
