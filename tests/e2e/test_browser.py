"""A user's path through Home Assistant's own frontend, in a real Chromium.

Each step is one function that drives the browser like a person would, saves a
screenshot of what they see, and checks the outcome over the REST API as well.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
from typing import Any

import pytest

from .browser import Screenshots, require_browser

require_browser()

from playwright.sync_api import Locator, Page, expect  # only once it is installed

from .home_assistant import (
    PASSWORD,
    USERNAME,
    HomeAssistantApi,
    RunningHomeAssistant,
    wait_for,
)
from .simulated_device import SimulatedDevice

# Enabling an entity waits for Home Assistant's reload, 30 s after the change.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DEVICE_NAME = "Weather station"
DEVICE_SLUG = "weather_station"
FIRMWARE_TYPE = "esp32s2-sensor"
STATUS = f"sensor.{DEVICE_SLUG}_status"
LAST_SEEN = f"sensor.{DEVICE_SLUG}_last_seen"
# Shown by default; Connectivity, Address and Firmware version start disabled.
DEVICE_ENTITIES = (STATUS, f"update.{DEVICE_SLUG}_firmware")
CONFIG_DOCUMENT = {"interval": 60, "labels": ["garden"]}
KEY_ID_IN_TEXT = re.compile(r"with key ID (\S+)\.")
FIRMWARE_UPDATE = f"update.{DEVICE_SLUG}_firmware"
NEW_VERSION = "1.1.0"
RELEASE_NOTES = "Reads the **rain gauge** twice as often."
RELEASE_NOTES_SHOWN = "Reads the rain gauge twice as often."
# Several of the server's 256 KiB chunks, so a download has visible progress.
FIRMWARE_SIZE = 640 * 1024


def test_user_adds_providore_and_a_device(
    home_assistant: RunningHomeAssistant,
    page: Page,
    screenshots: Screenshots,
    tmp_path: Path,
) -> None:
    """Log in, add the hub and a device in the UI, see it come online, update its firmware."""
    log_in(page, home_assistant, screenshots)
    add_hub(page, home_assistant.api, screenshots)
    key_id = add_device(page, home_assistant.api, screenshots)
    device = device_calls_in(page, home_assistant.api, key_id, screenshots)
    enable_last_seen(page, home_assistant.api, screenshots)
    image = upload_firmware(page, home_assistant, tmp_path, screenshots)
    dialog = open_firmware_update(page, home_assistant.api, screenshots)
    install_firmware(page, dialog, home_assistant.api, device, image, screenshots)


def log_in(
    page: Page, home_assistant: RunningHomeAssistant, shots: Screenshots
) -> None:
    """Step 1: log in through Home Assistant's login page."""
    page.goto(home_assistant.url)
    page.get_by_role("textbox", name="Username").fill(USERNAME)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    shots.take(page, "login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/lovelace"))
    expect(page.get_by_role("option", name="Settings").first).to_be_visible()


def add_hub(page: Page, api: HomeAssistantApi, shots: Screenshots) -> None:
    """Step 2: Settings → Devices & services → Add integration → Providore, with the defaults."""
    page.get_by_role("option", name="Settings").first.click()
    page.get_by_role("menuitem", name="Devices & services").click()
    page.get_by_role("button", name="Add integration").click()
    search = page.locator("dialog-add-integration")
    search.get_by_label("Search for a brand name").fill("Providore")
    shots.take(page, "add-integration")
    search.get_by_text("Providore", exact=True).click()

    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_role("heading", name="Set up Providore")).to_be_visible()
    expect(flow.get_by_role("spinbutton", name="Online interval")).to_have_value("600")
    shots.take(page, "hub-form")
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_role("heading", name="Success!")).to_be_visible()
    expect(flow).to_contain_text("⋮ → Add device")
    shots.take(page, "hub-added")
    flow.get_by_role("button", name="Finish").click()
    page.wait_for_url(re.compile("/config/integrations/integration/providore"))

    entries = api.config_entries("providore")
    assert [(entry["title"], entry["state"]) for entry in entries] == [
        ("Providore", "loaded")
    ]


