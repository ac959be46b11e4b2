"""A fleet rollout as a pure state machine: waves, a health gate per wave, a daily window.

Nothing here knows Home Assistant. The caller says what happened to a device (it was
started, reported a version, failed, left the rollout) and when; `settle` then says
what follows: the next wave opens, the rollout completes, or it aborts because more
than the allowed share of a wave's devices failed. Devices of an open wave start when
the caller finds them online (or when they next call), and only inside the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
import math
from typing import Any, Final

# At most this many wave sizes may be listed (the rest forms one more wave).
MAX_WAVE_SIZES: Final = 10
MAX_WAVE_COUNT: Final = 100_000
# What a running rollout shows while its window is closed.
WAITING_FOR_WINDOW: Final = "waiting_for_window"


class RolloutState(StrEnum):
    """Where a rollout is; RUNNING and PAUSED are active."""

    RUNNING = "running"
    PAUSED = "paused"
    ABORTED = "aborted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Step(StrEnum):
    """How far one device of a rollout has come."""

    # Not started: it waits for its wave, the window and its next call.
    QUEUED = "queued"
    # The build is assigned; the device must report it within the update timeout.
    UPDATING = "updating"
    # It reports the build and must stay online for the health gate's time.
    VERIFYING = "verifying"
    HEALTHY = "healthy"
    FAILED = "failed"
    # It left the rollout (removed, another firmware type, its update replaced).
    SKIPPED = "skipped"


IN_PROGRESS: Final = frozenset({Step.UPDATING, Step.VERIFYING})
FINISHED: Final = frozenset({Step.HEALTHY, Step.FAILED, Step.SKIPPED})


class Reason(StrEnum):
    """Why a device failed the health gate, or left the rollout."""

    # Failures: they count against the wave's gate.
    ROLLED_BACK = "rolled_back"
    NO_REPORT = "no_report"
    OFFLINE = "offline"
    # Departures: they do not count.
    WITHDRAWN = "withdrawn"
    REPLACED = "replaced"
    REMOVED = "removed"
    TYPE_CHANGED = "type_changed"


class AbortReason(StrEnum):
    """Why a rollout stopped by itself."""

    FAILURES = "failures"
    BUILD_DELETED = "build_deleted"


class InvalidWavesError(ValueError):
    """The wave sizes cannot be read."""


@dataclass(frozen=True, slots=True)
class WaveSize:
    """A wave's size: a number of devices, or a percentage of all targeted devices."""

    count: int
    percent: bool = False

    def of(self, total: int) -> int:
        """Return how many devices the wave takes from `total` (at least one)."""
        if not self.percent:
            return self.count
        return max(1, math.ceil(total * self.count / 100))

    def __str__(self) -> str:
        """Write the size as it is typed."""
        return f"{self.count}%" if self.percent else str(self.count)


def parse_waves(text: str) -> tuple[WaveSize, ...]:
    """Read wave sizes such as "1, 10%": devices, or percent of the targeted devices."""
    sizes = []
    for token in (part.strip() for part in text.split(",")):
        percent = token.endswith("%")
        number = token.removesuffix("%").strip()
        if not number.isascii() or not number.isdigit():
            raise InvalidWavesError(token)
        count = int(number)
        if count < 1 or count > (100 if percent else MAX_WAVE_COUNT):
            raise InvalidWavesError(token)
        sizes.append(WaveSize(count, percent))
    if len(sizes) > MAX_WAVE_SIZES:
        raise InvalidWavesError(text)
    return tuple(sizes)


