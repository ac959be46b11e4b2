"""A rollout started from Home Assistant's own frontend, in a real Chromium, to its end.

Four devices of one firmware type call the real device API with signed requests; the
user starts a rollout from the hub's Configure menu, follows it on the Providore device
page, and sees it complete while the devices update wave by wave.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

FIRMWARE_TYPE = "esp32s2-sensor"
NEW_VERSION = "1.1.0"
DEVICE_NAMES = ("Attic sensor", "Cellar sensor", "Garden sensor", "Porch sensor")
ROLLOUT = "sensor.providore_esp32s2_sensor_rollout"
ROLLOUT_WAVE = "sensor.providore_esp32s2_sensor_rollout_wave"
ROLLOUT_PROGRESS = "sensor.providore_esp32s2_sensor_rollout_progress"
HUB_SETTINGS = {
    "max_clock_skew": 300,
    "max_request_lifetime": 900,
    "online_interval": 600,
    "update_timeout": 600,
    "certificate_validity": 365,
}
# Each device polls this often while the rollout runs.
POLL_SECONDS = 0.3
ROLLOUT_TIMEOUT = 60.0


def test_user_rolls_out_firmware_to_a_fleet(
    home_assistant: RunningHomeAssistant, page: Page, screenshots: Screenshots
) -> None:
    """Start a rollout in three waves from Configure; watch every device update."""
    api = home_assistant.api
    devices = set_up_fleet(home_assistant)
    image = upload_build(home_assistant)
    log_in(page, home_assistant, screenshots)
    start_rollout(page, api, screenshots)
    hub_page = open_hub_device(page, screenshots)
    run_devices_until_done(devices, image, api)
    see_it_complete(page, hub_page, api, devices, screenshots)


def set_up_fleet(home_assistant: RunningHomeAssistant) -> list[SimulatedDevice]:
    """Add the hub and four devices over REST; each calls once, running 1.0.0."""
    api = home_assistant.api
    form = api.post("/api/config/config_entries/flow", {"handler": "providore"})
    entry = api.post(f"/api/config/config_entries/flow/{form['flow_id']}", HUB_SETTINGS)
    entry_id = entry["result"]["entry_id"]
    devices = []
    for name in DEVICE_NAMES:
        flow = api.post(
            "/api/config/config_entries/subentries/flow",
            {"handler": [entry_id, "device"]},
        )
        flow_path = f"/api/config/config_entries/subentries/flow/{flow['flow_id']}"
        api.post(flow_path, {"next_step_id": "new_key"})
        added = api.post(
            flow_path,
            {
                "name": name,
                "firmware_type": FIRMWARE_TYPE,
                "certificate_usage": "client",
            },
        )
        assert added["type"] == "create_entry", added
        bundle = api.call_service(
            "providore",
            "provisioning_bundle",
            {"key_id": added["description_placeholders"]["key_id"]},
            response=True,
        )
        device = SimulatedDevice.flashed_with(bundle)
        assert device.call("GET", "/firmware/check").status == 204
        devices.append(device)
    return devices


def upload_build(home_assistant: RunningHomeAssistant) -> bytes:
    """Upload build 1.1.0 with the action."""
    image = os.urandom(96 * 1024)
    (home_assistant.config_dir / "fleet-1.1.0.bin").write_bytes(image)
    home_assistant.api.call_service(
        "providore",
        "upload_firmware",
        {
            "firmware_type": FIRMWARE_TYPE,
            "version": NEW_VERSION,
            "path": "fleet-1.1.0.bin",
        },
    )
    return image


def log_in(
    page: Page, home_assistant: RunningHomeAssistant, shots: Screenshots
) -> None:
    """Log in through Home Assistant's login page."""
    page.goto(home_assistant.url)
    page.get_by_role("textbox", name="Username").fill(USERNAME)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/lovelace"))
    expect(page.get_by_role("option", name="Settings").first).to_be_visible()
    shots.take(page, "logged-in")