def add_device(page: Page, api: HomeAssistantApi, shots: Screenshots) -> str:
    """Step 3: "Add device" on the hub's entry, keys generated; return the device's key ID."""
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore")
    hub_row.get_by_role("button", name="Menu").click()
    add_device_item = page.get_by_role("menuitem", name="Add device")
    expect(add_device_item).to_be_visible()
    shots.take(page, "hub-menu")
    add_device_item.click()

    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_role("heading", name="Add a device")).to_be_visible()
    flow.get_by_text("Generate a new key", exact=True).click()
    expect(
        flow.get_by_role("heading", name="Add a device with a new key")
    ).to_be_visible()
    flow.get_by_role("textbox", name="Name").fill(DEVICE_NAME)
    flow.get_by_role("textbox", name="Firmware type").fill(FIRMWARE_TYPE)
    shots.take(page, "device-form")
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_role("heading", name="Success!")).to_be_visible()
    message = flow.get_by_text(f"{DEVICE_NAME} was added with key ID")
    expect(message).to_be_visible()
    shots.take(page, "device-added")
    key_id_match = KEY_ID_IN_TEXT.search(message.inner_text())
    assert key_id_match, "the success message names the generated key ID"
    key_id = key_id_match.group(1)
    flow.get_by_role("button", name="Finish").click()

    device_row = page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME)
    device_row.get_by_role("link", name="1 device").click()
    expect(page.get_by_text(f"Serial number: {key_id}")).to_be_visible()
    expect(page.get_by_text(FIRMWARE_TYPE)).to_be_visible()
    sensors = entity_card(page, "Sensors")
    expect(sensors).to_contain_text("Status")
    expect(sensors).to_contain_text("Waiting for first contact")
    expect(sensors).to_contain_text("disabled entit")  # the diagnostic extras
    shots.take(page, "device-page")

    for entity_id in DEVICE_ENTITIES:
        wait_for(entity_id, lambda entity_id=entity_id: api.state(entity_id))
    assert api.state_value(STATUS) == "waiting_for_first_contact"
    return key_id


def device_calls_in(
    page: Page, api: HomeAssistantApi, key_id: str, shots: Screenshots
) -> SimulatedDevice:
    """Step 4: the device, flashed with its bundle, fetches its config and shows as connected."""
    bundle = api.call_service(
        "providore", "provisioning_bundle", {"key_id": key_id}, response=True
    )
    assert bundle["base_url"] == f"{api.url}/api/providore"
    api.call_service(
        "providore", "set_config", {"key_id": key_id, "config": CONFIG_DOCUMENT}
    )
    device = SimulatedDevice.flashed_with(bundle)

    answer = device.call("GET", "/config")
    assert answer.status == 200, answer.body
    assert answer.json() == CONFIG_DOCUMENT
    assert device.answer_is_signed(answer)

    expect(entity_card(page, "Sensors")).to_contain_text(re.compile(r"\bOnline\b"))
    shots.take(page, "device-connected")
    assert api.state_value(STATUS) == "online"
    assert update_attributes(api)["installed_version"] == device.firmware_version
    return device


def enable_last_seen(page: Page, api: HomeAssistantApi, shots: Screenshots) -> None:
    """Step 4b: enable the disabled Last seen; Home Assistant adds it after a reload."""
    diagnostic = entity_card(page, "Diagnostic")
    diagnostic.get_by_text(re.compile("disabled entit")).click()
    diagnostic.get_by_text("Last seen", exact=True).click()
    dialog = page.locator("ha-more-info-dialog")
    expect(dialog).to_contain_text("This entity is disabled.")
    dialog.get_by_role("button", name="Settings").click()
    dialog.get_by_role("button", name="Enable").click()
    notice = page.get_by_text("will be added to Home Assistant in 30 seconds")
    expect(notice).to_be_visible()
    shots.take(page, "last-seen-enabled")
    page.keyboard.press("Enter")  # OK has the focus
    expect(notice).to_be_hidden()
    page.keyboard.press("Escape")  # closes the entity's dialog

    # Not created while disabled, so the reload of the hub creates it, with its value.
    last_seen = wait_for(LAST_SEEN, lambda: api.state(LAST_SEEN), timeout=60)
    assert last_seen["attributes"]["device_class"] == "timestamp"
    assert last_seen["state"] not in ("unknown", "unavailable")
    # Home Assistant's device page shows an entity enabled while it was open without
    # its value until the page is reloaded (so it did before Providore skipped them).
    page.reload()
    expect(entity_card(page, "Diagnostic")).to_contain_text(
        re.compile(r"\d+ (second|minute)s? ago\s+Last seen")
    )
    shots.take(page, "last-seen-shown")


def upload_firmware(
    page: Page, home_assistant: RunningHomeAssistant, folder: Path, shots: Screenshots
) -> bytes:
    """Step 5a: Providore's Configure → Upload firmware, with a file chosen from disk."""
    image = os.urandom(FIRMWARE_SIZE)
    firmware_file = folder / f"weather-{NEW_VERSION}.bin"
    firmware_file.write_bytes(image)

    page.get_by_role("option", name="Settings").first.click()
    page.get_by_role("menuitem", name="Devices & services").click()
    page.locator("ha-integration-card").filter(has_text="Providore").click()
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore")
    hub_row.get_by_role("button", name="Configure").click()
    flow = page.locator("dialog-data-entry-flow")
    upload_item = flow.get_by_text("Upload firmware", exact=True)
    expect(upload_item).to_be_visible()
    shots.take(page, "hub-options")
    upload_item.click()

    expect(flow.get_by_role("heading", name="Upload firmware")).to_be_visible()
    flow.locator("input[type=file]").set_input_files(firmware_file)
    expect(flow).to_contain_text(firmware_file.name)  # uploaded to Home Assistant
    flow.get_by_role("combobox", name="Firmware type").click()
    page.get_by_role("option", name=FIRMWARE_TYPE, exact=True).click()
    flow.get_by_role("textbox", name="Version").fill(NEW_VERSION)
    flow.get_by_role("textbox", name="Release notes").fill(RELEASE_NOTES)
    shots.take(page, "firmware-form")
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_text("Firmware uploaded", exact=True)).to_be_visible()
    expect(flow).to_contain_text(f"Firmware {FIRMWARE_TYPE} {NEW_VERSION} was added.")
    shots.take(page, "firmware-uploaded")
    flow.locator("mwc-button", has_text="Close").click()

    stored = home_assistant.config_dir.joinpath(
        "providore", "firmware", FIRMWARE_TYPE, f"{NEW_VERSION}.bin"
    )
    assert stored.read_bytes() == image
    return image


