"""A hub with a fleet of simulated devices, for the rollout tests.

Each device "calls" through the runtime's record_contact with a request signed by the
independent signer in `device.py`, downloads by the firmware manager's progress (as
the device API reports it), and reboots into a version by calling with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.providore.const import (
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_ONLINE_INTERVAL,
    CONF_UPDATE_TIMEOUT,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.protocol import parse_signed_request
from custom_components.providore.runtime import ProvidoreRuntime

from .conftest import FIRMWARE_TYPE, loaded_runtime
from .device import signed_headers

OLD_VERSION = "1.0.0"
NEW_VERSION = "1.1.0"
ONLINE_INTERVAL = 600
UPDATE_TIMEOUT = 600
ROLLOUT_STATE = "sensor.providore_esp32s2_sensor_rollout"
ROLLOUT_WAVE = "sensor.providore_esp32s2_sensor_rollout_wave"
ROLLOUT_PROGRESS = "sensor.providore_esp32s2_sensor_rollout_progress"
ROLLOUT_FAILED = "sensor.providore_esp32s2_sensor_rollout_failed_devices"


def key_id_of(number: int) -> str:
    """Return the key id of the fleet's device `number` (from 1)."""
    return f"dev-{number:02d}"


def _secret(key_id: str) -> str:
    return f"fleet-secret-{key_id}-0000"


def fleet_entry(
    size: int, firmware_type: str = FIRMWARE_TYPE, others: int = 0
) -> MockConfigEntry:
    """Return a hub with `size` devices of `firmware_type` and `others` of another type."""
    subentries = [
        ConfigSubentryData(
            data={
                CONF_KEY_ID: key_id_of(number),
                CONF_FIRMWARE_TYPE: firmware_type if number <= size else "other-type",
            },
            subentry_type=SUBENTRY_TYPE_DEVICE,
            title=f"Sensor {number:02d}",
            unique_id=key_id_of(number),
        )
        for number in range(1, size + others + 1)
    ]
    return MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        data={},
        options={
            CONF_MAX_CLOCK_SKEW: 300,
            CONF_MAX_REQUEST_LIFETIME: 900,
            CONF_ONLINE_INTERVAL: ONLINE_INTERVAL,
            CONF_UPDATE_TIMEOUT: UPDATE_TIMEOUT,
        },
        subentries_data=subentries,
    )


def store_secrets(hass_storage: dict[str, Any], entry: MockConfigEntry) -> None:
    """Put every device's secret key into Providore's secret store."""
    hass_storage[f"{DOMAIN}.secrets"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.secrets",
        "data": {
            subentry.data[CONF_KEY_ID]: _secret(subentry.data[CONF_KEY_ID])
            for subentry in entry.subentries.values()
        },
    }


async def async_set_up_fleet(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    size: int = 20,
) -> Fleet:
    """Set up a hub of `size` devices (and one of another type), at noon local time."""
    freezer.move_to(datetime(2025, 5, 1, 12, tzinfo=dt_util.get_default_time_zone()))
    entry = fleet_entry(size, others=1)
    store_secrets(hass_storage, entry)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return Fleet(hass, freezer, entry)


class Fleet:
    """The devices of a loaded hub, each running a firmware version."""

    def __init__(
        self,
        hass: HomeAssistant,
        freezer: FrozenDateTimeFactory,
        entry: MockConfigEntry,
    ) -> None:
        """Follow the devices of `entry`, all running the old version."""
        self.hass = hass
        self.entry = entry
        self._freezer = freezer
        self.key_ids = [
            subentry.data[CONF_KEY_ID] for subentry in entry.subentries.values()
        ]
        self.versions = dict.fromkeys(self.key_ids, OLD_VERSION)

    @property
    def runtime(self) -> ProvidoreRuntime:
        """Return the loaded hub's runtime."""
        return loaded_runtime(self.hass)

    def call(self, key_id: str, version: str | None = None) -> None:
        """Make a signed request a second after the last, running `version` from now."""
        self._freezer.tick(timedelta(seconds=1))
        if version is not None:
            self.versions[key_id] = version
        now = dt_util.utcnow()
        signed = parse_signed_request(
            signed_headers(
                "GET",
                "/firmware/check",
                key_id=key_id,
                secret=_secret(key_id),
                firmware_version=self.versions[key_id],
                created=now,
            )
        )
        self.runtime.record_contact(key_id, signed, "192.0.2.10", now)

    def call_all(self, key_ids: list[str] | None = None) -> None:
        """Let every device (or those given) call once."""
        for key_id in self.key_ids if key_ids is None else key_ids:
            self.call(key_id)

    def pending(self) -> list[str]:
        """Return the devices that have a build assigned they do not run yet."""
        return [
            key_id for key_id in self.key_ids if self.runtime.firmware.pending(key_id)
        ]

    def download(self, key_id: str) -> str:
        """Download the device's pending build completely; return its version."""
        firmware = self.runtime.firmware
        build = firmware.pending(key_id)
        assert build is not None, f"{key_id} has nothing to download"
        firmware.download_progressed(key_id, build, 0, build.size)
        return build.version

    def update(self, key_id: str) -> None:
        """Download the pending build and reboot into it."""
        self.call(key_id, self.download(key_id))

    async def advance(self, time: float | timedelta) -> None:
        """Let seconds pass, firing what is due (and what that set for the past)."""
        self._freezer.tick(
            time if isinstance(time, timedelta) else timedelta(seconds=time)
        )
        for _ in range(2):
            async_fire_time_changed(self.hass, dt_util.utcnow())
            await self.hass.async_block_till_done()

    async def upload(self, version: str = NEW_VERSION, **kwargs: Any) -> None:
        """Add a build of the fleet's type to the catalog."""
        path = Path(self.hass.config.path(f"fleet-{version}.bin"))
        await self.hass.async_add_executor_job(
            path.write_bytes, b"\xe9" + version.encode()
        )
        await self.runtime.async_add_build(
            kwargs.get("firmware_type", FIRMWARE_TYPE), version, path
        )
        await self.hass.async_block_till_done()

    async def start(self, **data: Any) -> None:
        """Start a rollout with the action (defaults: the fleet's type, 1, 10%)."""
        await self.hass.services.async_call(
            DOMAIN,
            "start_rollout",
            {"firmware_type": FIRMWARE_TYPE, **data},
            blocking=True,
        )
        await self.hass.async_block_till_done()

    def state(self, entity_id: str = ROLLOUT_STATE) -> State:
        """Return an entity's state (the test fails when it has none)."""
        state = self.hass.states.get(entity_id)
        assert state is not None, f"{entity_id} does not exist"
        return state
