"""Firmware updates of the hub's devices: assign, follow the download, confirm or fail.

An update is complete once the device reports the assigned version. When it still
reports another version a while after it downloaded the build completely (it rolled
back or failed to boot), the assignment is withdrawn and a repair issue names the
device and the version it failed to update to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .device_data import DeviceState
from .device_events import DeviceEventType, async_fire_device_event
from .firmware_catalog import (
    Firmware,
    FirmwareCatalog,
    FirmwareError,
    compare_versions,
)
from .firmware_delivery import FirmwareSignatures
from .firmware_updates import FirmwareUpdates, UpdatePlan
from .issues import update_failed_issue_id
from .models import DeviceChange, DeviceProfile


@dataclass(frozen=True, slots=True)
class BuildUsage:
    """A build in the catalog and the devices that run it or wait for it."""

    build: Firmware
    # The names of the devices of its type that report running its version.
    running: list[str] = field(default_factory=list)
    # The names of the devices it is assigned to that do not run it yet.
    assigned: list[str] = field(default_factory=list)


class FirmwareManager:
    """Assigns builds to devices and follows each update to its end."""

    def __init__(
        self,
        hass: HomeAssistant,
        catalog: FirmwareCatalog,
        updates: FirmwareUpdates,
        devices: Mapping[str, DeviceProfile],
        state: Callable[[str], DeviceState],
        publish: Callable[[str, DeviceChange], None],
        update_timeout: timedelta,
        in_rollout: Callable[[str], bool],
    ) -> None:
        """Follow the updates of `devices` (the runtime's live mapping by key id).

        `state` returns what a device reported; `publish` tells its entities what changed;
        `in_rollout` whether a rollout decides the device's updates (not its switch).
        """
        self._hass = hass
        self.catalog = catalog
        self._updates = updates
        self._devices = devices
        self._state = state
        self._publish = publish
        self._update_timeout = update_timeout
        self._in_rollout = in_rollout
        self._deadlines: dict[str, CALLBACK_TYPE] = {}
        self.signatures = FirmwareSignatures()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Resume waiting on downloaded updates and follow the catalog; return a stop."""
        for key_id in self._devices:
            self.device_added(key_id)
        remove_listener = self.catalog.async_add_listener(self._catalog_changed)

        @callback
        def stop() -> None:
            remove_listener()
            for cancel in self._deadlines.values():
                cancel()
            self._deadlines.clear()

        return stop

    @callback
    def device_added(self, key_id: str) -> None:
        """Resume following a device's downloaded update, if it has one."""
        plan = self._updates.plans().get(key_id)
        if plan and plan.assigned_version and plan.downloaded_at:
            self._watch_reboot(key_id, plan.downloaded_at)

    @callback
    def device_removed(self, key_id: str) -> None:
        """Stop following a removed device."""
        self._cancel_deadline(key_id)
        self.signatures.forget(key_id)

    def plan(self, key_id: str) -> UpdatePlan:
        """Return a device's update plan."""
        return self._updates.plan(key_id)

    def latest(self, key_id: str) -> Firmware | None:
        """Return the newest build for a device's firmware type."""
        return self.catalog.latest(self._firmware_type(key_id))

    def assigned(self, key_id: str) -> Firmware | None:
        """Return the build a device should run, if one is assigned and still exists.

        A build of another firmware type than the device's (its type was changed
        since), or with other bytes than those assigned, is never served.
        """
        plan = self.plan(key_id)
        if plan.firmware_type != self._firmware_type(key_id):
            return None
        build = self.catalog.get(plan.firmware_type, plan.assigned_version)
        if build is None or build.sha256 != plan.assigned_sha256:
            return None
        return build

    def pending(self, key_id: str) -> Firmware | None:
        """Return the assigned build while the device does not run it yet."""
        build = self.assigned(key_id)
        if build is None or build.version == self._state(key_id).firmware_version:
            return None
        return build

    def usage(self) -> list[BuildUsage]:
        """Return every build, newest version first per type, and who runs or awaits it."""
        running: dict[tuple[str, str], list[str]] = {}
        assigned: dict[tuple[str, str], list[str]] = {}
        for key_id, device in self._devices.items():
            if device.firmware_type is None:
                continue
            if (version := self._state(key_id).firmware_version) is not None:
                running.setdefault((device.firmware_type, version), []).append(
                    device.name
                )
            if (build := self.pending(key_id)) is not None:
                assigned.setdefault((build.firmware_type, build.version), []).append(
                    device.name
                )
        return [
            BuildUsage(
                build,
                sorted(running.get((build.firmware_type, build.version), [])),
                sorted(assigned.get((build.firmware_type, build.version), [])),
            )
            for firmware_type in self.catalog.firmware_types()
            for build in reversed(self.catalog.versions(firmware_type))
        ]

    def progress(self, key_id: str) -> int | None:
        """Return the percentage of the pending build sent to the device, if known."""
        build = self.pending(key_id)
        plan = self.plan(key_id)
        if build is None:
            return None
        if plan.downloaded_at is not None:
            return 100
        if plan.bytes_sent is None:
            return None
        return min(100, plan.bytes_sent * 100 // build.size)

    async def async_install(self, key_id: str, version: str | None) -> None:
        """Assign a build of the device's type to it: the given version, else the newest."""
        firmware_type = self._firmware_type(key_id)
        if version is None:
            build = self.latest(key_id)
            if build is None:
                raise FirmwareError("no_firmware", firmware_type=firmware_type or "-")
        elif (build := self.catalog.get(firmware_type, version)) is None:
            raise FirmwareError(
                "unknown_firmware", firmware_type=firmware_type or "-", version=version
            )
        await self._async_assign(key_id, build)

    async def async_cancel(self, key_id: str) -> None:
        """Withdraw an assigned build the device has not reported running yet."""
        if (build := self.pending(key_id)) is None:
            raise FirmwareError("no_pending_update", key_id=key_id)
        self._withdraw(key_id)
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.UPDATE_WITHDRAWN,
            version=build.version,
            reason="cancelled",
        )
        await self._updates.async_save()
        LOGGER.info("Withdrew the firmware update of %s", key_id)
        self._publish(key_id, DeviceChange.UPDATE)

    async def async_set_auto_update(self, key_id: str, enabled: bool) -> None:
        """Turn automatic assignment of new uploads on or off for a device."""
        self.plan(key_id).auto_update = enabled
        await self._updates.async_save()
        self._publish(key_id, DeviceChange.AUTO_UPDATE)

    @callback
    def device_reported(self, key_id: str, firmware_version: str) -> None:
        """Finish the update when a device reports running its assigned version."""
        self._clear_failure_reached(key_id, firmware_version)
        plan = self._updates.plans().get(key_id)
        if (
            plan is None
            or plan.assigned_version != firmware_version
            or (plan.downloaded_at is None and plan.bytes_sent is None)
        ):
            return
        LOGGER.info("%s now runs firmware %s", key_id, firmware_version)
        self._clear_progress(key_id)
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.UPDATE_COMPLETED,
            version=firmware_version,
        )

    @callback
    def _clear_failure_reached(self, key_id: str, firmware_version: str) -> None:
        """Drop the failed-update issue once the device runs that version after all."""
        issue_id = update_failed_issue_id(key_id)
        issue = ir.async_get(self._hass).async_get_issue(DOMAIN, issue_id)
        if issue and (issue.translation_placeholders or {}).get("version") == (
            firmware_version
        ):
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)

    @callback
    def download_progressed(
        self, key_id: str, build: Firmware, start: int, end: int
    ) -> None:
        """Note that the bytes of `build` from `start` up to `end` reached the device.

        Only bytes that continue what the device already has count, so a range
        from the middle of the file never makes a download look complete.
        """
        plan = self.plan(key_id)
        if plan.assigned_version != build.version or plan.downloaded_at is not None:
            return
        if start > (plan.bytes_sent or 0) or end <= (plan.bytes_sent or 0):
            return
        before = self.progress(key_id)
        plan.bytes_sent = end
        if end >= build.size:
            self._download_finished(key_id)
        elif self.progress(key_id) != before:
            self._publish(key_id, DeviceChange.UPDATE)

    @callback
    def download_stopped(self, key_id: str) -> None:
        """Forget the progress of a download the device broke off."""
        plan = self.plan(key_id)
        if plan.downloaded_at is None and plan.bytes_sent is not None:
            plan.bytes_sent = None
            self._publish(key_id, DeviceChange.UPDATE)

    @callback
    def assign(self, key_id: str, build: Firmware) -> None:
        """Assign a build at once, saved in the background (a rollout, during a request)."""
        self._set_assignment(key_id, build)
        self._hass.async_create_task(self._updates.async_save())
        self._assigned(key_id, build)

    @callback
    def withdraw_undownloaded(self, key_id: str, build: Firmware, reason: str) -> bool:
        """Withdraw `build` from a device that has not begun to download it."""
        if self.pending(key_id) != build or self.progress(key_id) is not None:
            return False
        self._withdraw(key_id)
        self._hass.async_create_task(self._updates.async_save())
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.UPDATE_WITHDRAWN,
            version=build.version,
            reason=reason,
        )
        self._publish(key_id, DeviceChange.UPDATE)
        return True

    async def _async_assign(self, key_id: str, build: Firmware) -> None:
        self._set_assignment(key_id, build)
        await self._updates.async_save()
        self._assigned(key_id, build)

    @callback
    def _set_assignment(self, key_id: str, build: Firmware) -> None:
        plan = self._forget_download(key_id)
        plan.firmware_type = build.firmware_type
        plan.assigned_version = build.version
        plan.assigned_sha256 = build.sha256

    @callback
    def _assigned(self, key_id: str, build: Firmware) -> None:
        """Announce a new assignment."""
        ir.async_delete_issue(self._hass, DOMAIN, update_failed_issue_id(key_id))
        LOGGER.info("Assigned firmware %s to %s", build.version, key_id)
        async_fire_device_event(
            self._hass, key_id, DeviceEventType.UPDATE_ASSIGNED, version=build.version
        )
        self._publish(key_id, DeviceChange.UPDATE)

    def _devices_of_type(self, firmware_type: str) -> list[str]:
        return [
            key_id
            for key_id, device in self._devices.items()
            if device.firmware_type == firmware_type
        ]

    @callback
    def _catalog_changed(self, build: Firmware, added: bool) -> None:
        """Tell the devices of the build's type; follow an upload or a deletion."""
        affected = self._devices_of_type(build.firmware_type)
        if added:
            self._assign_automatically(build, affected)
        else:
            self._withdraw_deleted(build, affected)
        for key_id in affected:
            self._publish(key_id, DeviceChange.UPDATE)

    @callback
    def _assign_automatically(self, build: Firmware, key_ids: Iterable[str]) -> None:
        """Assign a new upload to the devices that update automatically.

        Only the newest build of a type is assigned, and never to a device that
        reports a newer version (that would be a downgrade), nor to a device that
        a running rollout updates.
        """
        if build != self.catalog.latest(build.firmware_type):
            return
        for key_id in key_ids:
            installed = self._state(key_id).firmware_version
            if (
                self.plan(key_id).auto_update
                and not self._in_rollout(key_id)
                and (
                    installed is None or compare_versions(build.version, installed) > 0
                )
            ):
                self._hass.async_create_task(self._async_assign(key_id, build))

    @callback
    def _withdraw_deleted(self, build: Firmware, key_ids: Iterable[str]) -> None:
        """Withdraw every assignment of a build that was deleted."""
        withdrawn = False
        for key_id in key_ids:
            plan = self.plan(key_id)
            if (
                plan.assigned_version == build.version
                and plan.assigned_sha256 == build.sha256
            ):
                self._withdraw(key_id)
                withdrawn = True
                LOGGER.info(
                    "Withdrew firmware %s from %s: the build was deleted",
                    build.version,
                    key_id,
                )
                async_fire_device_event(
                    self._hass,
                    key_id,
                    DeviceEventType.UPDATE_WITHDRAWN,
                    version=build.version,
                    reason="the build was deleted",
                )
        if withdrawn:
            self._hass.async_create_task(self._updates.async_save())

    @callback
    def _download_finished(self, key_id: str) -> None:
        now = dt_util.utcnow()
        plan = self.plan(key_id)
        plan.downloaded_at = now
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.UPDATE_DOWNLOADED,
            version=plan.assigned_version or "-",
        )
        self._hass.async_create_task(self._updates.async_save())
        self._watch_reboot(key_id, now)
        self._publish(key_id, DeviceChange.UPDATE)

    @callback
    def _watch_reboot(self, key_id: str, downloaded_at: datetime) -> None:
        """Give the device until the update timeout to report the new version."""
        self._cancel_deadline(key_id)

        @callback
        def deadline_passed(_now: datetime) -> None:
            self._deadlines.pop(key_id, None)
            self._update_failed(key_id)

        self._deadlines[key_id] = async_track_point_in_utc_time(
            self._hass, deadline_passed, downloaded_at + self._update_timeout
        )

    @callback
    def _update_failed(self, key_id: str) -> None:
        build = self.pending(key_id)
        if build is None:
            return
        installed = self._state(key_id).firmware_version or "-"
        LOGGER.warning(
            "%s downloaded firmware %s but still reports %s: the update failed",
            key_id,
            build.version,
            installed,
        )
        self._withdraw(key_id)
        self._clear_progress(key_id)
        async_fire_device_event(
            self._hass,
            key_id,
            DeviceEventType.UPDATE_FAILED,
            version=build.version,
            installed=installed,
        )
        device = self._devices.get(key_id)
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            update_failed_issue_id(key_id),
            is_fixable=False,
            is_persistent=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key="update_failed",
            translation_placeholders={
                "device": device.name if device else key_id,
                "version": build.version,
                "installed": installed,
            },
        )

    @callback
    def _clear_progress(self, key_id: str) -> None:
        self._forget_download(key_id)
        self._hass.async_create_task(self._updates.async_save())
        self._publish(key_id, DeviceChange.UPDATE)

    @callback
    def _withdraw(self, key_id: str) -> None:
        plan = self._forget_download(key_id)
        plan.assigned_version = plan.assigned_sha256 = None

    @callback
    def _forget_download(self, key_id: str) -> UpdatePlan:
        """Stop following the device's download: no progress, no reboot watch."""
        self._cancel_deadline(key_id)
        plan = self.plan(key_id)
        plan.bytes_sent = None
        plan.downloaded_at = None
        return plan

    @callback
    def _cancel_deadline(self, key_id: str) -> None:
        if cancel := self._deadlines.pop(key_id, None):
            cancel()

    def _firmware_type(self, key_id: str) -> str | None:
        device = self._devices.get(key_id)
        return device.firmware_type if device else None
