"""What the simulated devices have done so far, read from `providore-client simulate` events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import re
import time

_STARTED = re.compile(r"started \(.*, firmware (?P<version>\S+)\)")
_REBOOTED = re.compile(r"rebooted into (?P<version>\S+)")
_CERTIFICATE = re.compile(r"certificate (issued, expires|valid until) \S+")
_FAILED = re.compile(r"failed (?P<step>\w+): (?P<reason>.*)")
_NOTICE = re.compile(r"notice \d+ from \S+ \S+: \S+")
_NOTICE_END = re.compile(r"notice \d+ (done|failed)")


@dataclass(slots=True)
class DeviceProgress:
    """One simulated device's progress."""

    version: str | None = None
    config_fetched: bool = False
    has_certificate: bool = False
    failures: list[str] = field(default_factory=list)
    # While it pulls what a push notice names; when it last fetched its
    # configuration for one, and when it last rebooted (time.monotonic()).
    in_notice: bool = False
    config_pushed_at: float | None = None
    rebooted_at: float | None = None


class DeviceEvents:
    """Progress of every simulated device, fed one event line at a time."""

    def __init__(
        self,
        device_ids: list[str],
        esphome_names: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Track the given devices (and ESPHome devices); lines about others are ignored."""
        self.devices = {
            device_id: DeviceProgress() for device_id in (*device_ids, *esphome_names)
        }
        # ESPHome devices fetch no configuration and hold no certificate.
        self._esphome = frozenset(esphome_names)
        self._clock = clock

    def feed(self, line: str) -> tuple[str, str] | None:
        """Record one event line; return (device id, new version) when a device rebooted."""
        device_id, _, event = line.strip().partition(" ")
        if (progress := self.devices.get(device_id)) is None:
            return None
        if match := _STARTED.fullmatch(event):
            progress.version = match["version"]
        elif match := _REBOOTED.fullmatch(event):
            progress.version = match["version"]
            progress.rebooted_at = self._clock()
            return device_id, progress.version
        elif _NOTICE.fullmatch(event):
            progress.in_notice = True
        elif _NOTICE_END.fullmatch(event):
            progress.in_notice = False
        elif event == "config fetched":
            progress.config_fetched = True
            if progress.in_notice:
                progress.config_pushed_at = self._clock()
        elif _CERTIFICATE.fullmatch(event):
            progress.has_certificate = True
        elif match := _FAILED.fullmatch(event):
            progress.failures.append(f"{match['step']}: {match['reason']}")
        return None

    def missing(
        self, updated_device: str | None = None, version: str = ""
    ) -> list[str]:
        """Return what is still missing for the demo to count as working.

        Every device must have fetched its configuration and hold a certificate (an
        ESPHome device must have started); `updated_device`, when given, must run
        `version`.
        """
        missing = []
        for device_id, progress in self.devices.items():
            if device_id in self._esphome:
                if progress.version is None:
                    missing.append(f"{device_id} has not started")
            else:
                if not progress.config_fetched:
                    missing.append(f"{device_id} has not fetched its configuration")
                if not progress.has_certificate:
                    missing.append(f"{device_id} has no certificate")
            if device_id == updated_device:
                missing += self.version_missing(device_id, version)
        return missing

    def not_running(self, version: str) -> list[str]:
        """Return each device that does not run `version` yet."""
        return [
            f"{device_id} runs {progress.version or 'nothing yet'}, not {version}"
            for device_id, progress in self.devices.items()
            if progress.version != version
        ]

    def version_missing(self, device_id: str, version: str) -> list[str]:
        """Return what is missing for the device to run `version`."""
        progress = self.devices[device_id]
        if progress.version == version:
            return []
        return [f"{device_id} runs {progress.version or 'nothing yet'}, not {version}"]

    def last_failures(self) -> list[str]:
        """Return each device's most recent failed step, to explain a missing outcome."""
        return [
            f"{device_id} last failed {progress.failures[-1]}"
            for device_id, progress in self.devices.items()
            if progress.failures
        ]
