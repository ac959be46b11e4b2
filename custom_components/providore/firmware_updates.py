"""Which firmware each device should run, and how far its update has come.

A device only ever gets a build someone assigned to it: a user pressing Update (or
an automation calling `update.install`), or its "Automatic updates" switch when a new
build is uploaded. An assignment names the build by version and SHA-256, so a
version uploaded again with other bytes is never sent without a new install.
Assignments and finished downloads are saved at once; download progress is kept
in memory only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NotRequired, TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .stores import async_load, providore_store


class StoredPlan(TypedDict):
    """The serialised update plan of one device."""

    firmware_type: str | None
    assigned_version: str | None
    assigned_sha256: NotRequired[str | None]
    auto_update: bool
    downloaded_at: str | None


@dataclass(slots=True)
class UpdatePlan:
    """One device's firmware assignment and the progress towards it."""

    # The build assigned: its firmware type, version and SHA-256.
    firmware_type: str | None = None
    assigned_version: str | None = None
    assigned_sha256: str | None = None
    auto_update: bool = False
    # When the assigned build was last sent to the device completely.
    downloaded_at: datetime | None = None
    # Bytes of the assigned build sent so far in the running download, if any.
    bytes_sent: int | None = None

    @classmethod
    def from_stored(cls, stored: StoredPlan) -> UpdatePlan:
        """Read a stored plan."""
        downloaded_at = stored["downloaded_at"]
        return cls(
            firmware_type=stored["firmware_type"],
            assigned_version=stored["assigned_version"],
            assigned_sha256=stored.get("assigned_sha256"),
            auto_update=stored["auto_update"],
            downloaded_at=dt_util.parse_datetime(downloaded_at)
            if downloaded_at
            else None,
        )

    def to_stored(self) -> StoredPlan:
        """Serialise for the store."""
        return StoredPlan(
            firmware_type=self.firmware_type,
            assigned_version=self.assigned_version,
            assigned_sha256=self.assigned_sha256,
            auto_update=self.auto_update,
            downloaded_at=self.downloaded_at.isoformat()
            if self.downloaded_at
            else None,
        )


class FirmwareUpdates:
    """The update plans of every device, persisted in a Home Assistant store."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the store; call async_load before use."""
        self._hass = hass
        self._store: Store[dict[str, StoredPlan]] = providore_store(
            hass, "firmware_updates"
        )
        self._plans: dict[str, UpdatePlan] = {}

    async def async_load(self) -> None:
        """Read the plans from disk; raise StoreUnreadable when they cannot be read."""
        stored = await async_load(self._hass, self._store) or {}
        self._plans = {
            key_id: UpdatePlan.from_stored(plan) for key_id, plan in stored.items()
        }

    def plan(self, key_id: str) -> UpdatePlan:
        """Return a device's plan (empty when nothing was ever assigned)."""
        return self._plans.setdefault(key_id, UpdatePlan())

    def plans(self) -> dict[str, UpdatePlan]:
        """Return every device's plan."""
        return self._plans

    async def async_save(self) -> None:
        """Write the plans after an assignment, a setting or a finished download."""
        await self._store.async_save(
            {key_id: plan.to_stored() for key_id, plan in self._plans.items()}
        )

    def planned_key_ids(self) -> set[str]:
        """Return every device that has a plan."""
        return set(self._plans)

    async def async_forget(self, key_ids: Iterable[str]) -> None:
        """Forget the plans of removed devices."""
        if stale := set(key_ids) & self._plans.keys():
            for key_id in stale:
                del self._plans[key_id]
            await self.async_save()

    async def async_remove(self) -> None:
        """Delete the store (when the hub is removed)."""
        self._plans = {}
        await self._store.async_remove()
