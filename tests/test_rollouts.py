"""Fleet rollouts with simulated devices: waves, the health gate, the window, restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.providore import logbook
from custom_components.providore.const import DOMAIN
from custom_components.providore.device_events import EVENT_DEVICE
from custom_components.providore.diagnostics import (
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)
from custom_components.providore.rollout_events import EVENT_ROLLOUT, describe
from custom_components.providore.rollout_plan import Reason, Step

from .conftest import FIRMWARE_TYPE
from .fleet import (
    NEW_VERSION,
    OLD_VERSION,
    ONLINE_INTERVAL,
    ROLLOUT_FAILED,
    ROLLOUT_PROGRESS,
    ROLLOUT_WAVE,
    UPDATE_TIMEOUT,
    Fleet,
    async_set_up_fleet,
    fleet_entry,
    key_id_of,
    store_secrets,
)

HEALTHY_FOR = 300
ISSUE_ID = f"rollout_aborted_{FIRMWARE_TYPE}"


@pytest.fixture
async def fleet(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    request: pytest.FixtureRequest,
) -> Fleet:
    """Return a hub of 20 online devices running 1.0.0, with build 1.1.0 uploaded."""
    fleet = await async_set_up_fleet(
        hass, hass_storage, freezer, getattr(request, "param", 20)
    )
    await fleet.upload()
    fleet.call_all()
    return fleet


async def _pass_wave(fleet: Fleet, key_ids: list[str]) -> None:
    """Update the devices, and keep the whole fleet online through the health time."""
    for key_id in key_ids:
        fleet.update(key_id)
    await fleet.advance(HEALTHY_FOR / 2)
    fleet.call_all()
    await fleet.advance(HEALTHY_FOR / 2)


def _step(fleet: Fleet, key_id: str) -> Step:
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    return rollout.devices[key_id].step


def _rollout_lines(hass: HomeAssistant, events: list[Any]) -> list[str]:
    described: dict[tuple[str, str], Any] = {}
    logbook.async_describe_events(
        hass, lambda domain, event, fn: described.__setitem__((domain, event), fn)
    )
    describe_event = described[(DOMAIN, EVENT_ROLLOUT)]
    return [describe_event(event)["message"] for event in events]


async def test_a_healthy_rollout_of_20_devices_in_three_waves_completes(
    hass: HomeAssistant, fleet: Fleet, device_registry: dr.DeviceRegistry
) -> None:
    """One canary, then 10 %, then the rest; each wave after the one before passed."""
    rollout_events = async_capture_events(hass, EVENT_ROLLOUT)
    device_events = async_capture_events(hass, EVENT_DEVICE)
    await fleet.start(waves="1, 10%", healthy_for={"seconds": HEALTHY_FOR})

    canary = fleet.pending()
    assert len(canary) == 1
    assert fleet.state().state == "running"
    assert fleet.state(ROLLOUT_WAVE).state == "1/3"
    fleet.call_all()  # the others call, and are not started
    assert fleet.pending() == canary

    fleet.update(canary[0])
    assert _step(fleet, canary[0]) is Step.VERIFYING
    assert fleet.pending() == []  # not before the canary stayed online long enough
    await _pass_wave(fleet, [])
    second = fleet.pending()
    assert len(second) == 2
    assert fleet.state(ROLLOUT_WAVE).state == "2/3"
    assert fleet.state(ROLLOUT_PROGRESS).state == "5"

    await _pass_wave(fleet, second)
    third = fleet.pending()
    assert len(third) == 17
    assert set(canary + second + third) == {key_id_of(n) for n in range(1, 21)}
    await _pass_wave(fleet, third)

    state = fleet.state()
    assert state.state == "completed"
    assert state.attributes["updated"] == 20
    assert [wave["devices"] for wave in state.attributes["wave_counts"]] == [1, 2, 17]
    assert fleet.state(ROLLOUT_WAVE).state == "3/3"
    assert fleet.state(ROLLOUT_PROGRESS).state == "100"
    assert fleet.state(ROLLOUT_FAILED).state == "0"
    assert fleet.state(ROLLOUT_FAILED).attributes["failed_devices"] == []
    assert not fleet.runtime.rollouts.follows(canary[0])
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID) is None

    assert _rollout_lines(hass, rollout_events) == [
        f"started rolling out {FIRMWARE_TYPE} firmware {NEW_VERSION} "
        "to 20 devices in 3 waves",
        f"started wave 2 of 3 of the {FIRMWARE_TYPE} rollout (2 devices)",
        f"started wave 3 of 3 of the {FIRMWARE_TYPE} rollout (17 devices)",
        f"completed the {FIRMWARE_TYPE} rollout of firmware {NEW_VERSION}: "
        "20 devices updated, 0 failed",
    ]
    hub = device_registry.async_get_device(identifiers={(DOMAIN, "hub:providore")})
    assert hub is not None
    assert {event.data["device_id"] for event in rollout_events} == {hub.id}
    passed = [e for e in device_events if e.data["type"] == "rollout_passed"]
    assert len(passed) == 20


async def test_a_canary_that_fails_to_boot_aborts_before_the_second_wave(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """The canary downloads, reboots back into the old version: nobody else is touched."""
    rollout_events = async_capture_events(hass, EVENT_ROLLOUT)
    await fleet.start(waves="1, 10%", max_failed_percent=10)
    (canary,) = fleet.pending()
    fleet.download(canary)
    fleet.call(canary)  # it came back on 1.0.0
    await fleet.advance(UPDATE_TIMEOUT / 2)
    fleet.call_all()
    await fleet.advance(UPDATE_TIMEOUT / 2)

    assert fleet.state().state == "aborted"
    assert fleet.state().attributes["abort_reason"] == "failures"
    assert fleet.pending() == []
    assert all(
        version == OLD_VERSION
        for key_id, version in fleet.versions.items()
        if key_id != canary
    )
    failed = fleet.state(ROLLOUT_FAILED)
    assert failed.state == "1"
    assert failed.attributes["failed_devices"] == [
        {"device": "Sensor 01", "key_id": canary, "wave": 1, "reason": "rolled_back"}
    ]
    issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_placeholders == {
        "firmware_type": FIRMWARE_TYPE,
        "version": NEW_VERSION,
        "why": "1 of 1 devices of wave 1 of 3 failed",
        "devices": "- Sensor 01: it went back to another version or could not "
        "boot the build",
        "untouched": "19",
    }
    assert _rollout_lines(hass, rollout_events)[-1] == (
        f"stopped the {FIRMWARE_TYPE} rollout by itself: "
        "1 of 1 devices of wave 1 of 3 failed"
    )
    # Nothing starts any more, whoever calls.
    fleet.call_all()
    assert fleet.pending() == []


async def test_a_canary_that_never_downloads_fails_after_the_update_timeout(
    fleet: Fleet,
) -> None:
    """Online but not fetching the build: no report within the update timeout."""
    await fleet.start(waves="1")
    (canary,) = fleet.pending()
    await fleet.advance(UPDATE_TIMEOUT / 2)
    fleet.call_all()
    await fleet.advance(UPDATE_TIMEOUT / 2)
    assert fleet.state().state == "aborted"
    assert fleet.state(ROLLOUT_FAILED).attributes["failed_devices"][0]["reason"] == (
        "no_report"
    )
    # It was reached: it keeps the build (it may still fetch it); the rest does not.
    assert _step(fleet, canary) is Step.FAILED
    assert fleet.pending() == [canary]


async def test_a_device_that_goes_offline_while_verified_fails(fleet: Fleet) -> None:
    """Reporting the build is not enough: the device must stay online."""
    await fleet.start(waves="1", healthy_for={"seconds": ONLINE_INTERVAL * 2})
    (canary,) = fleet.pending()
    fleet.update(canary)
    others = [key_id for key_id in fleet.key_ids if key_id != canary]
    await fleet.advance(ONLINE_INTERVAL / 2)
    fleet.call_all(others)
    await fleet.advance(ONLINE_INTERVAL / 2 + 1)
    assert fleet.state().state == "aborted"
    assert fleet.state(ROLLOUT_FAILED).attributes["failed_devices"][0]["reason"] == (
        "offline"
    )


async def test_a_device_that_rolls_back_while_verified_fails(fleet: Fleet) -> None:
    """Back on the old version before the health time ends."""
    await fleet.start(waves="1", healthy_for={"seconds": HEALTHY_FOR})
    (canary,) = fleet.pending()
    fleet.update(canary)
    fleet.call(canary, OLD_VERSION)
    assert _step(fleet, canary) is Step.FAILED
    assert fleet.state().state == "aborted"


async def test_failures_within_the_allowed_share_let_the_rollout_complete(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """One of ten failing is 10 %, not more than 10 %: the rollout goes on."""
    await fleet.start(waves="10", max_failed_percent=10, healthy_for={"seconds": 0})
    first = fleet.pending()
    assert len(first) == 10
    for key_id in first[1:]:
        fleet.update(key_id)
    fleet.call(first[0], OLD_VERSION)
    fleet.download(first[0])  # downloaded, but never boots it
    await fleet.advance(UPDATE_TIMEOUT / 2)
    fleet.call_all()
    await fleet.advance(UPDATE_TIMEOUT / 2)
    second = fleet.pending()
    assert len(second) == 10
    for key_id in second:
        fleet.update(key_id)
    await hass.async_block_till_done()
    state = fleet.state()
    assert state.state == "completed"
    assert (state.attributes["updated"], state.attributes["failed"]) == (19, 1)
    assert fleet.state(ROLLOUT_PROGRESS).state == "95"
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID) is None


@pytest.mark.parametrize("fleet", [6], indirect=True)
async def test_devices_offline_during_their_wave_are_done_when_they_return(
    fleet: Fleet,
) -> None:
    """Three devices are offline: the rest goes on; each starts when it calls again."""
    await fleet.advance(ONLINE_INTERVAL + 1)
    online = fleet.key_ids[:3]
    offline = fleet.key_ids[3:6]
    fleet.call_all(online)
    await fleet.start(waves="1, 50%", healthy_for={"seconds": 0})
    assert fleet.pending() == online[:1]  # the canary is an online device
    fleet.update(online[0])
    assert set(fleet.pending()) == set(online[1:])  # wave 2 has an offline one
    for key_id in online[1:]:
        fleet.update(key_id)
    assert fleet.state(ROLLOUT_WAVE).state == "3/3"
    assert fleet.state().state == "running"
    assert fleet.state().attributes["waiting"] == 3

    for key_id in offline:
        fleet.call(key_id)  # back: started within the same request
        assert fleet.runtime.firmware.pending(key_id) is not None
        fleet.update(key_id)
    assert fleet.state().state == "completed"
    assert fleet.state().attributes["updated"] == 6


async def test_the_window_holds_devices_back(fleet: Fleet) -> None:
    """Started at noon with a 12:10-12:20 window: devices start only inside it."""
    await fleet.start(
        waves="1, 10%",
        window_start="12:10:00",
        window_end="12:20:00",
        healthy_for={"seconds": 0},
    )
    assert fleet.state().state == "waiting_for_window"
    assert fleet.state().attributes["window"] == "12:10-12:20"
    fleet.call_all()
    assert fleet.pending() == []

    await fleet.advance(5 * 60)
    fleet.call_all()
    assert fleet.pending() == []
    await fleet.advance(dt_util.now().replace(minute=10, second=0) - dt_util.now())
    assert fleet.state().state == "running"
    (canary,) = fleet.pending()  # online when the window opened: started at once
    fleet.update(canary)
    second = fleet.pending()
    assert len(second) == 2

    await fleet.advance(5 * 60)
    fleet.call_all()
    await fleet.advance(dt_util.now().replace(minute=20, second=0) - dt_util.now())
    assert fleet.state().state == "waiting_for_window"
    for key_id in second:  # started inside the window: they finish
        fleet.update(key_id)
    assert fleet.state(ROLLOUT_WAVE).state == "3/3"
    fleet.call_all()
    assert fleet.pending() == []  # the third wave waits for tomorrow

    await fleet.advance(3600)  # everyone goes offline
    tomorrow = dt_util.now().replace(hour=12, minute=10, second=0) + timedelta(days=1)
    await fleet.advance(tomorrow - dt_util.now())
    assert fleet.pending() == []  # nobody online when it opened
    fleet.call_all()
    assert len(fleet.pending()) == 17


async def test_a_window_that_opens_starts_the_online_devices(fleet: Fleet) -> None:
    """Devices online when the window opens start at once."""
    await fleet.start(window_start="12:10:00", window_end="13:00:00")
    assert fleet.pending() == []
    await fleet.advance(9 * 60)
    fleet.call_all()
    assert fleet.pending() == []
    await fleet.advance(50)
    assert len(fleet.pending()) == 1
    assert fleet.state().state == "running"


async def test_a_restart_in_the_middle_resumes_where_it_was(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Unloaded and set up again mid-wave: the same wave, the same devices, timers."""
    await fleet.start(waves="1, 10%", healthy_for={"seconds": HEALTHY_FOR})
    (canary,) = fleet.pending()
    await _pass_wave(fleet, [canary])
    second = fleet.pending()
    fleet.update(second[0])  # verifying
    before = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert before is not None
    stored = before.to_stored()

    entry = fleet.entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    after = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert after is not None
    assert after is not before
    assert after.to_stored() == stored
    assert fleet.state(ROLLOUT_WAVE).state == "2/3"
    assert _step(fleet, second[0]) is Step.VERIFYING
    assert _step(fleet, second[1]) is Step.UPDATING
    assert fleet.runtime.rollouts.follows(second[1])

    fleet.update(second[1])
    await _pass_wave(fleet, [])
    assert len(fleet.pending()) == 17