def open_firmware_update(
    page: Page, api: HomeAssistantApi, shots: Screenshots
) -> Locator:
    """Step 5b: the device's Firmware offers the new build with its release notes."""
    device_row = page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME)
    device_row.get_by_role("link", name="1 device").click()
    configuration = entity_card(page, "Configuration")
    expect(configuration).to_contain_text("Update available")
    shots.take(page, "update-available")
    configuration.get_by_text("Firmware", exact=True).click()

    dialog = page.locator("ha-more-info-dialog")
    expect(dialog).to_contain_text("Update available")
    expect(dialog).to_contain_text(version_line("Latest", NEW_VERSION))
    expect(dialog).to_contain_text(RELEASE_NOTES_SHOWN)  # rendered from Markdown
    expect(dialog.get_by_role("button", name="Update", exact=True)).to_be_enabled()
    shots.take(page, "update-dialog")
    assert api.state_value(FIRMWARE_UPDATE) == "on"
    offered = update_attributes(api)
    assert offered["installed_version"] == "1.0.0"
    assert offered["latest_version"] == NEW_VERSION
    assert offered["release_summary"] == RELEASE_NOTES
    assert offered["in_progress"] is False
    # No brand image from the internet hides the update icon.
    assert "entity_picture" not in offered
    return dialog


def install_firmware(
    page: Page,
    dialog: Locator,
    api: HomeAssistantApi,
    device: SimulatedDevice,
    image: bytes,
    shots: Screenshots,
) -> None:
    """Step 5c: Update; the device downloads half, then the rest, verifies and reboots."""
    dialog.get_by_role("button", name="Update", exact=True).click()
    expect(dialog).to_contain_text("Installing")
    expect(dialog.get_by_role("progressbar")).to_be_visible()
    shots.take(page, "update-installing")
    assigned = update_attributes(api)
    assert assigned["in_progress"] is True
    assert assigned["update_percentage"] is None

    location = device.firmware_location()
    half = len(image) // 2
    first = device.download_range(location, 0, half - 1)
    expect(dialog).to_contain_text("Installing (50%)")
    shots.take(page, "update-progress")
    halfway = update_attributes(api)
    assert halfway["in_progress"] is True
    assert 1 <= halfway["update_percentage"] <= 99, halfway

    rest = device.download_range(location, half, None)
    expect(dialog).to_contain_text("Installing (100%)")
    downloaded = first.body + rest.body
    assert first.headers["X-Firmware-Version"] == NEW_VERSION
    assert downloaded == image
    for answer in (first, rest):
        device.verify_firmware(answer, downloaded)

    rebooted = device.rebooted_into(NEW_VERSION)
    assert rebooted.call("GET", "/firmware/check").status == 204
    expect(dialog).to_contain_text("Up-to-date")
    expect(dialog).to_contain_text(version_line("Installed", NEW_VERSION))
    expect(dialog.get_by_role("progressbar")).to_have_count(0)
    shots.take(page, "up-to-date")
    assert api.state_value(FIRMWARE_UPDATE) == "off"
    done = update_attributes(api)
    assert done["installed_version"] == NEW_VERSION
    assert done["in_progress"] is False


def version_line(which: str, version: str) -> re.Pattern[str]:
    """Match a more-info dialog's "Installed version" or "Latest version" line."""
    return re.compile(rf"{which} version\s+{re.escape(version)}\b")


def update_attributes(api: HomeAssistantApi) -> dict[str, Any]:
    """Return the attributes of the device's firmware update entity."""
    state = api.state(FIRMWARE_UPDATE)
    assert state is not None, f"{FIRMWARE_UPDATE} does not exist"
    attributes: dict[str, Any] = state["attributes"]
    return attributes


def entity_card(page: Page, heading: str) -> Locator:
    """Return the card of a device page that lists the entities under `heading`."""
    return page.locator("ha-card").filter(
        has=page.get_by_role("heading", name=heading, exact=True)
    )
