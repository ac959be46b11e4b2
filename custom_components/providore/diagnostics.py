"""Diagnostics for the hub and each device, without a single secret."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import CONF_SECRET_KEY, DOMAIN
from .hub_device import is_hub
from .models import DeviceProfile
from .request_guards import DATA_GUARDS
from .runtime import ProvidoreConfigEntry, ProvidoreRuntime

# Secrets live in a private store and are never collected here; redacting the
# names anyway keeps a future field from leaking one.
TO_REDACT = {CONF_SECRET_KEY, "psk", "password", "token", "private_key"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: ProvidoreConfigEntry
) -> dict[str, Any]:
    """Return the hub's settings, devices, firmware builds and throttled addresses."""
    runtime = entry.runtime_data
    throttle = hass.data[DATA_GUARDS].throttle
    return async_redact_data(
        {
            "entry": entry.as_dict(),
            "devices": [
                _device(runtime, device) for device in runtime.devices.values()
            ],
            "firmware": {
                firmware_type: [
                    {
                        "version": build.version,
                        "size": build.size,
                        "sha256": build.sha256,
                        "md5": build.md5,
                        "chip_family": build.chip_family,
                        "uploaded_at": build.uploaded_at.isoformat(),
                    }
                    for build in runtime.builds(firmware_type)
                ]
                for firmware_type in runtime.firmware_types()
            },
            "rollouts": _rollouts(runtime),
            "certificate_authority": _certificate_authority(runtime),
            "addresses_with_failures": throttle.tracked_addresses,
            "throttled_addresses": throttle.throttled_addresses(dt_util.utcnow()),
            "push_notices": runtime.notices_diagnostics(),
            "pending_devices": runtime.pending_devices.diagnostics(),
        },
        TO_REDACT,
    )


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: ProvidoreConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """Return what Providore knows of one device; for the hub, its rollouts."""
    runtime = entry.runtime_data
    if is_hub(device):
        return {"rollouts": _rollouts(runtime)}
    key_id = next(ident for domain, ident in device.identifiers if domain == DOMAIN)
    return async_redact_data(_device(runtime, runtime.devices[key_id]), TO_REDACT)


def _device(runtime: ProvidoreRuntime, device: DeviceProfile) -> dict[str, Any]:
    """Describe a device; configuration documents by name only (they may hold passwords)."""
    state = runtime.state(device.key_id)
    current = runtime.current_certificate(device.key_id)
    documents = runtime.documents(device.key_id)
    plan = runtime.firmware.plan(device.key_id)
    esphome = None
    if device.esphome is not None:
        esphome = {
            "chip_family": device.esphome.chip_family.value,
            "project_name": device.esphome.project_name,
            "mac": device.esphome.mac,
            "has_token": runtime.esphome.token(device.key_id) is not None,
            "attached_to_esphome_device": runtime.esphome.is_attached(device.key_id),
        }
    return {
        "key_id": device.key_id,
        "name": device.name,
        "esphome": esphome,
        "firmware_type": device.firmware_type,
        "has_secret_key": runtime.secret(device.key_id) is not None,
        "online": runtime.is_online(device.key_id),
        "state": state.to_stored(),
        "config_documents": {
            "default": "default" in documents,
            "firmware_versions": sorted(documents.get("versions", {})),
        },
        "firmware_update": {
            **plan.to_stored(),
            "progress": runtime.firmware.progress(device.key_id),
        },
        "certificate_usage": device.certificate_usage,
        "certificate_status": runtime.certificate_status(device.key_id),
        "certificate": None
        if current is None
        else {
            "serial": current.serial_hex,
            "not_before": current.not_before.isoformat(),
            "not_after": current.not_after.isoformat(),
        },
    }


def _rollouts(runtime: ProvidoreRuntime) -> dict[str, Any]:
    """Describe the newest rollout of each firmware type (key ids, no secrets)."""
    return {
        firmware_type: runtime.rollouts.rollout(firmware_type).to_stored()
        for firmware_type in runtime.rollouts.firmware_types()
    }


def _certificate_authority(runtime: ProvidoreRuntime) -> dict[str, Any]:
    """Describe the CA by its public certificate only."""
    authority = runtime.certificate_authority
    certificate = authority.certificate
    return {
        "subject": certificate.subject.rfc4514_string(),
        "not_valid_before": certificate.not_valid_before_utc.isoformat(),
        "not_valid_after": certificate.not_valid_after_utc.isoformat(),
        "sha256_fingerprint": authority.fingerprint,
    }