async def test_a_restart_notices_a_report_made_while_stopped(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """A device that reported the build just before the stop moves on after it."""
    await fleet.start(waves="1", healthy_for={"seconds": 0})
    (canary,) = fleet.pending()
    fleet.download(canary)
    entry = fleet.entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    fleet.call(canary, NEW_VERSION)
    assert _step(fleet, canary) is Step.HEALTHY


async def test_pause_and_resume(fleet: Fleet) -> None:
    """Paused, no device starts; resumed, those online do."""
    await fleet.start(waves="1, 10%", healthy_for={"seconds": 0})
    (canary,) = fleet.pending()
    await fleet.hass.services.async_call(
        DOMAIN, "pause_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
    )
    assert fleet.state().state == "paused"
    fleet.update(canary)  # a started device is still followed
    assert _step(fleet, canary) is Step.HEALTHY
    fleet.call_all()
    assert fleet.pending() == []
    with pytest.raises(ServiceValidationError) as err:
        await fleet.hass.services.async_call(
            DOMAIN, "pause_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
        )
    assert err.value.translation_key == "rollout_not_running"

    await fleet.hass.services.async_call(
        DOMAIN, "resume_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
    )
    assert fleet.state().state == "running"
    assert len(fleet.pending()) == 2
    with pytest.raises(ServiceValidationError) as err:
        await fleet.hass.services.async_call(
            DOMAIN, "resume_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
        )
    assert err.value.translation_key == "rollout_not_paused"


async def test_cancel_withdraws_what_was_not_downloaded(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Cancelled: a downloaded build stays, one not fetched yet is withdrawn."""
    events = async_capture_events(hass, EVENT_DEVICE)
    await fleet.start(waves="1, 2", healthy_for={"seconds": 0})
    fleet.update(fleet.pending()[0])
    downloading, waiting = fleet.pending()
    fleet.download(downloading)
    await hass.services.async_call(
        DOMAIN, "cancel_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
    )
    assert fleet.state().state == "cancelled"
    assert fleet.pending() == [downloading]
    assert _step(fleet, waiting) is Step.QUEUED
    withdrawn = [e.data for e in events if e.data["type"] == "update_withdrawn"]
    assert withdrawn == [
        {
            "device_id": withdrawn[0]["device_id"],
            "key_id": waiting,
            "type": "update_withdrawn",
            "version": NEW_VERSION,
            "reason": "the rollout was cancelled",
        }
    ]
    fleet.call_all()
    assert fleet.pending() == [downloading]
    for service in ("pause_rollout", "resume_rollout", "cancel_rollout"):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, service, {"firmware_type": FIRMWARE_TYPE}, blocking=True
            )
        assert err.value.translation_key == "rollout_not_active"


async def test_one_rollout_per_firmware_type(fleet: Fleet) -> None:
    """A second rollout of a type is refused while the first is active, not after."""
    await fleet.start(waves="1")
    with pytest.raises(ServiceValidationError) as err:
        await fleet.start()
    assert err.value.translation_key == "rollout_running"
    await fleet.upload("2.0.0", firmware_type="other-type")
    await fleet.start(firmware_type="other-type")
    assert key_id_of(21) in fleet.pending()
    await fleet.hass.services.async_call(
        DOMAIN, "cancel_rollout", {"firmware_type": FIRMWARE_TYPE}, blocking=True
    )
    await fleet.start(waves="2")
    assert len(fleet.pending()) == 3


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"waves": "1, ten"}, "rollout_invalid_waves"),
        ({"version": "9.9.9"}, "rollout_unknown_firmware"),
        ({"firmware_type": "unknown"}, "rollout_unknown_firmware"),
        ({"window_start": "02:00:00"}, "rollout_window_incomplete"),
        ({"window_start": "02:00", "window_end": "02:00"}, "rollout_window_empty"),
        ({"devices": ["not-a-device"]}, "rollout_unknown_device"),
    ],
)
async def test_refused_rollouts(fleet: Fleet, data: dict[str, Any], key: str) -> None:
    """Each refusal names what is wrong, and nothing starts."""
    with pytest.raises(ServiceValidationError) as err:
        await fleet.start(**data)
    assert err.value.translation_key == key
    assert fleet.pending() == []
    assert fleet.runtime.rollouts.get(FIRMWARE_TYPE) is None


async def test_a_rollout_needs_a_device_that_lacks_the_build(fleet: Fleet) -> None:
    """Every device already runs it: nothing to roll out."""
    for key_id in fleet.key_ids:
        fleet.call(key_id, NEW_VERSION)
    with pytest.raises(ServiceValidationError) as err:
        await fleet.start()
    assert err.value.translation_key == "rollout_no_devices"


async def test_chosen_devices_areas_and_labels(
    hass: HomeAssistant,
    fleet: Fleet,
    device_registry: dr.DeviceRegistry,
    area_registry: ar.AreaRegistry,
    label_registry: lr.LabelRegistry,
) -> None:
    """The target is the chosen devices plus the type's devices in the areas or labels."""

    def device_id(number: int) -> str:
        device = device_registry.async_get_device(
            identifiers={(DOMAIN, key_id_of(number))}
        )
        assert device is not None
        return device.id

    garden = area_registry.async_create("Garden")
    label = label_registry.async_create("Night owls")
    device_registry.async_update_device(device_id(2), area_id=garden.id)
    device_registry.async_update_device(device_id(21), area_id=garden.id)
    device_registry.async_update_device(device_id(3), labels={label.label_id})
    await fleet.start(
        waves="10",
        devices=[device_id(5)],
        areas=[garden.id],
        labels=[label.label_id],
    )
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert set(rollout.devices) == {key_id_of(2), key_id_of(3), key_id_of(5)}

    with pytest.raises(ServiceValidationError) as err:
        await fleet.start(firmware_type="other-type", devices=[device_id(2)])
    assert err.value.translation_key == "rollout_unknown_firmware"
    await fleet.upload("2.0.0", firmware_type="other-type")
    with pytest.raises(ServiceValidationError) as err:
        await fleet.start(firmware_type="other-type", devices=[device_id(2)])
    assert err.value.translation_key == "rollout_wrong_type"
    assert err.value.translation_placeholders == {
        "device": "Sensor 02",
        "firmware_type": "other-type",
    }
    hub = device_registry.async_get_device(identifiers={(DOMAIN, "hub:providore")})
    assert hub is not None
    with pytest.raises(ServiceValidationError) as err:
        await fleet.start(firmware_type="other-type", devices=[hub.id])
    assert err.value.translation_key == "rollout_unknown_device"


async def test_automatic_updates_of_a_device_in_a_rollout_follow_the_rollout(
    fleet: Fleet,
) -> None:
    """A newer upload is not assigned to it; devices outside the rollout get it."""
    runtime = fleet.runtime
    inside, outside = key_id_of(1), key_id_of(2)
    for key_id in (inside, outside):
        await runtime.async_set_auto_update(key_id, True)
    await fleet.start(waves="1", devices=_device_ids(fleet, [inside]))
    assert fleet.pending() == [inside]
    await fleet.upload("1.2.0")
    pending = {key_id: runtime.firmware.pending(key_id) for key_id in (inside, outside)}
    assert {key_id: build and build.version for key_id, build in pending.items()} == {
        inside: NEW_VERSION,
        outside: "1.2.0",
    }


async def test_an_update_assigned_before_the_rollout_waits_for_its_wave(
    fleet: Fleet,
) -> None:
    """Given the build by hand before: withdrawn until its wave, unless downloading."""
    runtime = fleet.runtime
    await runtime.async_install_firmware(key_id_of(1), NEW_VERSION)
    await runtime.async_install_firmware(key_id_of(20), NEW_VERSION)
    fleet.download(key_id_of(20))
    await fleet.start(waves="1")
    assert set(fleet.pending()) == {key_id_of(1), key_id_of(20)}
    assert _step(fleet, key_id_of(20)) is Step.UPDATING
    await runtime.async_cancel_update(key_id_of(1))
    assert _step(fleet, key_id_of(1)) is Step.SKIPPED


async def test_installing_by_hand_during_a_rollout(fleet: Fleet) -> None:
    """The build ahead of the wave starts the device; another version takes it out."""
    runtime = fleet.runtime
    await fleet.upload("1.2.0")
    await fleet.start(waves="1", version=NEW_VERSION)
    (canary,) = fleet.pending()
    queued = [key_id for key_id in fleet.key_ids if key_id != canary]
    await runtime.async_install_firmware(queued[0], NEW_VERSION)
    assert _step(fleet, queued[0]) is Step.UPDATING
    await runtime.async_install_firmware(queued[1], "1.2.0")
    assert _step(fleet, queued[1]) is Step.SKIPPED
    rollout = runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert rollout.devices[queued[1]].reason is Reason.REPLACED
    assert not runtime.rollouts.follows(queued[1])


async def test_devices_removed_or_retyped_leave_the_rollout(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Removing a device or changing its firmware type takes it out of the rollout."""
    await fleet.start(waves="1")
    entry = fleet.entry
    subentries = {s.unique_id: s for s in entry.subentries.values()}
    hass.config_entries.async_remove_subentry(
        entry, subentries[key_id_of(5)].subentry_id
    )
    hass.config_entries.async_update_subentry(
        entry,
        subentries[key_id_of(6)],
        data={**subentries[key_id_of(6)].data, "firmware_type": "other-type"},
    )
    await hass.async_block_till_done()
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert rollout.devices[key_id_of(5)].reason is Reason.REMOVED
    assert rollout.devices[key_id_of(6)].reason is Reason.TYPE_CHANGED
    assert fleet.state().attributes["skipped"] == 2


async def test_deleting_the_build_aborts_the_rollout(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Without its build a rollout cannot go on: it stops and says why."""
    await fleet.start(waves="1")
    await fleet.runtime.async_delete_build(FIRMWARE_TYPE, NEW_VERSION)
    await hass.async_block_till_done()
    assert fleet.state().state == "aborted"
    assert fleet.state().attributes["abort_reason"] == "build_deleted"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert (
        issue.translation_placeholders["why"] == f"firmware {NEW_VERSION} was deleted"
    )


async def test_a_new_rollout_withdraws_the_abort_issue(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """The issue goes once the user starts again with a fixed build."""
    await fleet.start(waves="1")
    (canary,) = fleet.pending()
    fleet.call(canary)
    await fleet.advance(UPDATE_TIMEOUT + 1)
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID) is not None
    await fleet.upload("1.1.1")
    fleet.call_all()
    await fleet.start(waves="1")
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_requests_of_devices_waiting_write_nothing(fleet: Fleet) -> None:
    """A queued device's calls outside its wave cost a lookup, no entity write."""
    await fleet.start(waves="1")
    written = fleet.state().last_updated
    fleet.call_all()
    fleet.call_all()
    assert fleet.state().last_updated == written


def test_odd_rollout_events_never_break_the_logbook() -> None:
    """Unknown kinds and missing details show the kind; one of a kind is singular."""
    assert describe("something_new", {}) == "something_new"
    assert describe("started", {}) == "started"
    assert describe(
        "started",
        {"firmware_type": "t", "version": "2", "devices": "1", "waves": "1"},
    ) == ("started rolling out t firmware 2 to 1 device in 1 wave")


def _device_ids(fleet: Fleet, key_ids: list[str]) -> list[str]:
    registry = dr.async_get(fleet.hass)
    ids = []
    for key_id in key_ids:
        device = registry.async_get_device(identifiers={(DOMAIN, key_id)})
        assert device is not None
        ids.append(device.id)
    return ids


async def test_a_stored_rollout_whose_build_is_gone_aborts_at_start(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
) -> None:
    """A rollouts store restored beside another catalog: the rollout stops."""
    entry: MockConfigEntry = fleet_entry(2)
    store_secrets(hass_storage, entry)
    hass_storage[f"{DOMAIN}.rollouts"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.rollouts",
        "data": {
            "rollouts": {
                FIRMWARE_TYPE: {
                    "firmware_type": FIRMWARE_TYPE,
                    "version": NEW_VERSION,
                    "sha256": "00" * 32,
                    "healthy_for": 0,
                    "max_failed_percent": 0,
                    "window": None,
                    "waves": [[key_id_of(1)], [key_id_of(2)]],
                    "devices": {
                        key_id_of(n): {
                            "step": "queued",
                            "reason": None,
                            "started_at": None,
                            "reported_at": None,
                        }
                        for n in (1, 2)
                    },
                    "started_at": dt_util.utcnow().isoformat(),
                    "state": "running",
                    "open_wave": 0,
                    "ended_at": None,
                    "abort_reason": None,
                    "aborted_wave": None,
                }
            }
        },
    }
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    fleet = Fleet(hass, freezer, entry)
    assert fleet.state().state == "aborted"
    assert fleet.state().attributes["abort_reason"] == "build_deleted"


async def test_a_device_flashed_by_hand_passes_when_its_turn_comes(
    fleet: Fleet,
) -> None:
    """A queued device that already reports the build is not sent it again."""
    await fleet.start(waves="1", healthy_for={"seconds": 0})
    (canary,) = fleet.pending()
    late = key_id_of(20)
    fleet.call(late, NEW_VERSION)
    assert _step(fleet, late) is Step.QUEUED
    fleet.update(canary)
    assert _step(fleet, late) is Step.HEALTHY
    assert fleet.runtime.firmware.pending(late) is None


async def test_a_wave_of_many_failures_names_ten_in_the_issue(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """The repair issue lists ten failed devices and counts the rest."""
    await fleet.start(waves="12", max_failed_percent=90)
    assert len(fleet.pending()) == 12
    await fleet.advance(UPDATE_TIMEOUT / 2)
    fleet.call_all()
    await fleet.advance(UPDATE_TIMEOUT / 2)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_placeholders is not None
    lines = issue.translation_placeholders["devices"].splitlines()
    assert len(lines) == 11
    assert lines[-1] == "- … and 1 more"
    assert issue.translation_placeholders["why"] == (
        "11 of 12 devices of wave 1 of 2 failed"
    )


async def test_a_restart_drops_devices_removed_or_retyped_meanwhile(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Devices removed or given another type while the hub was stopped leave it."""
    await fleet.start(waves="1", healthy_for={"seconds": 0})
    entry = fleet.entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    subentries = {s.unique_id: s for s in entry.subentries.values()}
    hass.config_entries.async_remove_subentry(
        entry, subentries[key_id_of(7)].subentry_id
    )
    hass.config_entries.async_update_subentry(
        entry,
        subentries[key_id_of(8)],
        data={**subentries[key_id_of(8)].data, "firmware_type": "other-type"},
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert rollout.devices[key_id_of(7)].reason is Reason.REMOVED
    assert rollout.devices[key_id_of(8)].reason is Reason.TYPE_CHANGED


async def test_a_device_offline_after_a_restart_fails_its_health_time(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """A verifying device that is offline when the hub is back fails at its time."""
    await fleet.start(waves="1", healthy_for={"seconds": HEALTHY_FOR})
    (canary,) = fleet.pending()
    fleet.update(canary)
    entry = fleet.entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await fleet.advance(ONLINE_INTERVAL + 1)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert not fleet.runtime.is_online(canary)
    await fleet.advance(1)
    assert _step(fleet, canary) is Step.FAILED
    assert fleet.state().state == "aborted"


async def test_a_completed_rollout_stays_shown_after_a_restart(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Its sensors come back with it; it follows nothing."""
    await fleet.start(waves="1", healthy_for={"seconds": 0})
    for key_id in list(fleet.pending()):
        fleet.update(key_id)
    for key_id in fleet.pending():
        fleet.update(key_id)
    assert fleet.state().state == "completed"
    entry = fleet.entry
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert fleet.state().state == "completed"
    assert fleet.state(ROLLOUT_PROGRESS).state == "100"
    assert not fleet.runtime.rollouts.follows(key_id_of(1))


async def test_steps_are_saved_when_home_assistant_stops(
    hass: HomeAssistant, hass_storage: dict[str, Any], fleet: Fleet
) -> None:
    """A step made a moment before the stop is written before Home Assistant ends."""
    await fleet.start(waves="1", healthy_for={"seconds": HEALTHY_FOR})
    (canary,) = fleet.pending()
    fleet.update(canary)
    stored = hass_storage[f"{DOMAIN}.rollouts"]["data"]["rollouts"][FIRMWARE_TYPE]
    assert stored["devices"][canary]["step"] == "updating"
    hass.bus.async_fire("homeassistant_stop")
    await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.rollouts"]["data"]["rollouts"][FIRMWARE_TYPE]
    assert stored["devices"][canary]["step"] == "verifying"
    assert await hass.config_entries.async_unload(fleet.entry.entry_id)


async def test_steps_are_saved_within_a_second(
    hass: HomeAssistant, hass_storage: dict[str, Any], fleet: Fleet
) -> None:
    """Device steps are batched into one write a second later."""
    await fleet.start(waves="1", healthy_for={"seconds": HEALTHY_FOR})
    (canary,) = fleet.pending()
    fleet.update(canary)
    await fleet.advance(1)
    stored = hass_storage[f"{DOMAIN}.rollouts"]["data"]["rollouts"][FIRMWARE_TYPE]
    assert stored["devices"][canary]["step"] == "verifying"


async def test_the_hub_diagnostics_show_the_rollouts(
    hass: HomeAssistant, fleet: Fleet, device_registry: dr.DeviceRegistry
) -> None:
    """Each type's newest rollout, by key id; the hub device shows the same."""
    await fleet.start(waves="1")
    hub = device_registry.async_get_device(identifiers={(DOMAIN, "hub:providore")})
    assert hub is not None
    entry_diagnostics = await async_get_config_entry_diagnostics(hass, fleet.entry)
    hub_diagnostics = await async_get_device_diagnostics(hass, fleet.entry, hub)
    rollouts = entry_diagnostics["rollouts"]
    assert rollouts == hub_diagnostics["rollouts"]
    assert rollouts[FIRMWARE_TYPE]["version"] == NEW_VERSION
    assert rollouts[FIRMWARE_TYPE]["state"] == "running"
