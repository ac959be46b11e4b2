"""Migrating a flashed device and flashing it again, in Home Assistant's own frontend.

A user adds a device that already holds its key, trips over a form error on the way
(the secret key typed first must survive it), and the device then authenticates with
that key. From the device's Configure → Flash the device the user downloads the NVS
images, which hold exactly what the Providore firmware reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .browser import Screenshots, require_browser

require_browser()

from playwright.sync_api import Locator, Page, expect  # once it is installed

from ..nvs_image import read_nvs
from .home_assistant import HomeAssistantApi, RunningHomeAssistant
from .simulated_device import SimulatedDevice
from .test_browser import add_hub, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEVICE_NAME = "Porch light"
KEY_ID = "porch-light"
# What the device was flashed with for another Providore server.
SECRET_KEY = "Mig*rated_K3y<from>old`server"
FIRMWARE_TYPE = "esp32c3-relay"
CONFIG_DOCUMENT = {"relay": "on"}
EXPECTED_NVS = {"providore": {"device_id": KEY_ID, "psk": SECRET_KEY}}


def test_user_migrates_a_device_and_flashes_it(
    home_assistant: RunningHomeAssistant,
    page: Page,
    screenshots: Screenshots,
    tmp_path: Path,
) -> None:
    """Add a device with its own key through a form error; download its NVS images."""
    log_in(page, home_assistant, screenshots)
    add_hub(page, home_assistant.api, screenshots)
    migrate_device(page, screenshots)
    device_authenticates_with_its_key(home_assistant.api)
    flash_ready = open_flash_the_device(page, home_assistant.api, screenshots)
    download_nvs_images(page, flash_ready, tmp_path, screenshots)
    upload_firmware_through_an_error(page, home_assistant, tmp_path, screenshots)


def migrate_device(page: Page, shots: Screenshots) -> None:
    """Add device → Enter the key the device already holds, with a bad key ID first."""
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore")
    hub_row.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Add device").click()

    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_role("heading", name="Add a device")).to_be_visible()
    expect(flow.get_by_text("Generate a new key", exact=True)).to_be_visible()
    shots.take(page, "add-device-menu")
    flow.get_by_text("Enter the key the device already holds", exact=True).click()

    expect(
        flow.get_by_role("heading", name="Add a device that holds its key")
    ).to_be_visible()
    flow.get_by_role("textbox", name="Name").fill(DEVICE_NAME)
    key_id = flow.get_by_role("textbox", name="Key ID")
    key_id.fill("porch light")  # a space: not a key ID
    secret = flow.get_by_role("textbox", name="Secret key")
    secret.fill(SECRET_KEY)
    flow.get_by_role("textbox", name="Firmware type").fill(FIRMWARE_TYPE)
    shots.take(page, "existing-key-form")
    flow.get_by_role("button", name="Submit").click()

    # The error shows under the key ID; everything typed is still there, the secret
    # key kept on the server (the field holds a marker, not the key).
    expect(flow).to_contain_text("A key ID has 1 to 32 letters")
    expect(flow.get_by_role("textbox", name="Name")).to_have_value(DEVICE_NAME)
    expect(key_id).to_have_value("porch light")
    expect(secret).to_have_value("(kept)")
    expect(flow.get_by_role("textbox", name="Firmware type")).to_have_value(
        FIRMWARE_TYPE
    )
    shots.take(page, "existing-key-error")

    key_id.fill(KEY_ID)
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_role("heading", name="Success!")).to_be_visible()
    expect(flow).to_contain_text(
        f"{DEVICE_NAME} was added with key ID {KEY_ID} and the secret key you entered"
    )
    expect(flow).not_to_contain_text("Developer tools")
    shots.take(page, "device-migrated")
    close_flow(page, flow.get_by_role("button", name="Finish"))


def device_authenticates_with_its_key(api: HomeAssistantApi) -> None:
    """Let the flashed device call in with the key it already held: it is served."""
    api.call_service(
        "providore", "set_config", {"key_id": KEY_ID, "config": CONFIG_DOCUMENT}
    )
    device = SimulatedDevice(KEY_ID, SECRET_KEY, f"{api.url}/api/providore")

    answer = device.call("GET", "/config")

    assert answer.status == 200, answer.body
    assert answer.json() == CONFIG_DOCUMENT
    assert device.answer_is_signed(answer)


def open_flash_the_device(
    page: Page, api: HomeAssistantApi, shots: Screenshots
) -> Locator:
    """Open the device's Configure → Flash the device: the key, PROVIDORE_SERVER, commands."""
    device_row = page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME)
    device_row.get_by_role("button", name="Configure").click()
    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_text("Flash the device", exact=True)).to_be_visible()
    expect(flow.get_by_text("Change its settings", exact=True)).to_be_visible()
    expect(flow.get_by_text("Revoke its certificate", exact=True)).to_be_visible()
    shots.take(page, "device-configure-menu")
    flow.get_by_text("Flash the device", exact=True).click()

    expect(flow.get_by_role("heading", name=f"Flash {DEVICE_NAME}")).to_be_visible()
    expect(flow.get_by_role("textbox", name="NVS partition offset")).to_have_value(
        "0x9000"
    )
    expect(flow.get_by_role("textbox", name="NVS partition size")).to_have_value(
        "0x6000"
    )
    expect(flow).not_to_contain_text(SECRET_KEY)
    flow.get_by_role("textbox", name="NVS keys partition offset").fill("0x310000")
    shots.take(page, "flash-form")
    flow.get_by_role("button", name="Submit").click()

    server_url = f"{api.url}/api/providore"
    expect(flow).to_contain_text(f"Flash {DEVICE_NAME}")
    expect(flow).to_contain_text(f"Secret key: {SECRET_KEY}")
    expect(flow).to_contain_text(f"Key ID: {KEY_ID}")
    expect(flow).to_contain_text(f"Base URL: {server_url}")
    expect(flow).to_contain_text("PROVIDORE_SERVER (menuconfig → Providore")
    nvs_file = f"providore-{KEY_ID}-nvs.bin"
    expect(flow).to_contain_text(
        f"esptool.py --port PORT write_flash 0x9000 {nvs_file}"
    )
    expect(flow).to_contain_text(
        f"esptool.py --port PORT write_flash --encrypt 0x310000 providore-{KEY_ID}-nvs-keys.bin"
    )
    shots.take(page, "flash-ready")
    return flow


