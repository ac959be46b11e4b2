"""A device's history: events on Home Assistant's bus that the Logbook shows on its page.

Each event carries the device registry id (so the Logbook and automations can
filter on the device), the device's key id, the kind of event and a few details.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN

EVENT_DEVICE: Final = f"{DOMAIN}_device_event"


class DeviceEventType(StrEnum):
    """What happened to a device."""

    FIRST_SEEN = "first_seen"
    UPDATE_ASSIGNED = "update_assigned"
    UPDATE_DOWNLOADED = "update_downloaded"
    UPDATE_COMPLETED = "update_completed"
    UPDATE_FAILED = "update_failed"
    UPDATE_WITHDRAWN = "update_withdrawn"
    CERTIFICATE_ISSUED = "certificate_issued"
    CERTIFICATE_REVOKED = "certificate_revoked"
    KEY_ROTATED = "key_rotated"
    ROLLOUT_PASSED = "rollout_passed"
    ROLLOUT_FAILED = "rollout_failed"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 (an event type)


# The Logbook's line for each event (after the device's name), filled from its details.
MESSAGES: Final[dict[DeviceEventType, str]] = {
    DeviceEventType.FIRST_SEEN: "called Providore for the first time, from {address}",
    DeviceEventType.UPDATE_ASSIGNED: "was assigned firmware {version}",
    DeviceEventType.UPDATE_DOWNLOADED: "downloaded firmware {version}",
    DeviceEventType.UPDATE_COMPLETED: "now runs firmware {version}",
    DeviceEventType.UPDATE_FAILED: (
        "did not update to firmware {version}: it still reports {installed}"
    ),
    DeviceEventType.UPDATE_WITHDRAWN: "had firmware {version} withdrawn ({reason})",
    # The day only (the time is on the Certificate expires sensor), and no serial
    # (in the event's data): the Logbook does not wrap a long word.
    DeviceEventType.CERTIFICATE_ISSUED: (
        "was issued a certificate valid until {expires:.10}"
    ),
    DeviceEventType.CERTIFICATE_REVOKED: "had its certificates revoked ({reason})",
    DeviceEventType.KEY_ROTATED: "was given a new secret key",
    DeviceEventType.ROLLOUT_PASSED: (
        "passed the health check of the {firmware_type} rollout of firmware {version}"
    ),
    DeviceEventType.ROLLOUT_FAILED: (
        "failed the health check of the {firmware_type} rollout of firmware "
        "{version}: {why}"
    ),
    DeviceEventType.TOKEN_REVOKED: "had its firmware token revoked",
}


@callback
def async_fire_device_event(
    hass: HomeAssistant, key_id: str, event_type: DeviceEventType, **details: str
) -> None:
    """Put an event about a device on the bus (a line in its Logbook)."""
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, key_id)})
    hass.bus.async_fire(
        EVENT_DEVICE,
        {
            "device_id": device.id if device else None,
            "key_id": key_id,
            "type": event_type.value,
            **details,
        },
    )


def describe(event_type: str, details: dict[str, str]) -> str:
    """Return the Logbook line of an event (never failing on odd data)."""
    try:
        return MESSAGES[DeviceEventType(event_type)].format_map(details)
    except (ValueError, KeyError):
        return event_type
