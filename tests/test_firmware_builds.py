"""The Firmware builds screen of the hub's Configure menu: the catalog, and deleting a build."""

from __future__ import annotations

from datetime import datetime
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.selector import SelectSelector
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.providore.const import (
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.firmware_overview import (
    escape_markdown,
    names_text,
    size_text,
)

from .conftest import DEVICE_NAME, FIRMWARE_TYPE, KEY_ID, loaded_runtime
from .device_calls import record_contact

UPDATE = "update.garden_sensor_firmware"
STRINGS = Path(__file__).parents[1] / "custom_components" / "providore" / "strings.json"
HEADER = "| Firmware type | Version | Size | Uploaded | Running on | Assigned to |"


async def _add_build(
    hass: HomeAssistant,
    folder: Path,
    version: str,
    size: int = 1024,
    firmware_type: str = FIRMWARE_TYPE,
) -> None:
    source = folder / f"{firmware_type}-{version}.bin"
    source.write_bytes(b"\xe9" * size)
    await loaded_runtime(hass).async_add_build(firmware_type, version, source)
    await hass.async_block_till_done()


async def _open_builds(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Configure on the hub, then Firmware builds."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "firmware_builds"}
    )


def _choices(result: dict[str, Any]) -> list[dict[str, str]]:
    selector = result["data_schema"].schema["build"]
    assert isinstance(selector, SelectSelector)
    options: list[dict[str, str]] = selector.config["options"]
    return options


async def test_the_catalog_with_who_runs_and_awaits_each_build(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    tmp_path: Path,
    freezer: FrozenDateTimeFactory,
) -> None:
    await hass.config.async_set_time_zone("Europe/Berlin")
    freezer.move_to(datetime.fromisoformat("2026-03-01T09:30:00+00:00"))
    await _add_build(hass, tmp_path, "1.0.0", size=640 * 1024)
    await _add_build(hass, tmp_path, "1.10.0", size=3 * 1024 * 1024 // 2)
    await _add_build(hass, tmp_path, "1.9.0", size=700)
    await _add_build(hass, tmp_path, "0.1.0", firmware_type="esp32-light")
    record_contact(hass, "1.0.0")
    await loaded_runtime(hass).async_install_firmware(KEY_ID, "1.9.0")

    result = await _open_builds(hass, init_integration)

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "firmware_builds"
    assert result["errors"] == {}
    # Newest version first within each type; times in Home Assistant's time zone.
    assert result["description_placeholders"] == {
        "builds": "\n".join(
            (
                "| esp32-light | 0.1.0 | 1 KiB | 2026-03-01 10:30 | — | — |",
                f"| {FIRMWARE_TYPE} | 1.10.0 | 1.5 MiB | 2026-03-01 10:30 | — | — |",
                f"| {FIRMWARE_TYPE} | 1.9.0 | 700 B | 2026-03-01 10:30 | — "
                f"| {DEVICE_NAME} |",
                f"| {FIRMWARE_TYPE} | 1.0.0 | 640 KiB | 2026-03-01 10:30 "
                f"| {DEVICE_NAME} | — |",
            )
        )
    }
    assert _choices(result) == [
        {"value": "esp32-light/0.1.0", "label": "esp32-light 0.1.0"},
        {"value": f"{FIRMWARE_TYPE}/1.10.0", "label": f"{FIRMWARE_TYPE} 1.10.0"},
        {"value": f"{FIRMWARE_TYPE}/1.9.0", "label": f"{FIRMWARE_TYPE} 1.9.0"},
        {"value": f"{FIRMWARE_TYPE}/1.0.0", "label": f"{FIRMWARE_TYPE} 1.0.0"},
    ]


def test_the_summary_is_a_markdown_table() -> None:
    """The translated header has a column for each cell of a row."""
    strings = json.loads(STRINGS.read_text())
    description = strings["options"]["step"]["firmware_builds"]["description"]
    assert f"{HEADER}\n| --- | --- | --- | --- | --- | --- |\n{{builds}}\n" in (
        description
    )


async def test_delete_a_build_after_confirming(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    runtime = loaded_runtime(hass)
    await _add_build(hass, tmp_path, "1.0.0", size=2048)
    await _add_build(hass, tmp_path, "1.1.0")
    record_contact(hass, "1.0.0")
    await runtime.async_install_firmware(KEY_ID, "1.1.0")
    await hass.async_block_till_done()
    assert hass.states.get(UPDATE).attributes["in_progress"] is True

    result = await _open_builds(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"build": f"{FIRMWARE_TYPE}/1.1.0"}
    )

    # Nothing is deleted before the user confirms.
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "delete_build"
    placeholders = result["description_placeholders"]
    assert placeholders["firmware_type"] == FIRMWARE_TYPE
    assert placeholders["version"] == "1.1.0"
    assert placeholders["size"] == "1 KiB"
    assert placeholders["assigned"] == DEVICE_NAME
    assert placeholders["running"] == "—"
    assert [build.version for build in runtime.builds(FIRMWARE_TYPE)] == [
        "1.0.0",
        "1.1.0",
    ]

    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "firmware_deleted"
    assert result["description_placeholders"] == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "1.1.0",
    }
    assert [build.version for build in runtime.builds(FIRMWARE_TYPE)] == ["1.0.0"]
    folder = Path(hass.config.path(DOMAIN, "firmware", FIRMWARE_TYPE))
    assert sorted(path.name for path in folder.iterdir()) == ["1.0.0.bin"]
    # Its assignment was withdrawn at once: the device is no longer offered it.
    assert runtime.firmware.assigned(KEY_ID) is None
    state = hass.states.get(UPDATE)
    assert state.attributes["in_progress"] is False
    assert state.attributes["latest_version"] == "1.0.0"
    # The options were not touched.
    assert "build" not in init_integration.options


async def test_delete_the_build_a_device_runs(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    await _add_build(hass, tmp_path, "1.0.0")
    record_contact(hass, "1.0.0")
    result = await _open_builds(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"build": f"{FIRMWARE_TYPE}/1.0.0"}
    )
    assert result["description_placeholders"]["running"] == DEVICE_NAME
    assert result["description_placeholders"]["assigned"] == "—"

    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["reason"] == "firmware_deleted"
    assert loaded_runtime(hass).firmware_types() == []
    assert (
        not Path(hass.config.path(DOMAIN, "firmware", FIRMWARE_TYPE))
        .joinpath("1.0.0.bin")
        .exists()
    )


async def test_no_builds_yet(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await _open_builds(hass, init_integration)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_firmware_builds"


async def test_a_build_deleted_while_the_list_was_open(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    runtime = loaded_runtime(hass)
    await _add_build(hass, tmp_path, "1.0.0")
    await _add_build(hass, tmp_path, "1.1.0")
    result = await _open_builds(hass, init_integration)
    await runtime.async_delete_build(FIRMWARE_TYPE, "1.1.0")  # e.g. by the action

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"build": f"{FIRMWARE_TYPE}/1.1.0"}
    )

    # The list comes back, without it, and says why.
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "firmware_builds"
    assert result["errors"] == {"build": "build_not_found"}
    assert [option["label"] for option in _choices(result)] == [
        f"{FIRMWARE_TYPE} 1.0.0"
    ]


async def test_a_build_deleted_while_the_confirmation_was_open(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    await _add_build(hass, tmp_path, "1.0.0")
    result = await _open_builds(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"build": f"{FIRMWARE_TYPE}/1.0.0"}
    )
    await loaded_runtime(hass).async_delete_build(FIRMWARE_TYPE, "1.0.0")

    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "build_not_found"
    assert result["description_placeholders"] == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "1.0.0",
    }


