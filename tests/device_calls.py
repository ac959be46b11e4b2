"""Record a device's request in the runtime, as the device API does after authenticating it."""

from __future__ import annotations

from datetime import datetime

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from custom_components.providore.protocol import parse_signed_request

from .conftest import KEY_ID, loaded_runtime
from .device import signed_headers


def record_contact(
    hass: HomeAssistant,
    firmware_version: str = "1.0.0",
    address: str = "192.0.2.7",
    now: datetime | None = None,
) -> None:
    """Note a signed GET /config of the test device, made at `now`."""
    now = now or dt_util.utcnow()
    signed = parse_signed_request(
        signed_headers("GET", "/config", firmware_version=firmware_version, created=now)
    )
    loaded_runtime(hass).record_contact(KEY_ID, signed, address, now)
