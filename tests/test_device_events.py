"""A device's history: bus events, and their lines in the Logbook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.providore import logbook
from custom_components.providore.const import DOMAIN
from custom_components.providore.device_events import EVENT_DEVICE, describe

from .conftest import FIRMWARE_TYPE, KEY_ID, loaded_runtime
from .device_calls import record_contact
from .pki import ec_key, make_csr


def _describer(
    hass: HomeAssistant,
) -> Callable[[Event[dict[str, Any]]], dict[str, str]]:
    described: dict[
        tuple[str, str], Callable[[Event[dict[str, Any]]], dict[str, str]]
    ] = {}
    logbook.async_describe_events(
        hass, lambda domain, event, fn: described.__setitem__((domain, event), fn)
    )
    return described[(DOMAIN, EVENT_DEVICE)]


async def test_a_device_history_reaches_the_logbook(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    config_dir: Path,
) -> None:
    events = async_capture_events(hass, EVENT_DEVICE)
    runtime = loaded_runtime(hass)
    record_contact(hass, "1.0.0", "192.0.2.7")
    record_contact(hass, "1.0.0", "192.0.2.7")  # only the first contact is news
    (config_dir / "fw.bin").write_bytes(b"\xe9 build")
    await runtime.async_add_build(FIRMWARE_TYPE, "1.1.0", config_dir / "fw.bin")
    await runtime.async_install_firmware(KEY_ID, "1.1.0")
    await runtime.async_cancel_update(KEY_ID)
    csr = await hass.async_add_executor_job(lambda: make_csr(ec_key(), KEY_ID))
    issued = await runtime.async_issue_certificate(KEY_ID, csr)
    await runtime.async_revoke_certificates(KEY_ID)
    await runtime.async_rotate_key(KEY_ID)
    await hass.async_block_till_done()

    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert {event.data["device_id"] for event in events} == {device.id}
    describe_event = _describer(hass)
    lines = [describe_event(event) for event in events]
    assert {line["name"] for line in lines} == {"Garden sensor"}
    issued_event = next(e for e in events if e.data["type"] == "certificate_issued")
    assert issued_event.data["serial"] == issued.serial_hex
    assert issued_event.data["expires"] == issued.not_after.isoformat()
    assert [line["message"] for line in lines] == [
        "called Providore for the first time, from 192.0.2.7",
        "was assigned firmware 1.1.0",
        "had firmware 1.1.0 withdrawn (cancelled)",
        f"was issued a certificate valid until {issued.not_after.date().isoformat()}",
        "had its certificates revoked (by an administrator)",
        "was given a new secret key",
    ]


def test_odd_event_data_never_breaks_the_logbook() -> None:
    assert describe("something_new", {}) == "something_new"
    assert describe("update_assigned", {}) == "update_assigned"
