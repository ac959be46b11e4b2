"""What the runtime knows of the hub and its devices: settings, profiles, changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Flag, StrEnum, auto
from typing import Any

from homeassistant.config_entries import ConfigSubentry

from .certificate_authority import CertificateUsage
from .const import (
    CONF_ANSWER_PROVIDORE_LOCAL,
    CONF_CERTIFICATE_USAGE,
    CONF_CERTIFICATE_VALIDITY,
    CONF_CHIP_FAMILY,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAC,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_NOTIFY_MQTT,
    CONF_NOTIFY_UDP,
    CONF_NOTIFY_UDP_BROADCAST,
    CONF_NOTIFY_UDP_PORT,
    CONF_ONLINE_INTERVAL,
    CONF_PROJECT_NAME,
    CONF_UPDATE_TIMEOUT,
    DEFAULT_CERTIFICATE_VALIDITY,
    DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_MAX_REQUEST_LIFETIME,
    DEFAULT_ONLINE_INTERVAL,
    DEFAULT_UPDATE_TIMEOUT,
    SUBENTRY_TYPE_ESPHOME_DEVICE,
)
from .esphome_image import ChipFamily
from .notice import DEFAULT_UDP_PORT


class DeviceChange(Flag):
    """What changed about a device; each entity listens for what it shows."""

    NONE = 0
    LAST_SEEN = auto()
    ADDRESS = auto()
    FIRMWARE_VERSION = auto()
    CONNECTIVITY = auto()
    # The assignment, the download progress, or the builds offered for its type.
    UPDATE = auto()
    AUTO_UPDATE = auto()
    CERTIFICATE = auto()
    # Its name, firmware type or certificate usage.
    PROFILE = auto()
    # One of its configuration documents.
    CONFIG = auto()
    # An ESPHome device: ESPHome's own device for its MAC appeared or went away.
    ATTACHMENT = auto()


@dataclass(frozen=True, slots=True, kw_only=True)
class HubSettings:
    """The hub's options, with their defaults filled in."""

    max_clock_skew: timedelta
    max_request_lifetime: timedelta
    online_interval: timedelta
    update_timeout: timedelta
    certificate_validity: timedelta
    # The zeroconf advertisement's host name is providore.local.
    answer_providore_local: bool = False
    notify_mqtt: bool = False
    notify_udp: bool = False
    notify_udp_port: int = DEFAULT_UDP_PORT
    notify_udp_broadcast: bool = False

    @property
    def notifies(self) -> bool:
        """Return whether any push notice backend is turned on."""
        return self.notify_mqtt or self.notify_udp

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HubSettings:
        """Read the settings from the entry's options."""

        def seconds(key: str, default: int) -> timedelta:
            return timedelta(seconds=options.get(key, default))

        return cls(
            max_clock_skew=seconds(CONF_MAX_CLOCK_SKEW, DEFAULT_MAX_CLOCK_SKEW),
            max_request_lifetime=seconds(
                CONF_MAX_REQUEST_LIFETIME, DEFAULT_MAX_REQUEST_LIFETIME
            ),
            online_interval=seconds(CONF_ONLINE_INTERVAL, DEFAULT_ONLINE_INTERVAL),
            update_timeout=seconds(CONF_UPDATE_TIMEOUT, DEFAULT_UPDATE_TIMEOUT),
            certificate_validity=timedelta(
                days=options.get(
                    CONF_CERTIFICATE_VALIDITY, DEFAULT_CERTIFICATE_VALIDITY
                )
            ),
            answer_providore_local=options.get(CONF_ANSWER_PROVIDORE_LOCAL, False),
            notify_mqtt=options.get(CONF_NOTIFY_MQTT, False),
            notify_udp=options.get(CONF_NOTIFY_UDP, False),
            notify_udp_port=options.get(CONF_NOTIFY_UDP_PORT, DEFAULT_UDP_PORT),
            notify_udp_broadcast=options.get(CONF_NOTIFY_UDP_BROADCAST, False),
        )


class DeviceKind(StrEnum):
    """What a device runs: Providore's protocol (signed requests) or ESPHome."""

    PROVIDORE = "providore"
    ESPHOME = "esphome"


@dataclass(frozen=True, slots=True, kw_only=True)
class EspHomeProfile:
    """What an ESPHome device adds to its profile: how ESPHome knows it."""

    chip_family: ChipFamily
    # ESPHome's `esphome: project: name:` (author.name).
    project_name: str
    # Lowercase and colon-separated, as Home Assistant's device registry keeps it.
    mac: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """A device as the user configured it (one config subentry)."""

    subentry_id: str
    key_id: str
    name: str
    firmware_type: str | None
    certificate_usage: CertificateUsage = CertificateUsage.CLIENT
    # Set for an ESPHome device: it fetches firmware with a token, never signs.
    esphome: EspHomeProfile | None = None

    @property
    def kind(self) -> DeviceKind:
        """Return what the device runs."""
        return DeviceKind.PROVIDORE if self.esphome is None else DeviceKind.ESPHOME

    @classmethod
    def from_subentry(cls, subentry: ConfigSubentry) -> DeviceProfile:
        """Read a device subentry (a Providore or an ESPHome device)."""
        data = subentry.data
        esphome = None
        if subentry.subentry_type == SUBENTRY_TYPE_ESPHOME_DEVICE:
            esphome = EspHomeProfile(
                chip_family=ChipFamily(data[CONF_CHIP_FAMILY]),
                project_name=data[CONF_PROJECT_NAME],
                mac=data[CONF_MAC],
            )
        return cls(
            subentry_id=subentry.subentry_id,
            key_id=data[CONF_KEY_ID],
            name=subentry.title,
            firmware_type=data.get(CONF_FIRMWARE_TYPE) or None,
            certificate_usage=CertificateUsage(
                data.get(CONF_CERTIFICATE_USAGE, CertificateUsage.CLIENT)
            ),
            esphome=esphome,
        )
