"""The hub's rollout sensors: state, wave, progress and failed devices, per firmware type.

A firmware type gets its sensors with its first rollout; they show its newest one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import PERCENTAGE
from homeassistant.core import callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .hub_device import hub_device_info
from .rollout_plan import WAITING_FOR_WINDOW, Rollout, RolloutState, Step
from .runtime import ProvidoreConfigEntry, ProvidoreRuntime

# The failed devices a sensor lists; more are counted.
LISTED_DEVICES: Final = 100


@dataclass(frozen=True, kw_only=True)
class RolloutSensorEntityDescription(SensorEntityDescription):
    """Describes a rollout sensor: its value and attributes."""

    value_fn: Callable[[Rollout, time], StateType]
    attributes_fn: Callable[[Rollout, ProvidoreRuntime], dict[str, Any]] | None = None


def _overview(rollout: Rollout, runtime: ProvidoreRuntime) -> dict[str, Any]:
    """Return the build, gate, window and each wave's counts."""
    totals = rollout.counts()
    return {
        "firmware_version": rollout.version,
        "wave": rollout.open_wave + 1,
        "waves": len(rollout.waves),
        "devices": totals.devices,
        "updated": totals.healthy,
        "updating": totals.updating,
        "waiting": totals.waiting,
        "failed": totals.failed,
        "skipped": totals.skipped,
        "healthy_for": rollout.gate.healthy_for.total_seconds(),
        "max_failed_percent": rollout.gate.max_failed_percent,
        "window": str(rollout.window) if rollout.window else None,
        "started_at": rollout.started_at.isoformat(),
        "ended_at": rollout.ended_at.isoformat() if rollout.ended_at else None,
        "abort_reason": rollout.abort_reason,
        "wave_counts": [
            {
                "wave": wave + 1,
                "devices": counts.devices,
                "updated": counts.healthy,
                "updating": counts.updating,
                "waiting": counts.waiting,
                "failed": counts.failed,
                "skipped": counts.skipped,
            }
            for wave in range(len(rollout.waves))
            if (counts := rollout.counts(wave))
        ],
    }


def _failed_devices(rollout: Rollout, runtime: ProvidoreRuntime) -> dict[str, Any]:
    """Return the failed devices: name, key id, wave and why."""
    failed: list[dict[str, Any]] = []
    for key_id, progress in rollout.devices_at(Step.FAILED):
        if len(failed) == LISTED_DEVICES:
            break
        device = runtime.devices.get(key_id)
        failed.append(
            {
                "device": device.name if device else key_id,
                "key_id": key_id,
                "wave": progress.wave + 1,
                "reason": progress.reason,
            }
        )
    return {"failed_devices": failed}


def _progress(rollout: Rollout, _local: time) -> int:
    """Return the share of the devices that run the build and passed the gate."""
    counts = rollout.counts()
    return counts.healthy * 100 // counts.devices if counts.devices else 0


ROLLOUT_SENSORS: tuple[RolloutSensorEntityDescription, ...] = (
    RolloutSensorEntityDescription(
        key="rollout",
        translation_key="rollout",
        device_class=SensorDeviceClass.ENUM,
        options=[WAITING_FOR_WINDOW, *(state.value for state in RolloutState)],
        value_fn=lambda rollout, local: rollout.status(local),
        attributes_fn=_overview,
    ),
    RolloutSensorEntityDescription(
        key="rollout_wave",
        translation_key="rollout_wave",
        value_fn=lambda rollout,
        _local: f"{rollout.open_wave + 1}/{len(rollout.waves)}",
    ),
    RolloutSensorEntityDescription(
        key="rollout_progress",
        translation_key="rollout_progress",
        native_unit_of_measurement=PERCENTAGE,
        value_fn=_progress,
    ),
    RolloutSensorEntityDescription(
        key="rollout_failed",
        translation_key="rollout_failed",
        value_fn=lambda rollout, _local: rollout.counts().failed,
        attributes_fn=_failed_devices,
    ),
)


@callback
def async_add_rollout_sensors(
    entry: ProvidoreConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the sensors of each firmware type with a rollout, now and as types get one."""
    runtime = entry.runtime_data

    @callback
    def add(firmware_type: str) -> None:
        async_add_entities(
            RolloutSensor(runtime, firmware_type, description)
            for description in ROLLOUT_SENSORS
        )

    for firmware_type in runtime.rollouts.firmware_types():
        add(firmware_type)
    entry.async_on_unload(runtime.rollouts.async_on_rollout_added(add))


class RolloutSensor(SensorEntity):
    """What the newest rollout of a firmware type shows, on the hub device."""

    entity_description: RolloutSensorEntityDescription
    _attr_has_entity_name = True
    _attr_should_poll = False
    # Lists that can be long; the current state shows them, the history does not.
    _unrecorded_attributes = frozenset({"wave_counts", "failed_devices"})

    def __init__(
        self,
        runtime: ProvidoreRuntime,
        firmware_type: str,
        description: RolloutSensorEntityDescription,
    ) -> None:
        """Show one aspect of the rollouts of `firmware_type`."""
        self.entity_description = description
        self.runtime = runtime
        self.firmware_type = firmware_type
        self._attr_unique_id = f"rollout:{firmware_type}:{description.key}"
        self._attr_translation_placeholders = {"firmware_type": firmware_type}
        self._attr_device_info = hub_device_info()

    async def async_added_to_hass(self) -> None:
        """Follow the rollouts of the type."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.runtime.rollouts.async_subscribe(
                self.firmware_type, self.async_write_ha_state
            )
        )

    @property
    def native_value(self) -> StateType:
        """Return the value, as of the hub's local time of day."""
        # A firmware type keeps its newest rollout, so there always is one.
        rollout = self.runtime.rollouts.rollout(self.firmware_type)
        return self.entity_description.value_fn(rollout, dt_util.now().time())

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the counts or the failed devices."""
        if (attributes := self.entity_description.attributes_fn) is None:
            return None
        return attributes(
            self.runtime.rollouts.rollout(self.firmware_type), self.runtime
        )
