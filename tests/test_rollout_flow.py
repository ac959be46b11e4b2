"""Starting, pausing, resuming and cancelling a rollout from the hub's Configure menu."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, label_registry as lr
from homeassistant.helpers.selector import SelectSelector
import pytest
import voluptuous as vol

from custom_components.providore.const import DOMAIN
from custom_components.providore.rollout_plan import DailyWindow, HealthGate

from .conftest import FIRMWARE_TYPE
from .fleet import NEW_VERSION, Fleet, async_set_up_fleet, key_id_of

BUILD = f"{FIRMWARE_TYPE} {NEW_VERSION}"
START_INPUT = {
    "build": BUILD,
    "waves": "1, 10%",
    "healthy_for": {"hours": 0, "minutes": 5, "seconds": 0},
    "max_failed_percent": 10.0,
}


@pytest.fixture
async def fleet(
    hass: HomeAssistant, hass_storage: dict[str, Any], freezer: FrozenDateTimeFactory
) -> Fleet:
    """Return a hub of 4 online devices, with no build yet."""
    fleet = await async_set_up_fleet(hass, hass_storage, freezer, 4)
    fleet.call_all()
    return fleet


async def _step(hass: HomeAssistant, fleet: Fleet, step: str) -> ConfigFlowResult:
    result = await hass.config_entries.options.async_init(fleet.entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


def _suggested(schema: vol.Schema) -> dict[str, Any]:
    return {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def _options(schema: vol.Schema, field: str) -> list[Any]:
    selector = next(value for key, value in schema.schema.items() if key == field)
    assert isinstance(selector, SelectSelector)
    options: list[Any] = selector.config["options"]
    return options


async def test_start_needs_a_build(hass: HomeAssistant, fleet: Fleet) -> None:
    """Without any build there is nothing to roll out."""
    result = await _step(hass, fleet, "start_rollout")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_builds"


async def test_start_a_rollout(hass: HomeAssistant, fleet: Fleet) -> None:
    """The form offers every build, newest first, with the defaults; submit starts."""
    await fleet.upload()
    await fleet.upload("1.2.0")
    result = await _step(hass, fleet, "start_rollout")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "start_rollout"
    schema = result["data_schema"]
    assert [key.schema for key in schema.schema] == [
        "build",
        "devices",
        "areas",
        "labels",
        "waves",
        "healthy_for",
        "max_failed_percent",
        "window_start",
        "window_end",
    ]
    assert _options(schema, "build") == [f"{FIRMWARE_TYPE} 1.2.0", BUILD]
    assert _suggested(schema) == {
        "waves": "1, 10%",
        "healthy_for": {"hours": 0, "minutes": 10, "seconds": 0},
        "max_failed_percent": 10,
    }

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        START_INPUT | {"window_start": "02:00:00", "window_end": "05:30:00"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "rollout_started"
    assert result["description_placeholders"] == {
        "firmware_type": FIRMWARE_TYPE,
        "version": NEW_VERSION,
        "devices": "4",
        "waves": "3",
    }
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert rollout.version == NEW_VERSION
    assert rollout.gate == HealthGate(timedelta(minutes=5), 10)
    assert rollout.window == DailyWindow(time(2), time(5, 30))


async def test_start_for_chosen_devices_and_labels(
    hass: HomeAssistant,
    fleet: Fleet,
    device_registry: dr.DeviceRegistry,
    label_registry: lr.LabelRegistry,
) -> None:
    """The chosen devices and labels reach the rollout."""
    await fleet.upload()
    chosen = device_registry.async_get_device(identifiers={(DOMAIN, key_id_of(1))})
    labelled = device_registry.async_get_device(identifiers={(DOMAIN, key_id_of(3))})
    assert chosen is not None
    assert labelled is not None
    label = label_registry.async_create("Attic")
    device_registry.async_update_device(labelled.id, labels={label.label_id})
    result = await _step(hass, fleet, "start_rollout")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        START_INPUT | {"devices": [chosen.id], "labels": [label.label_id], "areas": []},
    )
    assert result["reason"] == "rollout_started"
    rollout = fleet.runtime.rollouts.get(FIRMWARE_TYPE)
    assert rollout is not None
    assert set(rollout.devices) == {key_id_of(1), key_id_of(3)}
    assert rollout.window is None


@pytest.mark.parametrize(
    ("changes", "errors", "placeholders"),
    [
        ({"waves": "one"}, {"waves": "rollout_invalid_waves"}, {"waves": "one"}),
        (
            {"window_start": "02:00:00"},
            {"window_start": "rollout_window_incomplete"},
            {},
        ),
        (
            {"window_start": "02:00:00", "window_end": "02:00:00"},
            {"window_end": "rollout_window_empty"},
            {},
        ),
        (
            {"healthy_for": {"hours": 200}},
            {"healthy_for": "rollout_healthy_for_too_long"},
            {},
        ),
    ],
)
async def test_refusals_keep_what_was_typed(
    hass: HomeAssistant,
    fleet: Fleet,
    changes: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    """The form comes back with the error at its field and the user's values."""
    await fleet.upload()
    result = await _step(hass, fleet, "start_rollout")
    typed = START_INPUT | changes
    result = await hass.config_entries.options.async_configure(result["flow_id"], typed)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert result["description_placeholders"] == placeholders
    assert _suggested(result["data_schema"]) == typed
    assert fleet.runtime.rollouts.get(FIRMWARE_TYPE) is None


