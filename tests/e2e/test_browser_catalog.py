"""The firmware catalog, a confirmed revocation and a device's Logbook, in a real Chromium.

The hub, the device and the builds are set up over the REST API (the browser test
of test_browser.py walks those screens); what this test drives in the browser is
what a user does next: open the device's page, read the update dialog, look at
Configure → Firmware builds and delete a build, revoke the device's certificate
after the confirmation, and read the device's history in its Logbook.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from .browser import Screenshots, require_browser

require_browser()

from playwright.sync_api import Locator, Page, expect  # only once it is installed

from ..pki import ec_key, make_csr
from .home_assistant import (
    PASSWORD,
    USERNAME,
    HomeAssistantApi,
    RunningHomeAssistant,
    wait_for,
)
from .simulated_device import SimulatedDevice

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEVICE_NAME = "Weather station"
DEVICE_SLUG = "weather_station"
KEY_ID = "weather-1"
FIRMWARE_TYPE = "esp32s2-sensor"
RUNNING, ASSIGNED = "1.0.0", "1.1.0"
STATUS = f"sensor.{DEVICE_SLUG}_status"
CERTIFICATE = f"sensor.{DEVICE_SLUG}_certificate"
FIRMWARE_UPDATE = f"update.{DEVICE_SLUG}_firmware"
HUB_SETTINGS = {
    "max_clock_skew": 300,
    "max_request_lifetime": 900,
    "online_interval": 600,
    "update_timeout": 600,
    "certificate_validity": 365,
}


def test_catalog_revocation_and_history(
    home_assistant: RunningHomeAssistant, page: Page, screenshots: Screenshots
) -> None:
    """See the catalog and delete a build, revoke with confirmation, read the Logbook."""
    api = home_assistant.api
    device = set_up_a_device(home_assistant)
    log_in(page, home_assistant)
    device_page = open_device_page(page, home_assistant)
    waits_for_first_contact(page, api, screenshots)
    device_calls_and_is_assigned_a_build(page, api, device, screenshots)
    update_dialog_names_the_assigned_build(page, api, screenshots)
    delete_the_assigned_build(page, home_assistant, screenshots)
    revoke_the_certificate(page, home_assistant, device, device_page, screenshots)
    read_the_logbook(page, device_page, screenshots)


def set_up_a_device(home_assistant: RunningHomeAssistant) -> SimulatedDevice:
    """Set up the hub with its defaults, import one device from a CSV, upload two builds."""
    api = home_assistant.api
    flow = api.post("/api/config/config_entries/flow", {"handler": "providore"})
    created = api.post(
        f"/api/config/config_entries/flow/{flow['flow_id']}", HUB_SETTINGS
    )
    assert created["type"] == "create_entry", created

    config_dir = home_assistant.config_dir
    (config_dir / "devices.csv").write_text(
        f"name,key_id,firmware_type\n{DEVICE_NAME},{KEY_ID},{FIRMWARE_TYPE}\n"
    )
    api.call_service("providore", "import_devices", {"path": "devices.csv"})
    for version in (RUNNING, ASSIGNED):
        (config_dir / f"{version}.bin").write_bytes(os.urandom(48 * 1024))
        api.call_service(
            "providore",
            "upload_firmware",
            {
                "firmware_type": FIRMWARE_TYPE,
                "version": version,
                "path": f"{version}.bin",
            },
        )
    wait_for(STATUS, lambda: api.state(STATUS))
    bundle = api.call_service(
        "providore", "provisioning_bundle", {"key_id": KEY_ID}, response=True
    )
    return SimulatedDevice.flashed_with(bundle)


def log_in(page: Page, home_assistant: RunningHomeAssistant) -> None:
    """Log in through Home Assistant's login page."""
    page.goto(home_assistant.url)
    page.get_by_role("textbox", name="Username").fill(USERNAME)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    # Kept in the browser's storage, so that the test can open pages by address.
    page.get_by_role("checkbox", name="Keep me logged in").check()
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/lovelace"))
    # The frontend has its tokens (and has stored them) once it shows the sidebar.
    expect(page.get_by_role("option", name="Settings").first).to_be_visible()


