"""Diagnostics for the hub and each device, without a single secret."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import CONF_SECRET_KEY, DOMAIN
from .device_auth import DATA_GUARDS
from .hub import DeviceProfile, ProvidoreConfigEntry, ProvidoreHub

# Secrets live in a private store and are never collected here; redacting the
# names anyway keeps a future field from leaking one.
TO_REDACT = {CONF_SECRET_KEY, "psk", "password", "token", "private_key"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: ProvidoreConfigEntry
) -> dict[str, Any]:
    """Return the hub's settings, devices, firmware builds and throttled addresses."""
    hub = entry.runtime_data
    throttle = hass.data[DATA_GUARDS].throttle
    return async_redact_data(
        {
            "entry": entry.as_dict(),
            "devices": [_device(hub, device) for device in hub.devices.values()],
            "firmware": {
                firmware_type: [
                    {
                        "version": build.version,
                        "size": build.size,
                        "sha256": build.sha256,
                        "uploaded_at": build.uploaded_at.isoformat(),
                    }
                    for build in hub.firmware.catalog.versions(firmware_type)
                ]
                for firmware_type in hub.firmware.catalog.firmware_types()
            },
            "certificate_authority": _certificate_authority(hub),
            "addresses_with_failures": throttle.tracked_addresses,
            "throttled_addresses": throttle.throttled_addresses(dt_util.utcnow()),
        },
        TO_REDACT,
    )


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: ProvidoreConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """Return what Providore knows of one device."""
    hub = entry.runtime_data
    key_id = next(ident for domain, ident in device.identifiers if domain == DOMAIN)
    return async_redact_data(_device(hub, hub.devices[key_id]), TO_REDACT)


def _device(hub: ProvidoreHub, device: DeviceProfile) -> dict[str, Any]:
    """Describe a device; configuration documents by name only (they may hold passwords)."""
    state = hub.state(device.key_id)
    current = hub.certificates.current(device.key_id, dt_util.utcnow())
    documents = hub.storage.documents(device.key_id)
    plan = hub.firmware.plan(device.key_id)
    return {
        "key_id": device.key_id,
        "name": device.name,
        "firmware_type": device.firmware_type,
        "has_secret_key": hub.secret(device.key_id) is not None,
        "online": hub.is_online(device.key_id, dt_util.utcnow()),
        "state": state.to_stored(),
        "config_documents": {
            "default": "default" in documents,
            "firmware_versions": sorted(documents.get("versions", {})),
        },
        "firmware_update": {
            **plan.to_stored(),
            "progress": hub.firmware.progress(device.key_id),
        },
        "certificate_usage": device.certificate_usage,
        "certificate": None
        if current is None
        else {
            "serial": current.serial_hex,
            "not_before": current.not_before.isoformat(),
            "not_after": current.not_after.isoformat(),
        },
    }


def _certificate_authority(hub: ProvidoreHub) -> dict[str, Any]:
    """Describe the CA by its public certificate only."""
    certificate = hub.certificates.authority.certificate
    return {
        "subject": certificate.subject.rfc4514_string(),
        "not_valid_before": certificate.not_valid_before_utc.isoformat(),
        "not_valid_after": certificate.not_valid_after_utc.isoformat(),
        "sha256_fingerprint": hub.certificates.authority.fingerprint,
    }
