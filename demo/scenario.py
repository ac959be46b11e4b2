"""The demo scenario: Providore, three devices with documents and keys, and a new firmware.

Every step goes through Home Assistant's REST API, as a user's browser would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import hashlib
from pathlib import Path
from typing import Any

from .devices_file import DeviceEntry, write_devices
from .rest import HomeAssistantRest
from .waiting import Deadline, wait_until

DOMAIN = "providore"
FIRMWARE_TYPE = "demo-sensor"
START_VERSION = "1.0.0"
NEW_VERSION = "1.1.0"
FIRMWARE_SIZE = 48 * 1024
# Inside the config folder: the generated firmware and the devices file.
DEMO_FOLDER = "providore-demo"

CONFIG_FLOW_PATH = "/api/config/config_entries/flow"
SUBENTRY_FLOW_PATH = "/api/config/config_entries/subentries/flow"
OPTIONS_FLOW_PATH = "/api/config/config_entries/options/flow"
ENTRIES_PATH = "/api/config/config_entries/entry"
# The hub reloads with new options; this long at most.
RELOAD_TIMEOUT = 30.0

# The hub's settings; devices count as offline a minute after they stop calling.
HUB_SETTINGS = {
    "max_clock_skew": 300,
    "max_request_lifetime": 900,
    "online_interval": 60,
    "update_timeout": 600,
    "certificate_validity": 365,
}


def notice_settings(udp_port: int) -> dict[str, Any]:
    """Return the hub's settings with push notices by UDP to `udp_port` turned on.

    The simulated devices listen there on 127.0.0.1 (their last address), so a
    change reaches them at once instead of at their next poll.
    """
    return HUB_SETTINGS | {
        "notify_mqtt": False,
        "notify_udp": True,
        "notify_udp_port": udp_port,
        "notify_udp_broadcast": False,
        "answer_providore_local": False,
    }


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """A device the demo adds, and the entities Home Assistant gives it."""

    name: str
    key_id: str
    config: dict[str, Any]

    @property
    def _object_id(self) -> str:
        return self.name.lower().replace(" ", "_")

    @property
    def update_entity(self) -> str:
        """Return the entity id of its Firmware update entity."""
        return f"update.{self._object_id}_firmware"

    @property
    def certificate_sensor(self) -> str:
        """Return the entity id of its Certificate expires sensor."""
        return f"sensor.{self._object_id}_certificate_expires"


DEMO_DEVICES = (
    DemoDevice(
        "Garden sensor",
        "garden-sensor",
        {"interval": 30, "mqtt": {"host": "broker.local", "topic": "home/garden"}},
    ),
    DemoDevice(
        "Hallway display",
        "hallway-display",
        {"interval": 60, "brightness": 70, "mqtt": {"host": "broker.local"}},
    ),
    DemoDevice(
        "Garage door",
        "garage-door",
        {"interval": 10, "mqtt": {"host": "broker.local", "topic": "home/garage"}},
    ),
)


def devices_file(config_dir: Path) -> Path:
    """Return where the demo keeps its devices file."""
    return config_dir / DEMO_FOLDER / "devices.yaml"


async def set_up_demo(
    rest: HomeAssistantRest, config_dir: Path, notice_port: int
) -> list[DeviceEntry]:
    """Add Providore, the demo devices and a new firmware; write the devices file.

    Push notices go by UDP to `notice_port` on the devices' address.
    """
    entry = await rest.finish_flow(CONFIG_FLOW_PATH, {"handler": DOMAIN}, HUB_SETTINGS)
    entry_id: str = entry["result"]["entry_id"]
    await rest.finish_flow(
        OPTIONS_FLOW_PATH,
        {"handler": entry_id},
        notice_settings(notice_port),
        menu_choice="settings",
    )
    await _wait_until_loaded(rest, entry_id)
    devices = [await _add_device(rest, entry_id, device) for device in DEMO_DEVICES]
    await upload_demo_firmware(rest, config_dir)
    await asyncio.to_thread(write_devices, devices_file(config_dir), devices)
    return devices


async def _add_device(
    rest: HomeAssistantRest, entry_id: str, device: DemoDevice
) -> DeviceEntry:
    """Add one device, give it its document, and fetch its key as a user flashing it would."""
    await rest.finish_flow(
        SUBENTRY_FLOW_PATH,
        {"handler": [entry_id, "device"]},
        {
            "name": device.name,
            "key_id": device.key_id,
            "firmware_type": FIRMWARE_TYPE,
        },
    )
    await rest.call_service(
        DOMAIN, "set_config", {"key_id": device.key_id, "config": device.config}
    )
    bundle = await rest.service_response(
        DOMAIN, "provisioning_bundle", {"key_id": device.key_id}
    )
    return DeviceEntry(
        id=bundle["key_id"],
        secret=bundle["secret_key"],
        firmware_type=FIRMWARE_TYPE,
        version=START_VERSION,
    )


async def _wait_until_loaded(rest: HomeAssistantRest, entry_id: str) -> None:
    """Wait until the hub has reloaded with its new settings."""

    async def loaded() -> bool:
        entries = await rest.get(f"{ENTRIES_PATH}?domain={DOMAIN}")
        return any(
            entry["entry_id"] == entry_id and entry["state"] == "loaded"
            for entry in entries
        )

    await wait_until("Providore to reload", loaded, Deadline(RELOAD_TIMEOUT))


def demo_firmware() -> bytes:
    """Return the demo build's bytes: a readable header, then deterministic filler."""
    header = f"Providore demo firmware {FIRMWARE_TYPE} {NEW_VERSION}\n".encode()
    filler = bytearray()
    block = header
    while len(header) + len(filler) < FIRMWARE_SIZE:
        block = hashlib.sha256(block).digest()
        filler += block
    return (header + bytes(filler))[:FIRMWARE_SIZE]


async def upload_demo_firmware(rest: HomeAssistantRest, config_dir: Path) -> None:
    """Write the demo build into the config folder and upload it with the action."""
    relative = f"{DEMO_FOLDER}/{FIRMWARE_TYPE}-{NEW_VERSION}.bin"
    target = config_dir / relative
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(target.write_bytes, demo_firmware())
    await rest.call_service(
        DOMAIN,
        "upload_firmware",
        {
            "firmware_type": FIRMWARE_TYPE,
            "version": NEW_VERSION,
            "path": relative,
            "release_notes": "Demo build: faster readings and a steadier connection.",
        },
    )
