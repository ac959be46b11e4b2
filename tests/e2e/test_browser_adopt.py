"""Adopting a device that announced itself, in Home Assistant's own frontend.

A device Providore does not know says hello; the user finds it under Add device,
adopts it with the key it already holds through a form error (the secret key typed
first must survive it), and the device is then served with that key.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from .browser import Screenshots, require_browser

require_browser()

from playwright.sync_api import Page, expect  # once it is installed

from .home_assistant import HomeAssistantApi, RunningHomeAssistant
from .simulated_device import SimulatedDevice
from .test_browser import add_hub, log_in
from .test_browser_flashing import close_flow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEY_ID = "attic-fan"
FIRMWARE_TYPE = "esp32c3-fan"
MAC = "24:0a:c4:12:34:56"
SECRET_KEY = "Att1c-fan_key_from_the_factory"
DEVICE_NAME = "Attic fan"


def test_user_adopts_a_device_that_announced_itself(
    home_assistant: RunningHomeAssistant, page: Page, screenshots: Screenshots
) -> None:
    """Hello → Add device → Adopt, through an empty name, then the device is served."""
    log_in(page, home_assistant, screenshots)
    add_hub(page, home_assistant.api, screenshots)
    say_hello(home_assistant.api)
    adopt_in_add_device(page, screenshots)
    device_is_served(home_assistant.api)


def say_hello(api: HomeAssistantApi) -> None:
    """Announce the device, unauthenticated, as its firmware would."""
    body = json.dumps(
        {"key_id": KEY_ID, "firmware_type": FIRMWARE_TYPE, "mac": MAC}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (http on loopback)
        f"{api.url}/api/providore/hello",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert 200 <= answer.status < 300


def adopt_in_add_device(page: Page, shots: Screenshots) -> None:
    """Add device offers the found device; its form keeps the secret across an error."""
    page.reload()
    hub_row = page.locator("ha-md-list-item").filter(has_text="Providore")
    hub_row.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Add device").click()

    flow = page.locator("dialog-data-entry-flow")
    expect(flow.get_by_role("heading", name="Add a device")).to_be_visible()
    adopt = flow.get_by_text("Adopt a device that announced itself", exact=True)
    expect(adopt).to_be_visible()
    expect(flow.get_by_text("Generate a new key", exact=True)).to_be_visible()
    shots.take(page, "add-device-menu-with-found-device")
    adopt.click()

    expect(flow.get_by_role("heading", name="Adopt a found device")).to_be_visible()
    expect(flow).to_contain_text("What they say of themselves is not checked")
    found = flow.get_by_text(KEY_ID, exact=False)
    expect(found).to_contain_text(FIRMWARE_TYPE)
    shots.take(page, "found-devices")
    found.click()
    flow.get_by_role("button", name="Submit").click()

    expect(flow.get_by_role("heading", name=f"Adopt device {KEY_ID}")).to_be_visible()
    name = flow.get_by_role("textbox", name="Name")
    expect(name).to_have_value(f"{FIRMWARE_TYPE} {KEY_ID}")
    expect(flow.get_by_role("textbox", name="Firmware type")).to_have_value(
        FIRMWARE_TYPE
    )
    name.fill(" ")
    secret = flow.get_by_role("textbox", name="Secret key")
    secret.fill(SECRET_KEY)
    shots.take(page, "adopt-form")
    flow.get_by_role("button", name="Submit").click()

    expect(flow).to_contain_text("The name must not be empty.")
    expect(secret).to_have_value("(kept)")
    shots.take(page, "adopt-error-keeps-secret")
    name.fill(DEVICE_NAME)
    flow.get_by_role("button", name="Submit").click()
    expect(flow.get_by_role("heading", name="Success!")).to_be_visible()
    expect(flow).to_contain_text(
        f"{DEVICE_NAME} was added with key ID {KEY_ID} and the secret key you entered"
    )
    shots.take(page, "adopted")
    close_flow(page, flow.get_by_role("button", name="Finish"))


def device_is_served(api: HomeAssistantApi) -> None:
    """Call in with the key the device held from the start: it is served."""
    api.call_service("providore", "set_config", {"key_id": KEY_ID, "config": {"on": 1}})
    device = SimulatedDevice(KEY_ID, SECRET_KEY, f"{api.url}/api/providore")
    answer = device.call("GET", "/config")
    assert answer.status == 200, answer.body
    assert answer.json() == {"on": 1}