def start_rollout(page: Page, api: HomeAssistantApi, shots: Screenshots) -> None:
    """Configure → Start a rollout: the build, waves 1 and 50 %, healthy for 2 s."""
    page.get_by_role("option", name="Settings").first.click()
    page.get_by_role("menuitem", name="Devices & services").click()
    page.locator("ha-integration-card").filter(has_text="Providore").click()
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore").first
    hub_row.get_by_role("button", name="Configure").click()
    flow = page.locator("dialog-data-entry-flow")
    item = flow.get_by_text("Start a rollout", exact=True)
    expect(item).to_be_visible()
    expect(flow.get_by_text("Pause, resume or cancel a rollout")).to_be_visible()
    shots.take(page, "hub-options")
    item.click()

    expect(flow.get_by_role("heading", name="Start a rollout")).to_be_visible()
    build = flow.get_by_role("combobox", name="Firmware")
    expect(build).to_contain_text(f"{FIRMWARE_TYPE} {NEW_VERSION}")
    waves = flow.get_by_role("textbox", name="Waves")
    expect(waves).to_have_value("1, 10%")
    shots.take(page, "rollout-form")
    waves.fill("1, 50%")
    healthy_for = flow.locator("ha-selector-duration").get_by_role("spinbutton")
    healthy_for.nth(1).fill("0")
    healthy_for.nth(2).fill("2")
    flow.get_by_role("spinbutton", name="Failures allowed per wave").fill("0")
    flow.get_by_role("button", name="Submit").scroll_into_view_if_needed()
    shots.take(page, "rollout-form-filled")
    flow.get_by_role("button", name="Submit").click()

    expect(flow.get_by_text("Rollout started", exact=True)).to_be_visible()
    expect(flow).to_contain_text(
        f"Rolling out firmware {FIRMWARE_TYPE} {NEW_VERSION}. Devices: 4; waves: 3."
    )
    shots.take(page, "rollout-started")
    flow.locator("mwc-button", has_text="Close").click()

    assert api.state_value(ROLLOUT) == "running"
    assert api.state_value(ROLLOUT_WAVE) == "1/3"


def open_hub_device(page: Page, shots: Screenshots) -> Locator:
    """Open the Providore device: its sensors show the rollout."""
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore").first
    hub_row.get_by_role("link", name="1 service").click()
    sensors = entity_card(page, "Sensors")
    expect(sensors).to_contain_text(f"{FIRMWARE_TYPE} rollout")
    expect(sensors).to_contain_text("Running")
    expect(sensors).to_contain_text("1/3")
    shots.take(page, "hub-device-running")
    return sensors


def run_devices_until_done(
    devices: list[SimulatedDevice], image: bytes, api: HomeAssistantApi
) -> None:
    """Each device checks, downloads, verifies and reboots, until all run 1.1.0."""
    running = {device.key_id: device for device in devices}
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    while any(d.firmware_version != NEW_VERSION for d in running.values()):
        assert time.monotonic() < deadline, api.state(ROLLOUT)
        for key_id, device in running.items():
            answer = device.call("GET", "/firmware/check")
            if answer.status == 204:
                continue
            assert answer.status == 302, (answer.status, answer.body)
            location = answer.headers["Location"].removeprefix(device.base_url)
            path, _, query = location.partition("?")
            download = device.call("GET", path, query=f"?{query}")
            assert download.status == 200, download.status
            assert download.body == image
            assert download.headers["X-Firmware-SHA256"] == (
                hashlib.sha256(image).hexdigest()
            )
            device.verify_firmware(download, download.body)
            running[key_id] = device.rebooted_into(NEW_VERSION)
            assert running[key_id].call("GET", "/firmware/check").status == 204
        time.sleep(POLL_SECONDS)
    # They keep calling through the last wave's health time.
    wait_for(
        "the rollout to complete",
        lambda: api.state_value(ROLLOUT) == "completed"
        or any(
            d.call("GET", "/firmware/check").status != 204 for d in running.values()
        ),
        timeout=ROLLOUT_TIMEOUT,
    )


def see_it_complete(
    page: Page,
    sensors: Locator,
    api: HomeAssistantApi,
    devices: list[SimulatedDevice],
    shots: Screenshots,
) -> None:
    """See the completed rollout of four devices on the page and over REST."""
    expect(sensors).to_contain_text("Completed")
    expect(sensors).to_contain_text("3/3")
    expect(sensors).to_contain_text("100")
    shots.take(page, "hub-device-completed")
    state = api.state(ROLLOUT)
    assert state is not None
    assert state["state"] == "completed"
    attributes = state["attributes"]
    assert (attributes["devices"], attributes["updated"]) == (4, 4)
    assert [wave["devices"] for wave in attributes["wave_counts"]] == [1, 2, 1]
    assert api.state_value(ROLLOUT_PROGRESS) == "100"
    logbook = page.locator("ha-card").filter(has_text="Logbook")
    expect(logbook).to_contain_text("completed the esp32s2-sensor rollout")
    logbook.scroll_into_view_if_needed()
    shots.take(page, "hub-device-logbook")
    assert len(devices) == len(DEVICE_NAMES)


def entity_card(page: Page, heading: str) -> Locator:
    """Return the card of a device page that lists the entities under `heading`."""
    return page.locator("ha-card").filter(
        has=page.get_by_role("heading", name=heading, exact=True)
    )
