"""The demo's devices file: what `providore-client simulate --devices-file` reads.

It holds the devices' secret keys, so it is private to the user (0600) and replaced
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


def write_devices(path: Path, devices: list[DeviceEntry]) -> None:
    """Write the devices file atomically, readable by the user only."""
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
