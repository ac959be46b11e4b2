"""Fleet rollouts of the hub: start, follow and stop them; each survives a restart.

A rollout (`rollout_plan.Rollout`) gives one build to many devices, wave by wave.
Every device of an active rollout is indexed to it, so a request costs one lookup:
the device's change feed says when it calls (a queued device starts then, inside
the window), reports a version, goes offline or changes its firmware type; its
history (`providore_device_event`) says when its update was downloaded, failed,
withdrawn or replaced. Timers end the update timeout and the time an updated device
must stay online, and open and close the daily window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import (
    async_call_later,
    async_track_point_in_utc_time,
    async_track_time_change,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .device_events import EVENT_DEVICE, DeviceEventType, async_fire_device_event
from .firmware_catalog import Firmware
from .issues import async_create_rollout_issue, async_delete_rollout_issue
from .models import DeviceChange
from .rollout_events import FAILURES, RolloutEventType, async_fire_rollout_event
from .rollout_plan import (
    FINISHED,
    AbortReason,
    DailyWindow,
    HealthGate,
    InvalidWavesError,
    Reason,
    Rollout,
    Step,
    parse_waves,
)
from .stores import async_load, providore_store

if TYPE_CHECKING:
    from .runtime import ProvidoreRuntime

STORE_NAME: Final = "rollouts"
DEFAULT_WAVES: Final = "1, 10%"
DEFAULT_HEALTHY_FOR: Final = timedelta(minutes=10)
MAX_HEALTHY_FOR: Final = timedelta(days=7)
DEFAULT_MAX_FAILED_PERCENT: Final = 10
# Device steps are saved within this many seconds, batched; control actions at once.
SAVE_DELAY: Final = 1
# What of a device a rollout follows through its change feed.
FOLLOWED: Final = (
    DeviceChange.LAST_SEEN
    | DeviceChange.FIRMWARE_VERSION
    | DeviceChange.CONNECTIVITY
    | DeviceChange.PROFILE
)
# The failed devices a repair issue names; more are counted.
ISSUE_DEVICES: Final = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutRequest:
    """What a user asks for: a build, its target devices, waves, health gate, window."""

    firmware_type: str
    # None: the newest build of the type.
    version: str | None = None
    # Registry ids of devices, areas and labels; all empty: every device of the type.
    device_ids: Sequence[str] = ()
    area_ids: Sequence[str] = ()
    label_ids: Sequence[str] = ()
    waves: str = DEFAULT_WAVES
    healthy_for: timedelta = DEFAULT_HEALTHY_FOR
    max_failed_percent: int = DEFAULT_MAX_FAILED_PERCENT
    window_start: time | None = None
    window_end: time | None = None


class RolloutError(ServiceValidationError):
    """A rollout request was refused; `field` is the form field it is about."""

    def __init__(
        self, translation_key: str, field: str = "base", **placeholders: str
    ) -> None:
        """Build a translated error."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=translation_key,
            translation_placeholders=placeholders,
        )
        self.field = field