def open_device_page(page: Page, home_assistant: RunningHomeAssistant) -> str:
    """Follow "1 device" on the device's row of the Providore page; return its address."""
    page.goto(f"{home_assistant.url}/config/integrations/integration/providore")
    device_row = page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME).first
    device_row.get_by_role("link", name="1 device").click()
    expect(page.get_by_text(f"Serial number: {KEY_ID}")).to_be_visible()
    return page.url


def waits_for_first_contact(
    page: Page, api: HomeAssistantApi, shots: Screenshots
) -> None:
    """See the device say it waits for its first contact, instead of Unknown."""
    sensors = entity_card(page, "Sensors")
    expect(sensors).to_contain_text("Status")
    expect(sensors).to_contain_text("Waiting for first contact")
    expect(entity_card(page, "Diagnostic")).to_contain_text("No certificate")
    shots.take(page, "waiting-for-first-contact")
    assert api.state_value(STATUS) == "waiting_for_first_contact"
    assert api.state_value(CERTIFICATE) == "none"


def device_calls_and_is_assigned_a_build(
    page: Page, api: HomeAssistantApi, device: SimulatedDevice, shots: Screenshots
) -> None:
    """Let the device call and get a certificate; assign a build to it."""
    answer = device.call("GET", "/firmware/check")
    assert answer.status == 204, answer.body  # nothing assigned yet
    csr = make_csr(ec_key(), KEY_ID)
    issued = device.call("POST", "/certificates/request", csr)
    assert issued.status == 200, issued.body
    api.call_service(
        "update", "install", {"entity_id": FIRMWARE_UPDATE, "version": ASSIGNED}
    )

    expect(entity_card(page, "Sensors")).to_contain_text("Online")
    expect(entity_card(page, "Diagnostic")).to_contain_text("Valid")
    shots.take(page, "online-with-a-certificate")
    assert api.state_value(STATUS) == "online"
    assert api.state_value(CERTIFICATE) == "valid"


def update_dialog_names_the_assigned_build(
    page: Page, api: HomeAssistantApi, shots: Screenshots
) -> None:
    """Open the Firmware dialog: its title says which build is assigned."""
    entity_card(page, "Configuration").get_by_text("Firmware", exact=True).click()
    dialog = page.locator("ha-more-info-dialog")
    title = f"{FIRMWARE_TYPE} {ASSIGNED} assigned, not running yet"
    expect(dialog.get_by_role("heading", name=title)).to_be_visible()
    expect(dialog.get_by_role("button", name="Update", exact=True)).to_be_visible()
    # Instead of release notes (none were uploaded), a line that says so.
    expect(dialog).to_contain_text("No release notes were uploaded with this build.")
    shots.take(page, "update-dialog")
    assert update_attributes(api)["title"] == title
    page.keyboard.press("Escape")
    expect(dialog.get_by_role("heading", name=title)).to_be_hidden()