def plan_waves(key_ids: Sequence[str], sizes: Sequence[WaveSize]) -> list[list[str]]:
    """Split devices, in order, into waves; the devices left over form the last wave."""
    waves: list[list[str]] = []
    rest = list(key_ids)
    for size in sizes:
        if not rest:
            break
        taken = min(size.of(len(key_ids)), len(rest))
        waves.append(rest[:taken])
        rest = rest[taken:]
    if rest:
        waves.append(rest)
    return waves


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """The time of day new devices may start, in the hub's time zone; it may span midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        """Refuse a window without length."""
        if self.start == self.end:
            raise ValueError("a window needs a start and an end that differ")

    def contains(self, moment: time) -> bool:
        """Return whether `moment` (a local time of day) is inside the window."""
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        """Write the window as 02:00-05:00."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class HealthGate:
    """What each wave must pass before the next one starts."""

    # How long an updated device must stay online on the new build.
    healthy_for: timedelta
    # The rollout aborts when more than this share of a wave's devices failed.
    max_failed_percent: int

    def broken(self, failed: int, devices: int) -> bool:
        """Return whether `failed` of `devices` is more than the allowed share."""
        return failed * 100 > self.max_failed_percent * devices


@dataclass(slots=True)
class DeviceProgress:
    """One device's place in a rollout."""

    wave: int
    step: Step = Step.QUEUED
    reason: Reason | None = None
    started_at: datetime | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """How many devices of a wave (or of the whole rollout) are at each step."""

    devices: int
    waiting: int
    updating: int
    healthy: int
    failed: int
    skipped: int

    @classmethod
    def of(cls, steps: Mapping[Step, int]) -> WaveCounts:
        """Count a tally of steps."""
        return cls(
            devices=sum(steps.values()),
            waiting=steps.get(Step.QUEUED, 0),
            updating=steps.get(Step.UPDATING, 0) + steps.get(Step.VERIFYING, 0),
            healthy=steps.get(Step.HEALTHY, 0),
            failed=steps.get(Step.FAILED, 0),
            skipped=steps.get(Step.SKIPPED, 0),
        )


@dataclass(frozen=True, slots=True)
class Settled:
    """What `Rollout.settle` changed: waves opened, or the rollout ended."""

    opened: tuple[int, ...] = ()
    completed: bool = False
    aborted: bool = False


