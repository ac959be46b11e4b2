"""The firmware update of each device: Install assigns a build, progress follows the download.

An ESPHome device gets this update entity only while Home Assistant's ESPHome
integration does not have it: ESPHome's own update entity shows and installs the
build otherwise, and a second one would only confuse.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityDescription,
    UpdateEntityFeature,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.translation import async_get_translations

from .const import DOMAIN
from .entity import ProvidoreEntity, async_add_device_entities, device_info
from .firmware_catalog import Firmware
from .models import DeviceChange, DeviceKind, DeviceProfile
from .runtime import ProvidoreConfigEntry

PARALLEL_UPDATES = 0
# The dialog's texts in strings.json: its title by what is assigned to the device,
# and what it says instead of release notes when there are none.
TEXTS = f"component.{DOMAIN}.entity.update.firmware.state_attributes"

FIRMWARE_UPDATE = UpdateEntityDescription(
    key="firmware",
    translation_key="firmware",
    device_class=UpdateDeviceClass.FIRMWARE,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ProvidoreConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the firmware update of every device, and of ESPHome devices ESPHome lacks."""
    async_add_device_entities(
        entry, async_add_entities, ProvidoreFirmwareUpdate, [FIRMWARE_UPDATE]
    )
    runtime = entry.runtime_data

    @callback
    def add_unless_attached(device: DeviceProfile) -> None:
        if device.kind is DeviceKind.ESPHOME and not runtime.esphome.is_attached(
            device.key_id
        ):
            async_add_entities(
                [
                    EsphomeFirmwareUpdate(
                        runtime, device, FIRMWARE_UPDATE, device_info(runtime, device)
                    )
                ],
                config_subentry_id=device.subentry_id,
            )

    for device in runtime.devices.values():
        add_unless_attached(device)
    entry.async_on_unload(runtime.async_on_device_added(add_unless_attached))
    entry.async_on_unload(runtime.esphome.async_on_detached(add_unless_attached))


class ProvidoreFirmwareUpdate(ProvidoreEntity, UpdateEntity):
    """The firmware a device runs versus the builds uploaded for its type."""

    shows = DeviceChange.FIRMWARE_VERSION | DeviceChange.UPDATE
    _attr_supported_features = (
        UpdateEntityFeature.INSTALL
        | UpdateEntityFeature.SPECIFIC_VERSION
        | UpdateEntityFeature.PROGRESS
        | UpdateEntityFeature.RELEASE_NOTES
    )

    _texts: dict[str, str]

    async def async_added_to_hass(self) -> None:
        """Read the dialog's texts in Home Assistant's language, then follow the device."""
        self._texts = await async_get_translations(
            self.hass, self.hass.config.language, "entity", [DOMAIN]
        )
        await super().async_added_to_hass()

    @property
    def title(self) -> str | None:
        """Return which build is assigned to the device and whether it runs it.

        The more-info dialog shows it above the installed and latest versions.
        """
        device = self.runtime.devices.get(self.key_id)
        if device is None or (firmware_type := device.firmware_type) is None:
            return None
        firmware = self.runtime.firmware
        if (assigned := firmware.assigned(self.key_id)) is None:
            case, version = "not_assigned", ""
        else:
            pending = firmware.pending(self.key_id) is not None
            case, version = "pending" if pending else "running", assigned.version
        text = self._texts[f"{TEXTS}.title.state.{case}"]
        return text.format(firmware_type=firmware_type, version=version)

    @property
    def entity_picture(self) -> str | None:
        """Show the update icon: Providore has no brand image to replace it with."""
        return None

    @property
    def _shown_build(self) -> Firmware | None:
        """The build on its way to the device, else the newest of its type."""
        firmware = self.runtime.firmware
        return firmware.pending(self.key_id) or firmware.latest(self.key_id)

    @property
    def installed_version(self) -> str | None:
        """Return the version the device last reported."""
        return self.device_state.firmware_version

    @property
    def latest_version(self) -> str | None:
        """Return the version being installed, else the newest uploaded one."""
        build = self._shown_build
        return build.version if build else self.installed_version

    @property
    def release_summary(self) -> str | None:
        """Return the first 255 characters of the build's release notes."""
        build = self._shown_build
        return build.release_notes[:255] if build and build.release_notes else None

    @property
    def release_url(self) -> str | None:
        """Return where the build's release is described."""
        build = self._shown_build
        return build.release_url if build else None

    @property
    def in_progress(self) -> bool:
        """Return whether an assigned build has not reached the device yet."""
        return self.runtime.firmware.pending(self.key_id) is not None

    @property
    def update_percentage(self) -> int | None:
        """Return how much of the build the device has downloaded."""
        return self.runtime.firmware.progress(self.key_id)

    async def async_release_notes(self) -> str | None:
        """Return the build's full release notes, or say there are none.

        Never empty: Home Assistant 2025.4's dialog waits for the notes until
        they have some text.
        """
        build = self._shown_build
        if build is not None and build.release_notes:
            return build.release_notes
        none = "no_release_notes" if build else "no_build"
        return self._texts[f"{TEXTS}.release_summary.state.{none}"]

    async def async_install(
        self, version: str | None, backup: bool, **kwargs: Any
    ) -> None:
        """Assign the newest (or the given) build; the device fetches it when it checks."""
        await self.runtime.async_install_firmware(self.key_id, version)


class EsphomeFirmwareUpdate(ProvidoreFirmwareUpdate):
    """An ESPHome device's update while ESPHome's integration does not have the device.

    It goes (with its registry entry) as soon as ESPHome's device appears.
    """

    shows = ProvidoreFirmwareUpdate.shows | DeviceChange.ATTACHMENT

    @callback
    def _device_changed(self, changes: DeviceChange) -> None:
        if DeviceChange.ATTACHMENT in changes and self.runtime.esphome.is_attached(
            self.key_id
        ):
            er.async_get(self.hass).async_remove(self.entity_id)
            return
        super()._device_changed(changes)