class Rollouts:
    """The newest rollout of each firmware type, and the devices they follow."""

    def __init__(self, hass: HomeAssistant, runtime: ProvidoreRuntime) -> None:
        """Create the store; call async_load, then async_start."""
        self._hass = hass
        self._runtime = runtime
        self._store: Store[dict[str, Any]] = providore_store(hass, STORE_NAME)
        self._rollouts: dict[str, Rollout] = {}
        # Every device of an active rollout, to its rollout.
        self._index: dict[str, Rollout] = {}
        self._subscriptions: dict[str, CALLBACK_TYPE] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}
        self._window_timers: dict[str, list[CALLBACK_TYPE]] = {}
        self._stops: list[CALLBACK_TYPE] = []
        self._save_timer: CALLBACK_TYPE | None = None
        self._unlisten_stop: CALLBACK_TYPE | None = None
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._added_listeners: list[Callable[[str], None]] = []

    async def async_load(self) -> None:
        """Read the rollouts; raise StoreUnreadable when they cannot be read."""
        stored = await async_load(self._hass, self._store) or {}
        self._rollouts = {
            firmware_type: Rollout.from_stored(rollout)
            for firmware_type, rollout in stored.get("rollouts", {}).items()
        }

    @callback
    def async_start(self) -> None:
        """Follow the device history and the catalog; resume the active rollouts."""
        self._stops = [
            self._hass.bus.async_listen(
                EVENT_DEVICE, self._device_history, event_filter=self._is_followed
            ),
            self._runtime.firmware.catalog.async_add_listener(self._catalog_changed),
        ]
        self._unlisten_stop = self._hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_save_at_stop
        )
        now = dt_util.utcnow()
        for rollout in self._rollouts.values():
            if rollout.active:
                self._resume_after_start(rollout, now)

    async def async_stop(self) -> None:
        """Stop every timer and listener, and save where each rollout is."""
        for stop in self._stops:
            stop()
        self._stops = []
        if self._unlisten_stop is not None:
            self._unlisten_stop()
            self._unlisten_stop = None
        for key_id in list(self._index):
            self._unfollow(key_id)
        for firmware_type in list(self._window_timers):
            self._stop_window(firmware_type)
        await self._async_save()

    async def _async_save_at_stop(self, _event: Event) -> None:
        """Save before Home Assistant stops (entries are not unloaded then)."""
        self._unlisten_stop = None
        await self._async_save()

    # --- what entities, diagnostics and flows read ----------------------------------

    def get(self, firmware_type: str) -> Rollout | None:
        """Return the newest rollout of a firmware type, if it had one."""
        return self._rollouts.get(firmware_type)

    def rollout(self, firmware_type: str) -> Rollout:
        """Return the newest rollout of a type that had one (KeyError otherwise)."""
        return self._rollouts[firmware_type]

    def firmware_types(self) -> list[str]:
        """Return every firmware type that had a rollout."""
        return sorted(self._rollouts)

    def follows(self, key_id: str) -> bool:
        """Return whether an active rollout decides the device's updates."""
        return key_id in self._index

    @callback
    def async_subscribe(
        self, firmware_type: str, listener: Callable[[], None]
    ) -> CALLBACK_TYPE:
        """Call `listener` whenever the rollout of `firmware_type` changes."""
        listeners = self._listeners.setdefault(firmware_type, [])
        listeners.append(listener)
        return lambda: listeners.remove(listener)

    @callback
    def async_on_rollout_added(self, listener: Callable[[str], None]) -> CALLBACK_TYPE:
        """Call `listener` with each firmware type that gets its first rollout."""
        self._added_listeners.append(listener)
        return lambda: self._added_listeners.remove(listener)

    # --- what users and automations do -----------------------------------------------

    async def async_start_rollout(self, request: RolloutRequest) -> Rollout:
        """Plan a rollout and start its first wave; raise RolloutError when refused."""
        firmware_type = request.firmware_type
        if (current := self._rollouts.get(firmware_type)) and current.active:
            raise RolloutError("rollout_running", firmware_type=firmware_type)
        build = self._build(firmware_type, request.version)
        try:
            sizes = parse_waves(request.waves)
        except InvalidWavesError as err:
            raise RolloutError(
                "rollout_invalid_waves", "waves", waves=request.waves
            ) from err
        window = _window(request.window_start, request.window_end)
        now = dt_util.utcnow()
        rollout = Rollout.plan(
            firmware_type=firmware_type,
            version=build.version,
            sha256=build.sha256,
            key_ids=self._targets(request, build),
            sizes=sizes,
            gate=HealthGate(request.healthy_for, request.max_failed_percent),
            window=window,
            now=now,
        )
        self._rollouts[firmware_type] = rollout
        async_delete_rollout_issue(self._hass, firmware_type)
        for key_id in rollout.devices:
            self._take_over(rollout, key_id, build, now)
            self._follow(key_id, rollout)
        self._start_window(rollout)
        LOGGER.info(
            "Rolling out %s %s to %s devices in %s waves",
            firmware_type,
            build.version,
            len(rollout.devices),
            len(rollout.waves),
        )
        self._fire(
            rollout,
            RolloutEventType.STARTED,
            devices=str(len(rollout.devices)),
            waves=str(len(rollout.waves)),
        )
        self._start_online(rollout, now)
        self._settle(rollout)
        if current is None:
            for listener in self._added_listeners:
                listener(firmware_type)
        self._notify(rollout)
        await self._async_save()
        return rollout

    async def async_pause(self, firmware_type: str) -> None:
        """Start no new device; the started ones are still followed."""
        rollout = self._active(firmware_type)
        if not rollout.pause():
            raise RolloutError("rollout_not_running", firmware_type=firmware_type)
        self._fire(rollout, RolloutEventType.PAUSED)
        self._notify(rollout)
        await self._async_save()

    async def async_resume(self, firmware_type: str) -> None:
        """Let devices start again."""
        rollout = self._active(firmware_type)
        if not rollout.resume():
            raise RolloutError("rollout_not_paused", firmware_type=firmware_type)
        self._fire(rollout, RolloutEventType.RESUMED)
        self._start_online(rollout, dt_util.utcnow())
        self._settle(rollout)
        self._notify(rollout)
        await self._async_save()

    async def async_cancel(self, firmware_type: str) -> None:
        """Stop for good; builds not downloaded yet are withdrawn."""
        rollout = self._active(firmware_type)
        rollout.cancel(dt_util.utcnow())
        self._stopped(rollout, "the rollout was cancelled")
        self._fire(rollout, RolloutEventType.CANCELLED)
        LOGGER.info("Cancelled the rollout of %s", firmware_type)
        self._notify(rollout)
        await self._async_save()

    @callback
    def device_removed(self, key_id: str) -> None:
        """Let a removed device leave its rollout."""
        if (rollout := self._index.get(key_id)) is not None:
            self._leave(rollout, key_id, Reason.REMOVED)
            self._changed(rollout)

    # --- planning ----------------------------------------------------------------------

    def _active(self, firmware_type: str) -> Rollout:
        rollout = self._rollouts.get(firmware_type)
        if rollout is None or not rollout.active:
            raise RolloutError("rollout_not_active", firmware_type=firmware_type)
        return rollout

    def _build(self, firmware_type: str, version: str | None) -> Firmware:
        catalog = self._runtime.firmware.catalog
        build = (
            catalog.get(firmware_type, version)
            if version
            else catalog.latest(firmware_type)
        )
        if build is None:
            raise RolloutError(
                "rollout_unknown_firmware",
                "build",
                firmware_type=firmware_type,
                version=version or "-",
            )
        return build

    def _targets(self, request: RolloutRequest, build: Firmware) -> list[str]:
        """Return the devices to update, those online first, then by name."""
        runtime = self._runtime
        of_type = {
            key_id
            for key_id, device in runtime.devices.items()
            if device.firmware_type == build.firmware_type
        }
        if request.device_ids or request.area_ids or request.label_ids:
            chosen = self._chosen(request, of_type)
        else:
            chosen = of_type
        targets = [
            key_id
            for key_id in chosen
            if runtime.state(key_id).firmware_version != build.version
        ]
        if not targets:
            raise RolloutError(
                "rollout_no_devices",
                firmware_type=build.firmware_type,
                version=build.version,
            )
        return sorted(
            targets,
            key=lambda key_id: (
                not runtime.is_online(key_id),
                runtime.devices[key_id].name.casefold(),
                key_id,
            ),
        )

    def _chosen(self, request: RolloutRequest, of_type: set[str]) -> set[str]:
        """Return the chosen devices, and those of the type in the areas or labels."""
        registry = dr.async_get(self._hass)
        chosen = set()
        for device_id in request.device_ids:
            entry = registry.async_get(device_id)
            key_id = _key_id(entry) if entry else None
            if entry is None or key_id not in self._runtime.devices:
                raise RolloutError(
                    "rollout_unknown_device", "devices", device=device_id
                )
            if key_id not in of_type:
                raise RolloutError(
                    "rollout_wrong_type",
                    "devices",
                    device=entry.name_by_user or entry.name or device_id,
                    firmware_type=request.firmware_type,
                )
            chosen.add(key_id)
        areas, labels = set(request.area_ids), set(request.label_ids)
        if areas or labels:
            for key_id in of_type:
                entry = registry.async_get_device(identifiers={(DOMAIN, key_id)})
                if entry and (entry.area_id in areas or entry.labels & labels):
                    chosen.add(key_id)
        return chosen

    @callback
    def _take_over(
        self, rollout: Rollout, key_id: str, build: Firmware, now: datetime
    ) -> None:
        """Make a device given the build before the rollout follow the rollout.

        Started as soon as it downloads; otherwise the build is withdrawn until
        the device's wave comes.
        """
        firmware = self._runtime.firmware
        if firmware.pending(key_id) != build:
            return
        if firmware.progress(key_id) is not None:
            rollout.start(key_id, now)
        else:
            firmware.withdraw_undownloaded(key_id, build, "it follows the rollout")

    # --- following devices ---------------------------------------------------------------

    @callback
    def _follow(self, key_id: str, rollout: Rollout) -> None:
        self._index[key_id] = rollout
        self._subscriptions[key_id] = self._runtime.async_subscribe(
            key_id, FOLLOWED, partial(self._device_changed, key_id)
        )
        self._arm(rollout, key_id)

    @callback
    def _unfollow(self, key_id: str) -> None:
        self._index.pop(key_id, None)
        if unsubscribe := self._subscriptions.pop(key_id, None):
            unsubscribe()
        self._cancel_timer(key_id)

    @callback
    def _is_followed(self, event_data: dict[str, Any]) -> bool:
        return event_data.get("key_id") in self._index

    @callback
    def _device_changed(self, key_id: str, changes: DeviceChange) -> None:
        """React to a device's request, version, connectivity or profile."""
        if (rollout := self._index.get(key_id)) is None:
            return
        runtime = self._runtime
        step = rollout.devices[key_id].step
        now = dt_util.utcnow()
        device = runtime.devices.get(key_id)
        if DeviceChange.PROFILE in changes and (
            device is None or device.firmware_type != rollout.firmware_type
        ):
            changed = self._leave(rollout, key_id, Reason.TYPE_CHANGED)
        elif step is Step.QUEUED:
            changed = DeviceChange.LAST_SEEN in changes and self._try_start(
                rollout, key_id, now
            )
        elif DeviceChange.FIRMWARE_VERSION in changes:
            changed = self._reported(rollout, key_id, now)
        elif DeviceChange.CONNECTIVITY in changes and not runtime.is_online(key_id):
            changed = self._fail(rollout, key_id, Reason.OFFLINE)
        else:
            changed = False
        if changed:
            self._changed(rollout)

    @callback
    def _device_history(self, event: Event[dict[str, Any]]) -> None:
        """React to a followed device's update being assigned, downloaded or ending."""
        key_id: str = event.data["key_id"]
        rollout = self._index[key_id]  # the event filter let only these through
        kind, version = event.data["type"], event.data.get("version")
        if kind == DeviceEventType.UPDATE_ASSIGNED:
            if version != rollout.version:
                changed = self._leave(rollout, key_id, Reason.REPLACED)
            # Installed by hand ahead of its wave: it is started.
            elif changed := rollout.start(key_id, dt_util.utcnow()):
                self._arm(rollout, key_id)
        elif (
            version != rollout.version
            or rollout.devices[key_id].step is not Step.UPDATING
        ):
            return
        elif kind == DeviceEventType.UPDATE_DOWNLOADED:
            # The firmware manager now waits for the reboot, for the update timeout.
            self._cancel_timer(key_id)
            return
        elif kind == DeviceEventType.UPDATE_FAILED:
            online = self._runtime.is_online(key_id)
            reason = Reason.ROLLED_BACK if online else Reason.NO_REPORT
            changed = self._fail(rollout, key_id, reason)
        elif kind == DeviceEventType.UPDATE_WITHDRAWN:
            changed = self._leave(rollout, key_id, Reason.WITHDRAWN)
        else:
            return
        if changed:
            self._changed(rollout)

    @callback
    def _catalog_changed(self, build: Firmware, added: bool) -> None:
        """Abort a rollout whose build was deleted."""
        rollout = self._rollouts.get(build.firmware_type)
        if (
            added
            or rollout is None
            or (rollout.version, rollout.sha256) != (build.version, build.sha256)
            or not rollout.abort(AbortReason.BUILD_DELETED, dt_util.utcnow())
        ):
            return
        self._aborted(rollout)
        self._changed(rollout)

    # --- a device's steps ----------------------------------------------------------------

    @callback
    def _try_start(self, rollout: Rollout, key_id: str, now: datetime) -> bool:
        """Give the device the build if its wave and the window are open."""
        if not rollout.may_start(key_id, dt_util.now().time()):
            return False
        firmware = self._runtime.firmware
        build = firmware.catalog.get(rollout.firmware_type, rollout.version)
        if build is None or build.sha256 != rollout.sha256:
            return False
        rollout.start(key_id, now)
        if self._runtime.state(key_id).firmware_version == rollout.version:
            self._reported(rollout, key_id, now)
            return True
        if firmware.pending(key_id) != build:
            firmware.assign(key_id, build)
        self._arm(rollout, key_id)
        return True

    @callback
    def _reported(self, rollout: Rollout, key_id: str, now: datetime) -> bool:
        version = self._runtime.state(key_id).firmware_version
        if not rollout.reported(key_id, version, now):
            return False
        if rollout.devices[key_id].step in FINISHED:
            self._finished(rollout, key_id)
        else:
            self._arm(rollout, key_id)
        return True

    @callback
    def _fail(self, rollout: Rollout, key_id: str, reason: Reason) -> bool:
        if not rollout.fail(key_id, reason):
            return False
        self._finished(rollout, key_id)
        return True

    @callback
    def _leave(self, rollout: Rollout, key_id: str, reason: Reason) -> bool:
        if not rollout.skip(key_id, reason):
            return False
        LOGGER.info("%s left the rollout of %s (%s)", key_id, rollout.version, reason)
        self._unfollow(key_id)
        return True

    @callback
    def _finished(self, rollout: Rollout, key_id: str) -> None:
        """Record in its history that a device passed or failed the health gate."""
        self._unfollow(key_id)
        progress = rollout.devices[key_id]
        details = {"firmware_type": rollout.firmware_type, "version": rollout.version}
        if progress.step is Step.HEALTHY:
            event = DeviceEventType.ROLLOUT_PASSED
        else:
            event = DeviceEventType.ROLLOUT_FAILED
            details["why"] = _why(progress.reason)
            LOGGER.warning(
                "%s failed the rollout of %s %s: %s",
                key_id,
                rollout.firmware_type,
                rollout.version,
                progress.reason,
            )
        async_fire_device_event(self._hass, key_id, event, **details)

    # --- timers --------------------------------------------------------------------------

    @callback
    def _arm(self, rollout: Rollout, key_id: str) -> None:
        """Set the timer of the device's step: its update timeout, or its health time."""
        self._cancel_timer(key_id)
        progress = rollout.devices[key_id]
        if progress.step is Step.VERIFYING and progress.reported_at:
            when, action = (
                progress.reported_at + rollout.gate.healthy_for,
                self._health_time_passed,
            )
        elif (
            progress.step is Step.UPDATING
            and progress.started_at
            and self._runtime.firmware.plan(key_id).downloaded_at is None
        ):
            when, action = (
                progress.started_at + self._runtime.settings.update_timeout,
                self._update_timeout_passed,
            )
        else:
            return

        @callback
        def fire(_now: datetime) -> None:
            self._timers.pop(key_id, None)
            action(rollout, key_id)

        self._timers[key_id] = async_track_point_in_utc_time(self._hass, fire, when)

    @callback
    def _cancel_timer(self, key_id: str) -> None:
        if cancel := self._timers.pop(key_id, None):
            cancel()

    @callback
    def _update_timeout_passed(self, rollout: Rollout, key_id: str) -> None:
        """Fail a started device that did not download the build in time."""
        if self._fail(rollout, key_id, Reason.NO_REPORT):
            self._changed(rollout)

    @callback
    def _health_time_passed(self, rollout: Rollout, key_id: str) -> None:
        """Pass an updated device that is still online and on the build."""
        runtime = self._runtime
        if not runtime.is_online(key_id):
            changed = self._fail(rollout, key_id, Reason.OFFLINE)
        elif runtime.state(key_id).firmware_version != rollout.version:
            changed = self._fail(rollout, key_id, Reason.ROLLED_BACK)
        elif changed := rollout.verified(key_id):
            self._finished(rollout, key_id)
        if changed:
            self._changed(rollout)

    @callback
    def _start_window(self, rollout: Rollout) -> None:
        """Start devices when the daily window opens; show it when it closes."""
        if (window := rollout.window) is None:
            return

        @callback
        def opened(_now: datetime) -> None:
            self._start_online(rollout, dt_util.utcnow())
            self._changed(rollout)

        @callback
        def closed(_now: datetime) -> None:
            self._notify(rollout)

        self._window_timers[rollout.firmware_type] = [
            async_track_time_change(
                self._hass,
                action,
                hour=moment.hour,
                minute=moment.minute,
                second=moment.second,
            )
            for action, moment in ((opened, window.start), (closed, window.end))
        ]

    @callback
    def _stop_window(self, firmware_type: str) -> None:
        for cancel in self._window_timers.pop(firmware_type, []):
            cancel()

    # --- the rollout's course ------------------------------------------------------------

    @callback
    def _start_online(self, rollout: Rollout, now: datetime) -> None:
        """Start the devices of the open waves that are online now."""
        for key_id in rollout.startable(dt_util.now().time()):
            if self._runtime.is_online(key_id):
                self._try_start(rollout, key_id, now)

    @callback
    def _changed(self, rollout: Rollout) -> None:
        """Apply the health gate, show the new state and save it soon."""
        self._settle(rollout)
        self._notify(rollout)
        self._save_soon()

    @callback
    def _settle(self, rollout: Rollout) -> None:
        """Open the next waves while the gate lets them, then complete or abort."""
        while True:
            settled = rollout.settle(dt_util.utcnow())
            if settled.aborted:
                self._aborted(rollout)
                return
            for wave in settled.opened:
                self._fire(
                    rollout,
                    RolloutEventType.WAVE_STARTED,
                    wave=str(wave + 1),
                    waves=str(len(rollout.waves)),
                    devices=str(len(rollout.waves[wave])),
                )
            if settled.completed:
                self._stop_window(rollout.firmware_type)
                counts = rollout.counts()
                LOGGER.info("Completed the rollout of %s", rollout.firmware_type)
                self._fire(
                    rollout,
                    RolloutEventType.COMPLETED,
                    healthy=str(counts.healthy),
                    failed=str(counts.failed),
                )
                return
            if not settled.opened:
                return
            self._start_online(rollout, dt_util.utcnow())

    @callback
    def _aborted(self, rollout: Rollout) -> None:
        """Tell the user what failed and why, when the rollout stopped by itself."""
        self._stopped(rollout, "the rollout stopped by itself")
        if rollout.abort_reason is AbortReason.BUILD_DELETED:
            why = f"firmware {rollout.version} was deleted"
            failed = []
        else:
            wave = rollout.aborted_wave or 0
            counts = rollout.counts(wave)
            why = (
                f"{counts.failed} of {counts.devices} devices of wave {wave + 1} "
                f"of {len(rollout.waves)} failed"
            )
            failed = [
                (key_id, progress)
                for key_id, progress in rollout.devices_at(Step.FAILED)
                if progress.wave == wave
            ]
        LOGGER.warning("The rollout of %s stopped: %s", rollout.firmware_type, why)
        self._fire(rollout, RolloutEventType.ABORTED, why=why)
        lines = [
            f"- {self._name(key_id)}: {_why(progress.reason)}"
            for key_id, progress in failed[:ISSUE_DEVICES]
        ]
        if len(failed) > ISSUE_DEVICES:
            lines.append(f"- … and {len(failed) - ISSUE_DEVICES} more")
        async_create_rollout_issue(
            self._hass,
            rollout.firmware_type,
            rollout.version,
            why=why,
            devices="\n".join(lines) or "-",
            untouched=str(rollout.counts().waiting),
        )

    @callback
    def _stopped(self, rollout: Rollout, reason: str) -> None:
        """Stop following the rollout; withdraw the build where no download began."""
        self._stop_window(rollout.firmware_type)
        for key_id in [key for key, value in self._index.items() if value is rollout]:
            self._unfollow(key_id)
        firmware = self._runtime.firmware
        build = firmware.catalog.get(rollout.firmware_type, rollout.version)
        if build is None or build.sha256 != rollout.sha256:
            return
        for key_id, _progress in list(rollout.devices_at(Step.UPDATING)):
            if firmware.withdraw_undownloaded(key_id, build, reason):
                rollout.requeue(key_id)

    @callback
    def _resume_after_start(self, rollout: Rollout, now: datetime) -> None:
        """Follow an active rollout again after Home Assistant (or the hub) started."""
        runtime = self._runtime
        build = runtime.firmware.catalog.get(rollout.firmware_type, rollout.version)
        if build is None or build.sha256 != rollout.sha256:
            rollout.abort(AbortReason.BUILD_DELETED, now)
            self._aborted(rollout)
            self._save_soon()
            return
        for key_id, progress in rollout.devices.items():
            if progress.step in FINISHED:
                continue
            device = runtime.devices.get(key_id)
            if device is None:
                rollout.skip(key_id, Reason.REMOVED)
            elif device.firmware_type != rollout.firmware_type:
                rollout.skip(key_id, Reason.TYPE_CHANGED)
            else:
                if progress.step is Step.UPDATING:
                    # It may have reported the build just before the stop.
                    version = runtime.state(key_id).firmware_version
                    rollout.reported(key_id, version, now)
                self._follow(key_id, rollout)
        self._start_window(rollout)
        self._start_online(rollout, now)
        self._settle(rollout)
        self._save_soon()

    # --- showing and saving --------------------------------------------------------------

    @callback
    def _fire(self, rollout: Rollout, event: RolloutEventType, **details: str) -> None:
        async_fire_rollout_event(
            self._hass, rollout.firmware_type, rollout.version, event, **details
        )

    @callback
    def _notify(self, rollout: Rollout) -> None:
        for listener in list(self._listeners.get(rollout.firmware_type, ())):
            listener()

    def _name(self, key_id: str) -> str:
        device = self._runtime.devices.get(key_id)
        return device.name if device else key_id

    @callback
    def _save_soon(self) -> None:
        """Save within SAVE_DELAY seconds, with whatever else changes until then."""
        if self._save_timer is None:
            self._save_timer = async_call_later(
                self._hass, SAVE_DELAY, self._save_delayed
            )

    @callback
    def _save_delayed(self, _now: datetime) -> None:
        self._save_timer = None
        self._hass.async_create_task(self._async_save())

    async def _async_save(self) -> None:
        """Write every rollout, serialised here in the event loop."""
        if self._save_timer is not None:
            self._save_timer()
            self._save_timer = None
        await self._store.async_save(
            {
                "rollouts": {
                    firmware_type: rollout.to_stored()
                    for firmware_type, rollout in self._rollouts.items()
                }
            }
        )


async def async_remove_store(hass: HomeAssistant) -> None:
    """Delete the rollouts' store (when the hub is removed)."""
    await providore_store(hass, STORE_NAME).async_remove()


def _window(start: time | None, end: time | None) -> DailyWindow | None:
    """Return the daily window of a request; both ends or none."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise RolloutError("rollout_window_incomplete", "window_start")
    if start == end:
        raise RolloutError("rollout_window_empty", "window_end")
    return DailyWindow(start, end)


def _why(reason: Reason | None) -> str:
    """Return why a device failed, in words."""
    return FAILURES.get(reason, str(reason)) if reason else "-"


def _key_id(device: dr.DeviceEntry) -> str | None:
    """Return the key id of a Providore device of the registry."""
    return next(
        (ident for domain, ident in device.identifiers if domain == DOMAIN), None
    )
