"""The demo's devices files: for `simulate --devices-file`, and the ESPHome devices.

The ESPHome devices are played by `providore-client esphome simulate`. The files hold
the devices' secret keys and tokens, so they are private to the user (0600) and replaced
atomically. The version each device runs is kept up to date, so simulated devices that
restart report the firmware they last rebooted into.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
import os
from pathlib import Path
import tempfile

import yaml


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One entry of the devices file."""

    id: str
    secret: str
    firmware_type: str
    version: str


@dataclass(frozen=True, slots=True)
class EsphomeEntry:
    """One ESPHome device: the name its event lines start with, its manifest URL."""

    name: str
    source: str
    chip_family: str
    version: str


def write_devices(path: Path, devices: list[DeviceEntry] | list[EsphomeEntry]) -> None:
    """Write a devices file atomically, readable by the user only."""
    text = yaml.safe_dump(
        {"devices": [asdict(device) for device in devices]}, sort_keys=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_devices(path: Path) -> list[DeviceEntry]:
    """Read a devices file this module wrote."""
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [DeviceEntry(**entry) for entry in content["devices"]]


def read_esphome_devices(path: Path) -> list[EsphomeEntry]:
    """Read an ESPHome devices file this module wrote (none: a demo set up before it)."""
    if not path.exists():
        return []
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [EsphomeEntry(**entry) for entry in content["devices"]]


def record_esphome_version(path: Path, name: str, version: str) -> None:
    """Remember that an ESPHome device now runs `version`."""
    write_devices(
        path,
        [
            replace(device, version=version) if device.name == name else device
            for device in read_esphome_devices(path)
        ],
    )


def record_version(path: Path, device_id: str, version: str) -> None:
    """Remember that a device now runs `version`."""
    devices = read_devices(path)
    write_devices(
        path,
        [
            replace(device, version=version) if device.id == device_id else device
            for device in devices
        ],
    )
