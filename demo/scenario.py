"""The demo scenario: Providore, a fleet of twelve devices, an ESPHome device, new firmware.

Three devices are added one by one as a user would (the Add device flow), nine more at
once from a CSV file (the import action), enough to show a rollout in waves; an ESPHome
device gets its own build. Every step goes through Home Assistant's REST API, as a
user's browser would.
"""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass
import hashlib
import io
from pathlib import Path
import secrets
from typing import Any

from .devices_file import DeviceEntry, EsphomeEntry, write_devices
from .rest import HomeAssistantRest
from .waiting import Deadline, wait_until

DOMAIN = "providore"
FIRMWARE_TYPE = "demo-sensor"
START_VERSION = "1.0.0"
NEW_VERSION = "1.1.0"
FIRMWARE_SIZE = 48 * 1024
# Inside the config folder: the generated firmware and the devices file.
DEMO_FOLDER = "providore-demo"
# The devices added at once with the import action, beside the three above.
FLEET_SIZE = 9
FLEET_DOCUMENT = {"interval": 60, "mqtt": {"host": "broker.local"}}
# The rollout the check starts: a canary, a quarter, then the rest; each device must
# stay online for a few seconds on the new build.
ROLLOUT_SENSOR = f"sensor.providore_{FIRMWARE_TYPE.replace('-', '_')}_rollout"
ROLLOUT = {
    "firmware_type": FIRMWARE_TYPE,
    "version": NEW_VERSION,
    "waves": "1, 25%",
    "healthy_for": {"seconds": 5},
    "max_failed_percent": 0,
}

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
        """Return the entity id of its Certificate (status) sensor."""
        return f"sensor.{self._object_id}_certificate"


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


@dataclass(frozen=True, slots=True)
class EsphomeDemoDevice:
    """The demo's ESPHome device (its integration is not set up: Providore's update serves it)."""

    name: str
    # The name its simulated device's event lines start with.
    simulator_name: str
    mac: str
    chip_family: str
    project_name: str

    @property
    def firmware_type(self) -> str:
        """Return the firmware type Providore gives its project on its chip."""
        return f"{self.project_name}-{self.chip_family.replace('-', '').lower()}"

    @property
    def update_entity(self) -> str:
        """Return the entity id of its Firmware update entity."""
        return f"update.{self.name.lower().replace(' ', '_')}_firmware"


ESPHOME_DEVICE = EsphomeDemoDevice(
    name="Porch light",
    simulator_name="porch-light",
    # A locally administered address: no real device has it.
    mac="02:00:00:00:00:01",
    chip_family="ESP32-C3",
    project_name="providore.demo_light",
)
# The ESP32-C3 chip id and the application description's magic word, as esptool writes them.
_ESP32_C3_HEADER = (
    bytes([0xE9, 1, 2, 0x20])
    + (0x40380000).to_bytes(4, "little")
    + bytes([0xEE, 0, 0, 0])
    + (5).to_bytes(2, "little")
    + bytes(10)
    + (0x3C000020).to_bytes(4, "little")
    + (64).to_bytes(4, "little")
    + (0xABCD5432).to_bytes(4, "little")
)


def devices_file(config_dir: Path) -> Path:
    """Return where the demo keeps its devices file."""
    return config_dir / DEMO_FOLDER / "devices.yaml"


def esphome_devices_file(config_dir: Path) -> Path:
    """Return where the demo keeps its ESPHome device (its manifest URL holds its token)."""
    return config_dir / DEMO_FOLDER / "esphome.yaml"


