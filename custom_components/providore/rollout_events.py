"""A rollout's history: events on Home Assistant's bus that the Logbook shows on the hub.

Each event carries the hub device's registry id, the firmware type and version of
the rollout, the kind of event and a few details. What happens to each device in a
rollout is in the device's own history (`device_events`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .hub_device import async_hub_device_id
from .rollout_plan import Reason

EVENT_ROLLOUT: Final = f"{DOMAIN}_rollout_event"


class RolloutEventType(StrEnum):
    """What happened to a rollout."""

    STARTED = "started"
    WAVE_STARTED = "wave_started"
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"


# The Logbook's line for each event (after the hub's name), filled from its details.
MESSAGES: Final[dict[RolloutEventType, str]] = {
    RolloutEventType.STARTED: (
        "started rolling out {firmware_type} firmware {version} to {devices_count} "
        "in {waves_count}"
    ),
    RolloutEventType.WAVE_STARTED: (
        "started wave {wave} of {waves} of the {firmware_type} rollout "
        "({devices_count})"
    ),
    RolloutEventType.PAUSED: "paused the {firmware_type} rollout",
    RolloutEventType.RESUMED: "resumed the {firmware_type} rollout",
    RolloutEventType.COMPLETED: (
        "completed the {firmware_type} rollout of firmware {version}: "
        "{healthy} devices updated, {failed} failed"
    ),
    RolloutEventType.ABORTED: "stopped the {firmware_type} rollout by itself: {why}",
    RolloutEventType.CANCELLED: "cancelled the {firmware_type} rollout",
}

# Why a device failed a rollout's health gate, in words.
FAILURES: Final[dict[Reason, str]] = {
    Reason.ROLLED_BACK: "it went back to another version or could not boot the build",
    Reason.NO_REPORT: "it did not report the build within the update timeout",
    Reason.OFFLINE: "it went offline",
}


@callback
def async_fire_rollout_event(
    hass: HomeAssistant,
    firmware_type: str,
    version: str,
    event_type: RolloutEventType,
    **details: str,
) -> None:
    """Put an event about a rollout on the bus (a line in the hub's Logbook)."""
    hass.bus.async_fire(
        EVENT_ROLLOUT,
        {
            "device_id": async_hub_device_id(hass),
            "firmware_type": firmware_type,
            "version": version,
            "type": event_type.value,
            **details,
        },
    )


def describe(event_type: str, details: dict[str, str]) -> str:
    """Return the Logbook line of an event (never failing on odd data)."""
    counted = {
        f"{key}_count": f"{details[key]} {noun}{'' if details[key] == '1' else 's'}"
        for key, noun in (("devices", "device"), ("waves", "wave"))
        if key in details
    }
    try:
        return MESSAGES[RolloutEventType(event_type)].format_map(details | counted)
    except (ValueError, KeyError):
        return event_type