def download_nvs_images(
    page: Page, flow: Locator, folder: Path, shots: Screenshots
) -> None:
    """Click the image links like a user; the files hold the key the firmware reads."""
    files = {}
    for name in ("nvs", "nvs-encrypted", "nvs-keys"):
        filename = f"providore-{KEY_ID}-{name}.bin"
        link = flow.get_by_role("link", name=filename, exact=True)
        href = link.get_attribute("href") or ""
        assert href.startswith("/api/providore/provisioning/"), href
        assert KEY_ID not in href
        assert SECRET_KEY not in href
        # The link opens a tab of its own, whose answer is the download.
        with page.expect_download() as started:
            link.click()
        download = started.value
        assert download.suggested_filename == filename
        target = folder / filename
        download.save_as(target)
        files[name] = target.read_bytes()

    assert len(files["nvs"]) == 0x6000
    assert read_nvs(files["nvs"]) == EXPECTED_NVS
    assert SECRET_KEY.encode() not in files["nvs-encrypted"]
    assert read_nvs(files["nvs-encrypted"], files["nvs-keys"][:64]) == EXPECTED_NVS
    # The dialog is still there, for the next file or to read the commands again.
    expect(flow).to_contain_text("These links work for 10 minutes")
    shots.take(page, "downloaded")


def upload_firmware_through_an_error(
    page: Page, home_assistant: RunningHomeAssistant, folder: Path, shots: Screenshots
) -> None:
    """Upload firmware with a bad version first: the chosen file survives the error."""
    image = os.urandom(4096)
    firmware_file = folder / "relay-1.1.0.bin"
    firmware_file.write_bytes(image)
    flow = page.locator("dialog-data-entry-flow")
    close_flow(page, flow.locator("mwc-button", has_text="Close"))
    # A fresh page: the frontend can drop a dialog opened right after another closed.
    page.goto(f"{home_assistant.url}/config/integrations/integration/providore")
    expect(page.locator("ha-md-list-item").filter(has_text=DEVICE_NAME)).to_be_visible()
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore").first
    hub_row.get_by_role("button", name="Configure").click()
    flow.get_by_text("Upload firmware", exact=True).click()
    flow.locator("input[type=file]").set_input_files(firmware_file)
    expect(flow).to_contain_text(firmware_file.name)  # uploaded to Home Assistant
    flow.get_by_role("combobox", name="Firmware type").click()
    page.get_by_role("option", name=FIRMWARE_TYPE, exact=True).click()
    version = flow.get_by_role("textbox", name="Version")
    version.fill("1.1.0/..")
    flow.get_by_role("button", name="Submit").click()

    expect(flow).to_contain_text("A firmware type or version has 1 to 64 letters")
    # The upload is still chosen; the frontend no longer knows its name.
    expect(flow).to_contain_text("Unknown file")
    expect(version).to_have_value("1.1.0/..")
    shots.take(page, "upload-error-keeps-file")
    version.fill("1.1.0")
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_text("Firmware uploaded", exact=True)).to_be_visible()
    shots.take(page, "uploaded-after-error")

    stored = home_assistant.config_dir.joinpath(
        "providore", "firmware", FIRMWARE_TYPE, "1.1.0.bin"
    )
    assert stored.read_bytes() == image


def close_flow(page: Page, button: Locator) -> None:
    """Close a flow's dialog and wait until the frontend is done closing it.

    Closing a dialog steps back in the browser history, and the frontend closes
    whatever dialog is open when that step arrives: a dialog opened before it
    would close at once.
    """
    button.click()
    expect(page.locator("dialog-data-entry-flow ha-dialog")).to_have_count(0)
    page.wait_for_function("() => !(history.state && history.state.dialog)")