@dataclass(slots=True, kw_only=True)
class Rollout:
    """One rollout of a firmware build to a set of devices, wave by wave."""

    firmware_type: str
    version: str
    sha256: str
    gate: HealthGate
    window: DailyWindow | None
    waves: list[list[str]]
    devices: dict[str, DeviceProgress]
    started_at: datetime
    state: RolloutState = RolloutState.RUNNING
    # The newest wave whose devices may start (0-based); earlier ones stay open.
    open_wave: int = 0
    ended_at: datetime | None = None
    abort_reason: AbortReason | None = None
    aborted_wave: int | None = None
    # Each wave's devices by step, kept in step with `devices`.
    _tally: list[Counter[Step]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Count the devices of each wave."""
        self._tally = [Counter() for _ in self.waves]
        for progress in self.devices.values():
            self._tally[progress.wave][progress.step] += 1

    @classmethod
    def plan(
        cls,
        *,
        firmware_type: str,
        version: str,
        sha256: str,
        key_ids: Sequence[str],
        sizes: Sequence[WaveSize],
        gate: HealthGate,
        window: DailyWindow | None,
        now: datetime,
    ) -> Rollout:
        """Plan a rollout to `key_ids`, in that order, split into waves of `sizes`."""
        waves = plan_waves(key_ids, sizes)
        return cls(
            firmware_type=firmware_type,
            version=version,
            sha256=sha256,
            gate=gate,
            window=window,
            waves=waves,
            devices={
                key_id: DeviceProgress(wave=index)
                for index, wave in enumerate(waves)
                for key_id in wave
            },
            started_at=now,
        )

    # --- what the rollout shows ------------------------------------------------

    @property
    def active(self) -> bool:
        """Return whether the rollout still follows its devices."""
        return self.state in (RolloutState.RUNNING, RolloutState.PAUSED)

    def in_window(self, local: time) -> bool:
        """Return whether new devices may start at this local time of day."""
        return self.window is None or self.window.contains(local)

    def status(self, local: time) -> str:
        """Return the state to show: a running rollout may be waiting for its window."""
        if self.state is RolloutState.RUNNING and not self.in_window(local):
            return WAITING_FOR_WINDOW
        return self.state.value

    def counts(self, wave: int | None = None) -> WaveCounts:
        """Return the counts of one wave, or of the whole rollout."""
        if wave is not None:
            return WaveCounts.of(self._tally[wave])
        return WaveCounts.of(sum(self._tally, Counter[Step]()))

    def devices_at(self, step: Step) -> Iterator[tuple[str, DeviceProgress]]:
        """Yield the devices at `step`, wave by wave."""
        for wave in self.waves:
            for key_id in wave:
                if (progress := self.devices[key_id]).step is step:
                    yield key_id, progress

    def startable(self, local: time) -> list[str]:
        """Return the queued devices that may start now, were they online."""
        if self.state is not RolloutState.RUNNING or not self.in_window(local):
            return []
        return [
            key_id
            for wave in self.waves[: self.open_wave + 1]
            for key_id in wave
            if self.devices[key_id].step is Step.QUEUED
        ]

    def may_start(self, key_id: str, local: time) -> bool:
        """Return whether a device may start now: its wave is open, the window too."""
        progress = self.devices.get(key_id)
        return (
            progress is not None
            and progress.step is Step.QUEUED
            and self.state is RolloutState.RUNNING
            and progress.wave <= self.open_wave
            and self.in_window(local)
        )

    # --- what happens to a device ------------------------------------------------

    def start(self, key_id: str, now: datetime) -> bool:
        """Note that the device was given the build."""
        if not self._move(key_id, {Step.QUEUED}, Step.UPDATING):
            return False
        self.devices[key_id].started_at = now
        return True

    def reported(self, key_id: str, version: str | None, now: datetime) -> bool:
        """Note the version a started device reports; return whether its step moved.

        The build moves it on to verifying (or at once to healthy, when the gate
        asks for no time online); another version while verifying fails it.
        """
        progress = self.devices[key_id]
        if progress.step is Step.UPDATING and version == self.version:
            self._move(key_id, {Step.UPDATING}, Step.VERIFYING)
            progress.reported_at = now
            if not self.gate.healthy_for:
                self._move(key_id, {Step.VERIFYING}, Step.HEALTHY)
            return True
        if progress.step is Step.VERIFYING and version != self.version:
            return self.fail(key_id, Reason.ROLLED_BACK)
        return False

    def verified(self, key_id: str) -> bool:
        """Note that the device stayed online on the build for the gate's time."""
        return self._move(key_id, {Step.VERIFYING}, Step.HEALTHY)

    def fail(self, key_id: str, reason: Reason) -> bool:
        """Note that a started device failed the health gate."""
        if not self._move(key_id, IN_PROGRESS, Step.FAILED):
            return False
        self.devices[key_id].reason = reason
        return True

    def skip(self, key_id: str, reason: Reason) -> bool:
        """Note that a device left the rollout before it finished."""
        if not self._move(key_id, {Step.QUEUED, *IN_PROGRESS}, Step.SKIPPED):
            return False
        self.devices[key_id].reason = reason
        return True

    def requeue(self, key_id: str) -> bool:
        """Put a started device back (its build was withdrawn before it downloaded)."""
        if not self._move(key_id, {Step.UPDATING}, Step.QUEUED):
            return False
        self.devices[key_id].started_at = None
        return True

    def _move(self, key_id: str, allowed: AbstractSet[Step], to: Step) -> bool:
        progress = self.devices.get(key_id)
        if progress is None or progress.step not in allowed:
            return False
        tally = self._tally[progress.wave]
        tally[progress.step] -= 1
        tally[to] += 1
        progress.step = to
        return True

    # --- what happens to the rollout ---------------------------------------------

    def pause(self) -> bool:
        """Start no new device until resumed; started devices are still followed."""
        if self.state is not RolloutState.RUNNING:
            return False
        self.state = RolloutState.PAUSED
        return True

    def resume(self) -> bool:
        """Let devices start again."""
        if self.state is not RolloutState.PAUSED:
            return False
        self.state = RolloutState.RUNNING
        return True

    def cancel(self, now: datetime) -> bool:
        """Stop for good: no device starts any more."""
        return self._end(RolloutState.CANCELLED, now)

    def abort(
        self, reason: AbortReason, now: datetime, wave: int | None = None
    ) -> bool:
        """Stop by itself: too many failures in `wave`, or the build is gone."""
        if not self._end(RolloutState.ABORTED, now):
            return False
        self.abort_reason = reason
        self.aborted_wave = wave
        return True

    def _end(self, state: RolloutState, now: datetime) -> bool:
        if not self.active:
            return False
        self.state = state
        self.ended_at = now
        return True

    def settle(self, now: datetime) -> Settled:
        """Apply the health gate: abort, open the next waves, or complete."""
        if not self.active:
            return Settled()
        for wave in range(self.open_wave + 1):
            counts = self.counts(wave)
            if self.gate.broken(counts.failed, counts.devices):
                self.abort(AbortReason.FAILURES, now, wave)
                return Settled(aborted=True)
        if self.state is not RolloutState.RUNNING:
            return Settled()
        opened = []
        while self.open_wave + 1 < len(self.waves) and self._passed(self.open_wave):
            self.open_wave += 1
            opened.append(self.open_wave)
        counts = self.counts()
        if (
            self.open_wave + 1 == len(self.waves)
            and counts.waiting == counts.updating == 0
        ):
            self._end(RolloutState.COMPLETED, now)
            return Settled(opened=tuple(opened), completed=True)
        return Settled(opened=tuple(opened))

    def _passed(self, wave: int) -> bool:
        """Return whether a wave let the next one start.

        None of its started devices may still be in progress, and at least one
        must have passed, unless none is left waiting (devices that are offline
        start when they next call, even after later waves started).
        """
        counts = self.counts(wave)
        return counts.updating == 0 and (counts.healthy > 0 or counts.waiting == 0)

    # --- storage -------------------------------------------------------------------

    def to_stored(self) -> dict[str, Any]:
        """Serialise for the store."""
        return {
            "firmware_type": self.firmware_type,
            "version": self.version,
            "sha256": self.sha256,
            "healthy_for": self.gate.healthy_for.total_seconds(),
            "max_failed_percent": self.gate.max_failed_percent,
            "window": None
            if self.window is None
            else {
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
            },
            "waves": self.waves,
            "devices": {
                key_id: {
                    "step": progress.step.value,
                    "reason": progress.reason,
                    "started_at": _iso(progress.started_at),
                    "reported_at": _iso(progress.reported_at),
                }
                for key_id, progress in self.devices.items()
            },
            "started_at": self.started_at.isoformat(),
            "state": self.state.value,
            "open_wave": self.open_wave,
            "ended_at": _iso(self.ended_at),
            "abort_reason": self.abort_reason,
            "aborted_wave": self.aborted_wave,
        }

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Rollout:
        """Read a rollout this class serialised."""
        waves: list[list[str]] = stored["waves"]
        wave_of = {key_id: index for index, wave in enumerate(waves) for key_id in wave}
        window = stored["window"]
        return cls(
            firmware_type=stored["firmware_type"],
            version=stored["version"],
            sha256=stored["sha256"],
            gate=HealthGate(
                healthy_for=timedelta(seconds=stored["healthy_for"]),
                max_failed_percent=stored["max_failed_percent"],
            ),
            window=None
            if window is None
            else DailyWindow(
                time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
            ),
            waves=waves,
            devices={
                key_id: DeviceProgress(
                    wave=wave_of[key_id],
                    step=Step(device["step"]),
                    reason=Reason(device["reason"]) if device["reason"] else None,
                    started_at=_parse(device["started_at"]),
                    reported_at=_parse(device["reported_at"]),
                )
                for key_id, device in stored["devices"].items()
            },
            started_at=datetime.fromisoformat(stored["started_at"]),
            state=RolloutState(stored["state"]),
            open_wave=stored["open_wave"],
            ended_at=_parse(stored["ended_at"]),
            abort_reason=AbortReason(stored["abort_reason"])
            if stored["abort_reason"]
            else None,
            aborted_wave=stored["aborted_wave"],
        )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