@pytest.mark.parametrize(
    "steps_before",
    [
        [],  # the menu is open
        [{"next_step_id": "firmware_builds"}],  # the list is open
        # The confirmation is open.
        [{"next_step_id": "firmware_builds"}, {"build": f"{FIRMWARE_TYPE}/1.0.0"}],
    ],
)
async def test_firmware_builds_need_a_loaded_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    tmp_path: Path,
    steps_before: list[dict[str, str]],
) -> None:
    await _add_build(hass, tmp_path, "1.0.0")
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    for user_input in steps_before:
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], user_input
        )
        assert result["type"] is FlowResultType.FORM
    assert await hass.config_entries.async_unload(init_integration.entry_id)

    next_input = (
        [{"next_step_id": "firmware_builds"}, {"build": f"{FIRMWARE_TYPE}/1.0.0"}, {}]
    )[len(steps_before)]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], next_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"
    # Nothing was deleted.
    assert Path(
        hass.config.path(DOMAIN, "firmware", FIRMWARE_TYPE, "1.0.0.bin")
    ).exists()


async def test_device_names_are_shown_as_they_are(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    tmp_path: Path,
) -> None:
    """A name with Markdown in it can neither format its cell nor break the table."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_subentry(
        mock_config_entry,
        next(iter(mock_config_entry.subentries.values())),
        title="Hall | [light](https://example.com) *one*",
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await _add_build(hass, tmp_path, "1.0.0")
    record_contact(hass, "1.0.0")

    result = await _open_builds(hass, mock_config_entry)

    row = result["description_placeholders"]["builds"]
    assert "Hall \\| \\[light\\](https://example.com) \\*one\\*" in row
    assert row.count(" | ") == 5  # six cells, no more


async def test_many_devices_are_counted(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    tmp_path: Path,
) -> None:
    mock_config_entry.add_to_hass(hass)
    for number in range(7):
        hass.config_entries.async_add_subentry(
            mock_config_entry, _device_subentry(f"extra{number}", f"Light {number}")
        )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    runtime = loaded_runtime(hass)
    await _add_build(hass, tmp_path, "2.0.0")
    for key_id in runtime.devices:
        await runtime.async_install_firmware(key_id, "2.0.0")

    result = await _open_builds(hass, mock_config_entry)

    assert result["description_placeholders"]["builds"].endswith(
        f"| {DEVICE_NAME}, Light 0, Light 1, Light 2, Light 3 +3 |"
    )


def _device_subentry(key_id: str, name: str) -> ConfigSubentry:
    return ConfigSubentry(
        data=MappingProxyType({CONF_KEY_ID: key_id, CONF_FIRMWARE_TYPE: FIRMWARE_TYPE}),
        subentry_type=SUBENTRY_TYPE_DEVICE,
        title=name,
        unique_id=key_id,
    )


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024, "1 MiB"),
        (5 * 1024**3, "5120 MiB"),
    ],
)
def test_size_text(size: int, text: str) -> None:
    assert size_text(size) == text


def test_names_text() -> None:
    assert names_text([]) == "—"
    assert names_text(["a_b", "c"]) == "a\\_b, c"
    assert escape_markdown("two\nlines  here") == "two lines here"