async def test_a_second_rollout_of_the_type_is_refused(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """One rollout per firmware type: the form says which one runs."""
    await fleet.upload()
    await fleet.start(waves="1")
    result = await _step(hass, fleet, "start_rollout")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], START_INPUT
    )
    assert result["errors"] == {"base": "rollout_running"}
    assert result["description_placeholders"] == {"firmware_type": FIRMWARE_TYPE}


async def test_a_build_deleted_while_the_form_is_open(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """The chosen build is gone when submitted: choose another."""
    await fleet.upload()
    await fleet.upload("1.2.0")
    result = await _step(hass, fleet, "start_rollout")
    await fleet.runtime.async_delete_build(FIRMWARE_TYPE, NEW_VERSION)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], START_INPUT
    )
    assert result["errors"] == {"build": "rollout_unknown_build"}


async def test_manage_needs_an_active_rollout(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Nothing to pause, resume or cancel."""
    result = await _step(hass, fleet, "manage_rollout")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_active_rollout"


async def test_pause_resume_and_cancel_from_the_menu(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Each action says what it did; a wrong one is refused at the action field."""
    await fleet.upload()
    await fleet.start(waves="1")
    rollouts = fleet.runtime.rollouts

    async def manage(action: str) -> ConfigFlowResult:
        result = await _step(hass, fleet, "manage_rollout")
        assert result["type"] is FlowResultType.FORM
        assert _options(result["data_schema"], "rollout") == [
            {"value": FIRMWARE_TYPE, "label": BUILD}
        ]
        assert _suggested(result["data_schema"]) == {"rollout": FIRMWARE_TYPE}
        return await hass.config_entries.options.async_configure(
            result["flow_id"], {"rollout": FIRMWARE_TYPE, "rollout_action": action}
        )

    result = await manage("pause")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "rollout_paused"
    assert result["description_placeholders"] == {"firmware_type": FIRMWARE_TYPE}
    assert rollouts.rollout(FIRMWARE_TYPE).state == "paused"

    result = await manage("pause")
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"rollout_action": "rollout_not_running"}
    assert result["description_placeholders"] == {"firmware_type": FIRMWARE_TYPE}

    result = await manage("resume")
    assert result["reason"] == "rollout_resumed"
    assert rollouts.rollout(FIRMWARE_TYPE).state == "running"

    result = await manage("cancel")
    assert result["reason"] == "rollout_cancelled"
    assert rollouts.rollout(FIRMWARE_TYPE).state == "cancelled"


@pytest.mark.parametrize(
    "step", ["start_rollout", "manage_rollout", "upload_firmware", "import_ca"]
)
async def test_steps_need_a_loaded_hub(
    hass: HomeAssistant, fleet: Fleet, step: str
) -> None:
    """With the hub unloaded, the steps say so."""
    assert await hass.config_entries.async_unload(fleet.entry.entry_id)
    result = await _step(hass, fleet, step)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_device_flows_need_a_loaded_hub(
    hass: HomeAssistant, fleet: Fleet
) -> None:
    """Adding or reconfiguring a device while the hub is unloaded says so."""
    entry = fleet.entry
    subentry = next(iter(entry.subentries.values()))
    assert await hass.config_entries.async_unload(entry.entry_id)
    added = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "device"), context={"source": "user"}
    )
    changed = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "device"),
        context={"source": "reconfigure", "subentry_id": subentry.subentry_id},
    )
    changed = await hass.config_entries.subentries.async_configure(
        changed["flow_id"], {"next_step_id": "settings"}
    )
    assert [added["reason"], changed["reason"]] == ["not_loaded", "not_loaded"]