def delete_the_assigned_build(
    page: Page, home_assistant: RunningHomeAssistant, shots: Screenshots
) -> None:
    """Configure → Firmware builds: the table, then delete the assigned build."""
    page.goto(f"{home_assistant.url}/config/integrations/integration/providore")
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore").first
    hub_row.get_by_role("button", name="Configure").click()
    flow = page.locator("dialog-data-entry-flow")
    flow.get_by_text("Firmware builds", exact=True).click()

    expect(flow.get_by_role("heading", name="Firmware builds")).to_be_visible()
    table = flow.get_by_role("table")
    expect(table).to_be_visible()
    uploaded = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
    expect(table.get_by_role("columnheader")).to_have_text(
        ["Firmware type", "Version", "Size", "Uploaded", "Running on", "Assigned to"]
    )
    rows = table.get_by_role("row")
    expect(rows).to_have_count(3)
    expect(rows.nth(1).get_by_role("cell")).to_have_text(
        [FIRMWARE_TYPE, ASSIGNED, "48 KiB", uploaded, "—", DEVICE_NAME]
    )
    expect(rows.nth(2).get_by_role("cell")).to_have_text(
        [FIRMWARE_TYPE, RUNNING, "48 KiB", uploaded, DEVICE_NAME, "—"]
    )
    shots.take(page, "firmware-builds")

    flow.get_by_role("combobox", name="Build to delete").click()
    page.get_by_role("option", name=f"{FIRMWARE_TYPE} {ASSIGNED}", exact=True).click()
    flow.get_by_role("button", name="Submit").click()
    heading = f"Delete firmware {FIRMWARE_TYPE} {ASSIGNED}?"
    expect(flow.get_by_role("heading", name=heading)).to_be_visible()
    expect(flow).to_contain_text(f"Assigned to: {DEVICE_NAME}.")
    shots.take(page, "delete-build-confirmation")
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_text("Firmware deleted", exact=True)).to_be_visible()
    shots.take(page, "build-deleted")
    close_flow(flow)

    stored = home_assistant.config_dir / "providore" / "firmware" / FIRMWARE_TYPE
    assert sorted(path.name for path in stored.iterdir()) == [f"{RUNNING}.bin"]
    withdrawn = update_attributes(home_assistant.api)
    assert withdrawn["in_progress"] is False
    assert withdrawn["title"] == f"{FIRMWARE_TYPE}: no build assigned"


def revoke_the_certificate(
    page: Page,
    home_assistant: RunningHomeAssistant,
    device: SimulatedDevice,
    device_page: str,
    shots: Screenshots,
) -> None:
    """Revoke from the device's Configure menu, confirm, then see Revoked."""
    # A fresh page: the one a flow just closed on may still be redrawing its rows.
    page.goto(f"{home_assistant.url}/config/integrations/integration/providore")
    device_row = page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME).first
    device_row.get_by_role("button", name="Configure").click()
    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_text("Revoke its certificate", exact=True)).to_be_visible()
    shots.take(page, "device-menu")
    flow.get_by_text("Revoke its certificate", exact=True).click()
    heading = f"Revoke the certificate of {DEVICE_NAME}?"
    expect(flow.get_by_role("heading", name=heading)).to_be_visible()
    expect(flow).to_contain_text("This cannot be undone.")
    shots.take(page, "revoke-confirmation")
    # Still valid while the user reads.
    assert home_assistant.api.state_value(CERTIFICATE) == "valid"
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_text("Certificate revoked", exact=True)).to_be_visible()
    expect(flow).to_contain_text("request a new certificate")
    shots.take(page, "certificate-revoked")
    close_flow(flow)

    page.goto(device_page)
    expect(entity_card(page, "Diagnostic")).to_contain_text("Revoked")
    shots.take(page, "device-revoked")
    assert home_assistant.api.state_value(CERTIFICATE) == "revoked"
    current = device.call("GET", "/certificate")
    assert current.status == 404, current.body


def read_the_logbook(page: Page, device_page: str, shots: Screenshots) -> None:
    """Read the device's history in readable lines in its page's Logbook."""
    page.goto(device_page)
    logbook = page.locator("ha-logbook")
    for line in (
        "called Providore for the first time, from 127.0.0.1",
        re.compile(r"was issued a certificate valid until \d{4}-\d\d-\d\d"),
        f"was assigned firmware {ASSIGNED}",
        f"had firmware {ASSIGNED} withdrawn (the build was deleted)",
        "had its certificates revoked (by an administrator)",
    ):
        expect(logbook).to_contain_text(line)
    shots.take(page, "logbook")
    # The card scrolls: its earlier lines, down to the first contact.
    logbook.hover()
    page.mouse.wheel(0, 2000)
    expect(logbook.get_by_text(re.compile("for the first time"))).to_be_visible()
    shots.take(page, "logbook-earlier")


def close_flow(flow: Locator) -> None:
    """Press Close and wait until the dialog is gone (a flow opened sooner is lost)."""
    flow.locator("mwc-button", has_text="Close").click()
    expect(flow.locator("ha-dialog")).to_have_count(0)


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