async def set_up_demo(
    rest: HomeAssistantRest, config_dir: Path, notice_port: int
) -> list[DeviceEntry]:
    """Add Providore, the demo devices, the fleet, an ESPHome device and new firmware; write the devices files.

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
    devices += await _import_fleet(rest, config_dir)
    await upload_demo_firmware(rest, config_dir)
    esphome = await _add_esphome_device(rest, entry_id, config_dir)
    await asyncio.to_thread(write_devices, devices_file(config_dir), devices)
    await asyncio.to_thread(write_devices, esphome_devices_file(config_dir), [esphome])
    return devices


async def _add_esphome_device(
    rest: HomeAssistantRest, entry_id: str, config_dir: Path
) -> EsphomeEntry:
    """Add the ESPHome device, upload its new build, and take its manifest URL."""
    device = ESPHOME_DEVICE
    await rest.finish_flow(
        SUBENTRY_FLOW_PATH,
        {"handler": [entry_id, "esphome_device"]},
        {
            "name": device.name,
            "mac": device.mac,
            "chip_family": device.chip_family,
            "project_name": device.project_name,
        },
    )
    subentries = await rest.websocket_command(
        {"type": "config_entries/subentries/list", "entry_id": entry_id}
    )
    key_id = next(
        subentry["unique_id"]
        for subentry in subentries
        if subentry["subentry_type"] == "esphome_device"
        and subentry["title"] == device.name
    )
    relative = f"{DEMO_FOLDER}/{device.project_name}-{NEW_VERSION}.ota.bin"
    target = config_dir / relative
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(target.write_bytes, demo_esphome_firmware())
    await rest.call_service(
        DOMAIN,
        "upload_esphome_firmware",
        {
            "key_id": key_id,
            "path": relative,
            "version": NEW_VERSION,
            "release_notes": "Demo build: a softer fade.",
        },
    )
    yaml = await rest.service_response(DOMAIN, "esphome_yaml", {"key_id": key_id})
    return EsphomeEntry(
        name=device.simulator_name,
        source=yaml["manifest_url"],
        chip_family=device.chip_family,
        version=START_VERSION,
    )


def demo_esphome_firmware() -> bytes:
    """Return the ESPHome demo build: an ESP32-C3 application header, then the demo bytes."""
    return (_ESP32_C3_HEADER + demo_firmware())[:FIRMWARE_SIZE]


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
        menu_choice="new_key",
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


def fleet_key_id(number: int) -> str:
    """Return the key ID of the fleet's device `number` (from 1)."""
    return f"fleet-sensor-{number}"


async def _import_fleet(rest: HomeAssistantRest, config_dir: Path) -> list[DeviceEntry]:
    """Add the fleet from a CSV file with its keys, which is deleted right after."""
    fleet = [
        DeviceEntry(
            id=fleet_key_id(number),
            secret=secrets.token_hex(16),
            firmware_type=FIRMWARE_TYPE,
            version=START_VERSION,
        )
        for number in range(1, FLEET_SIZE + 1)
    ]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("name", "key_id", "secret_key", "firmware_type"))
    writer.writerows(
        (f"Fleet sensor {number}", device.id, device.secret, FIRMWARE_TYPE)
        for number, device in enumerate(fleet, start=1)
    )
    relative = f"{DEMO_FOLDER}/fleet.csv"
    path = config_dir / relative
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(path.write_text, text.getvalue(), encoding="utf-8")
    try:
        await rest.call_service(DOMAIN, "import_devices", {"path": relative})
    finally:
        await asyncio.to_thread(path.unlink)
    for device in fleet:
        await rest.call_service(
            DOMAIN, "set_config", {"key_id": device.id, "config": FLEET_DOCUMENT}
        )
    return fleet


def demo_firmware() -> bytes:
    """Return the demo build's bytes: a readable header, then deterministic filler."""
    header = f"Providore demo firmware {FIRMWARE_TYPE} {NEW_VERSION}\n".encode()
    filler = bytearray()
    block = header
    while len(header) + len(filler) < FIRMWARE_SIZE:
        block = hashlib.sha256(block).digest()
        filler += block
    return (header + bytes(filler))[:FIRMWARE_SIZE]


async def start_demo_rollout(rest: HomeAssistantRest) -> None:
    """Start rolling the new firmware out to every device that does not run it yet."""
    await rest.call_service(DOMAIN, "start_rollout", ROLLOUT)


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
