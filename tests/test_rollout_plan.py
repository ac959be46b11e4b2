"""The rollout state machine on its own: waves, the health gate, the window, storage."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from custom_components.providore.rollout_plan import (
    AbortReason,
    DailyWindow,
    HealthGate,
    InvalidWavesError,
    Reason,
    Rollout,
    RolloutState,
    Settled,
    Step,
    WaveCounts,
    WaveSize,
    parse_waves,
    plan_waves,
)

NOW = datetime(2025, 5, 1, 3, 0, tzinfo=UTC)
NOON = time(12, 0)
DEVICES = [f"device-{number:02d}" for number in range(20)]


def _rollout(
    key_ids: list[str] = DEVICES,
    waves: str = "1, 10%",
    max_failed_percent: int = 0,
    window: DailyWindow | None = None,
) -> Rollout:
    return Rollout.plan(
        firmware_type="sensor",
        version="1.1.0",
        sha256="ab" * 32,
        key_ids=key_ids,
        sizes=parse_waves(waves),
        gate=HealthGate(timedelta(minutes=5), max_failed_percent),
        window=window,
        now=NOW,
    )


def _update(rollout: Rollout, key_id: str) -> None:
    """Take a device through a healthy update."""
    assert rollout.start(key_id, NOW)
    assert rollout.reported(key_id, rollout.version, NOW)
    assert rollout.verified(key_id)


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        ("1", (WaveSize(1),)),
        ("1, 10%, 50%", (WaveSize(1), WaveSize(10, True), WaveSize(50, True))),
        (" 2 ,100 % ", (WaveSize(2), WaveSize(100, True))),
    ],
)
def test_wave_sizes_are_read(text: str, sizes: tuple[WaveSize, ...]) -> None:
    """Counts and percentages, separated by commas, spaces allowed."""
    assert parse_waves(text) == sizes
    assert ", ".join(str(size) for size in sizes).replace(" ", "") == text.replace(
        " ", ""
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "-1",
        "1,,2",
        "101%",
        "0%",
        "1.5",
        "ten",
        "1e3",
        "٣",
        ", ".join("1" * 11),
    ],
)
def test_unreadable_wave_sizes_are_refused(text: str) -> None:
    """Nothing that is not a whole count or percentage in range, and not too many."""
    with pytest.raises(InvalidWavesError):
        parse_waves(text)


def test_waves_take_counts_and_percentages_and_the_rest() -> None:
    """1 canary, 10 % of 20 = 2, and the 17 left form the last wave."""
    waves = plan_waves(DEVICES, parse_waves("1, 10%"))
    assert [len(wave) for wave in waves] == [1, 2, 17]
    assert [key_id for wave in waves for key_id in wave] == DEVICES


def test_waves_never_exceed_the_devices() -> None:
    """Sizes past the fleet are dropped; a percentage takes at least one device."""
    assert plan_waves(["a", "b"], parse_waves("1, 1%, 50%")) == [["a"], ["b"]]
    assert plan_waves(["a", "b", "c"], parse_waves("5")) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        (time(2), time(5), [time(2), time(4, 59)], [time(5), time(1, 59), NOON]),
        (time(22), time(4), [time(23), time(0), time(3, 59)], [time(4), NOON]),
    ],
)
def test_daily_window(
    start: time, end: time, inside: list[time], outside: list[time]
) -> None:
    """The window includes its start, excludes its end, and may span midnight."""
    window = DailyWindow(start, end)
    assert all(window.contains(moment) for moment in inside)
    assert not any(window.contains(moment) for moment in outside)
    assert str(window) == f"{start:%H:%M}-{end:%H:%M}"


def test_a_window_needs_length() -> None:
    """Start and end must differ."""
    with pytest.raises(ValueError, match="differ"):
        DailyWindow(time(2), time(2))


def test_healthy_rollout_goes_wave_by_wave() -> None:
    """A wave opens once the one before has passed; then the rollout completes."""
    rollout = _rollout()
    assert rollout.startable(NOON) == DEVICES[:1]
    _update(rollout, DEVICES[0])
    assert rollout.settle(NOW) == Settled(opened=(1,))
    assert rollout.startable(NOON) == DEVICES[1:3]
    for key_id in DEVICES[1:3]:
        rollout.start(key_id, NOW)
    assert rollout.settle(NOW) == Settled()
    for key_id in DEVICES[1:3]:
        rollout.reported(key_id, rollout.version, NOW)
        rollout.verified(key_id)
    assert rollout.settle(NOW) == Settled(opened=(2,))
    for key_id in DEVICES[3:]:
        _update(rollout, key_id)
    assert rollout.settle(NOW + timedelta(hours=1)) == Settled(completed=True)
    assert rollout.state is RolloutState.COMPLETED
    assert rollout.ended_at == NOW + timedelta(hours=1)
    assert rollout.counts() == WaveCounts(20, 0, 0, 20, 0, 0)
    assert rollout.settle(NOW) == Settled()


def test_a_failed_canary_aborts_before_the_second_wave() -> None:
    """One failure of one device is more than 0 %: no other device is reached."""
    rollout = _rollout()
    rollout.start(DEVICES[0], NOW)
    assert rollout.fail(DEVICES[0], Reason.ROLLED_BACK)
    assert rollout.settle(NOW) == Settled(aborted=True)
    assert rollout.state is RolloutState.ABORTED
    assert (rollout.abort_reason, rollout.aborted_wave) == (AbortReason.FAILURES, 0)
    assert rollout.open_wave == 0
    assert rollout.startable(NOON) == []
    assert not rollout.may_start(DEVICES[1], NOON)
    assert rollout.counts().waiting == 19


def test_failures_within_the_share_let_the_rollout_go_on() -> None:
    """10 % allowed: 1 failure in a wave of 10 passes, 2 abort."""
    rollout = _rollout(DEVICES, "10", max_failed_percent=10)
    for key_id in DEVICES[:9]:
        _update(rollout, key_id)
    rollout.start(DEVICES[9], NOW)
    rollout.fail(DEVICES[9], Reason.OFFLINE)
    assert rollout.settle(NOW) == Settled(opened=(1,))
    rollout.start(DEVICES[10], NOW)
    rollout.start(DEVICES[11], NOW)
    rollout.fail(DEVICES[10], Reason.NO_REPORT)
    assert rollout.settle(NOW) == Settled()
    rollout.fail(DEVICES[11], Reason.NO_REPORT)
    assert rollout.settle(NOW) == Settled(aborted=True)
    assert rollout.aborted_wave == 1


def test_offline_devices_do_not_hold_a_passed_wave_back() -> None:
    """A wave passes with one healthy device; the offline ones start later."""
    rollout = _rollout(DEVICES[:6], "3")
    _update(rollout, DEVICES[0])
    assert rollout.settle(NOW) == Settled(opened=(1,))
    assert rollout.may_start(DEVICES[1], NOON)
    assert DEVICES[1] in rollout.startable(NOON)


def test_a_wave_with_nothing_started_waits() -> None:
    """Without a healthy device, queued devices keep the next wave closed."""
    rollout = _rollout(DEVICES[:3], "1")
    assert rollout.settle(NOW) == Settled()
    assert rollout.open_wave == 0


def test_a_wave_that_was_all_skipped_passes() -> None:
    """Devices that left the rollout do not block it."""
    rollout = _rollout(DEVICES[:3], "1")
    assert rollout.skip(DEVICES[0], Reason.REMOVED)
    assert rollout.settle(NOW) == Settled(opened=(1,))
    assert rollout.devices[DEVICES[0]].reason is Reason.REMOVED


def test_a_verifying_device_that_reports_another_version_failed() -> None:
    """Back on the old version after reporting the new one: rolled back."""
    rollout = _rollout(DEVICES[:2])
    rollout.start(DEVICES[0], NOW)
    assert not rollout.reported(DEVICES[0], "1.0.0", NOW)
    assert rollout.reported(DEVICES[0], "1.1.0", NOW)
    assert rollout.devices[DEVICES[0]].step is Step.VERIFYING
    assert rollout.reported(DEVICES[0], "1.0.0", NOW)
    assert rollout.devices[DEVICES[0]].step is Step.FAILED
    assert rollout.devices[DEVICES[0]].reason is Reason.ROLLED_BACK


def test_a_gate_without_time_online_passes_on_the_report() -> None:
    """Healthy for no time: reporting the build is enough."""
    rollout = Rollout.plan(
        firmware_type="sensor",
        version="1.1.0",
        sha256="ab" * 32,
        key_ids=DEVICES[:1],
        sizes=(),
        gate=HealthGate(timedelta(0), 0),
        window=None,
        now=NOW,
    )
    rollout.start(DEVICES[0], NOW)
    assert rollout.reported(DEVICES[0], "1.1.0", NOW)
    assert rollout.devices[DEVICES[0]].step is Step.HEALTHY
    assert rollout.settle(NOW) == Settled(completed=True)


def test_steps_only_move_forward() -> None:
    """A transition from the wrong step does nothing."""
    rollout = _rollout(DEVICES[:2])
    key_id = DEVICES[0]
    assert not rollout.verified(key_id)
    assert not rollout.fail(key_id, Reason.OFFLINE)
    assert not rollout.requeue(key_id)
    assert rollout.start(key_id, NOW)
    assert not rollout.start(key_id, NOW)
    assert rollout.requeue(key_id)
    assert rollout.devices[key_id].started_at is None
    assert not rollout.skip("unknown", Reason.REMOVED)


def test_pause_resume_and_cancel() -> None:
    """Paused: nothing starts; cancelled: for good."""
    rollout = _rollout()
    assert rollout.pause()
    assert not rollout.pause()
    assert rollout.startable(NOON) == []
    assert not rollout.may_start(DEVICES[0], NOON)
    assert rollout.active
    assert rollout.resume()
    assert not rollout.resume()
    assert rollout.may_start(DEVICES[0], NOON)
    assert rollout.cancel(NOW)
    assert not rollout.cancel(NOW)
    assert not rollout.active
    assert rollout.state is RolloutState.CANCELLED
    assert not rollout.abort(AbortReason.BUILD_DELETED, NOW)


def test_a_paused_rollout_still_aborts() -> None:
    """The health gate keeps watching the started devices."""
    rollout = _rollout()
    rollout.start(DEVICES[0], NOW)
    rollout.pause()
    rollout.fail(DEVICES[0], Reason.OFFLINE)
    assert rollout.settle(NOW) == Settled(aborted=True)


def test_a_paused_rollout_opens_no_wave() -> None:
    """A passed wave waits for the resume."""
    rollout = _rollout()
    _update(rollout, DEVICES[0])
    rollout.pause()
    assert rollout.settle(NOW) == Settled()
    rollout.resume()
    assert rollout.settle(NOW) == Settled(opened=(1,))


def test_the_window_holds_devices_back() -> None:
    """Outside the window nothing may start."""
    rollout = _rollout(window=DailyWindow(time(2), time(5)))
    assert rollout.startable(NOON) == []
    assert not rollout.may_start(DEVICES[0], NOON)
    assert rollout.may_start(DEVICES[0], time(3))
    assert rollout.status(NOON) == "waiting_for_window"
    assert rollout.status(time(3)) == "running"
    rollout.pause()
    assert rollout.status(NOON) == "paused"


def test_a_stored_rollout_reads_back_the_same() -> None:
    """Every field, every step and the counts survive storage."""
    rollout = _rollout(window=DailyWindow(time(22), time(4)), max_failed_percent=25)
    _update(rollout, DEVICES[0])
    rollout.settle(NOW)
    rollout.start(DEVICES[1], NOW)
    rollout.start(DEVICES[2], NOW)
    rollout.reported(DEVICES[2], "1.1.0", NOW + timedelta(seconds=30))
    rollout.skip(DEVICES[5], Reason.TYPE_CHANGED)
    rollout.pause()
    restored = Rollout.from_stored(rollout.to_stored())
    assert restored == rollout
    assert restored.counts(1) == rollout.counts(1) == WaveCounts(2, 0, 2, 0, 0, 0)
    assert restored.counts() == WaveCounts(20, 16, 2, 1, 0, 1)
    rollout.abort(AbortReason.FAILURES, NOW, 1)
    assert Rollout.from_stored(rollout.to_stored()).aborted_wave == 1
