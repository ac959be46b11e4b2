"""ESPHome devices in Providore: their tokens and manifests, and ESPHome's own device.

An ESPHome device asks for `/api/providore/esphome/<token>/manifest.json` with ESPHome's
`update: platform: http_request` and installs what it offers. The manifest offers the
build assigned to the device (nothing until someone assigns one, as for every device);
without an assignment it names the version the device runs, so ESPHome sees nothing to
install. The firmware file's name is its SHA-256, so a device can only fetch the build
the manifest it read described.

Where Home Assistant's ESPHome integration has the device (a device registry entry with
the same MAC), Providore attaches to it: its entities join that device and it adds no
update entity of its own; after each change of what the manifest offers it asks
ESPHome's update entities to check at once (`homeassistant.update_entity`), so the
device does not wait for its next check, up to 6 hours away. The device counts as
running a version once ESPHome's integration writes it into the device registry: ESPHome
sets the device's software version to "<project version> (ESPHome <version>)" each time
the device connects, from what the device itself reports, whatever update entities the
configuration has (or the user disabled). Where ESPHome's integration does not have the
device, nothing can tell which version it runs: a device that downloaded the assigned
build completely and then asks for its manifest again (ESPHome checks right after it
booted) counts as running it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
import re
from typing import Final
from urllib.parse import urlsplit

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.network import NoURLAvailableError, get_url

from .const import (
    API_BASE_PATH,
    DOMAIN,
    ESPHOME_DOMAIN,
    ESPHOME_MANIFEST_NAME,
    ESPHOME_PATH,
    LAST_SEEN_RESOLUTION,
    LOGGER,
)
from .device_data import DeviceData
from .device_events import DeviceEventType, async_fire_device_event
from .device_feed import DeviceFeed
from .esphome_manifest import (
    ManifestError,
    build_idle_manifest,
    build_manifest,
    check_version,
    read_ci_manifest,
)
from .esphome_snippet import Snippet, generate_snippet
from .esphome_tokens import EsphomeTokens, generate_token
from .firmware_catalog import EsphomeImage, Firmware, FirmwareError
from .firmware_delivery import FirmwareDownload
from .firmware_manager import FirmwareManager
from .models import DeviceChange, DeviceProfile, EspHomeProfile

HOMEASSISTANT_DOMAIN: Final = "homeassistant"
SERVICE_UPDATE_ENTITY: Final = "update_entity"
FIRMWARE_SUFFIX: Final = ".bin"
# How ESPHome's integration writes the software version of a device with a project.
_ESPHOME_SW_VERSION: Final = re.compile(r"(?P<project>.+) \(ESPHome [^()]+\)")
_LAST_SEEN_RESOLUTION: Final = timedelta(seconds=LAST_SEEN_RESOLUTION)

type DetachedListener = Callable[[DeviceProfile], None]


def manifest_url(base_url: str, token: str) -> str:
    """Return the URL an ESPHome device reads its manifest from (it holds the token)."""
    return f"{base_url}{API_BASE_PATH}{ESPHOME_PATH}/{token}/{ESPHOME_MANIFEST_NAME}"


def firmware_file_name(build: Firmware) -> str:
    """Return the name the manifest gives a build's file, beside the manifest."""
    return f"{build.sha256}{FIRMWARE_SUFFIX}"


def project_version(sw_version: str | None) -> str | None:
    """Return the project version in the software version ESPHome's integration wrote."""
    if sw_version and (match := _ESPHOME_SW_VERSION.fullmatch(sw_version)):
        return match["project"]
    return None


class EsphomeDevices:
    """The ESPHome side of the runtime."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        devices: Mapping[str, DeviceProfile],
        firmware: FirmwareManager,
        data: DeviceData,
        feed: DeviceFeed,
    ) -> None:
        """Serve the ESPHome devices among `devices` (the runtime's live mapping)."""
        self._hass = hass
        self._entry = entry
        self._devices = devices
        self._firmware = firmware
        self._data = data
        self._feed = feed
        self._tokens = EsphomeTokens(hass)
        # What ESPHome knows of each ESPHome device, and each MAC to its key id.
        self._profiles: dict[str, EspHomeProfile] = {}
        self._by_mac: dict[str, str] = {}
        # ESPHome's device registry id of each attached device, and the reverse.
        self._attached: dict[str, str] = {}
        self._by_device_id: dict[str, str] = {}
        # The SHA-256 of the build each device's manifest offers (None: nothing).
        self._offered: dict[str, str | None] = {}
        self._unsubscribe: dict[str, CALLBACK_TYPE] = {}
        self._detached_listeners: list[DetachedListener] = []

    async def async_load(self) -> None:
        """Read the tokens; raise StoreUnreadable when they cannot be read."""
        await self._tokens.async_load()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Follow ESPHome's devices in the device registry; return a stop."""
        for device in self._devices.values():
            self.device_added(device)
        stop_listening = self._hass.bus.async_listen(
            dr.EVENT_DEVICE_REGISTRY_UPDATED, self._registry_updated
        )

        @callback
        def stop() -> None:
            stop_listening()
            for unsubscribe in self._unsubscribe.values():
                unsubscribe()
            self._unsubscribe.clear()

        return stop

    # --- devices in step with the subentries -----------------------------------------

    @callback
    def device_added(self, device: DeviceProfile) -> None:
        """Start serving an ESPHome device (others are ignored)."""
        if device.esphome is None:
            return
        key_id = device.key_id
        self._profiles[key_id] = device.esphome
        self._by_mac[device.esphome.mac] = key_id
        self._offered[key_id] = self._offered_sha256(key_id)
        self._unsubscribe[key_id] = self._feed.subscribe(
            key_id,
            DeviceChange.UPDATE | DeviceChange.PROFILE,
            lambda _changes: self._offer_may_have_changed(key_id),
        )
        self._refresh_attachment(key_id, notify=False)

    @callback
    def device_changed(self, device: DeviceProfile) -> None:
        """Follow a changed profile; rename the device's own device (never ESPHome's)."""
        if device.esphome is None:
            return
        self._profiles[device.key_id] = device.esphome
        if device.key_id in self._attached:
            return
        registry = dr.async_get(self._hass)
        if entry := registry.async_get_device(identifiers={(DOMAIN, device.key_id)}):
            manufacturer, model = _author_and_name(device.esphome.project_name)
            registry.async_update_device(
                entry.id, name=device.name, manufacturer=manufacturer, model=model
            )

    async def async_forget(self, key_ids: Iterable[str]) -> None:
        """Stop serving removed devices and drop their tokens."""
        key_ids = set(key_ids)
        for mac in [mac for mac, key_id in self._by_mac.items() if key_id in key_ids]:
            del self._by_mac[mac]
        for key_id in key_ids:
            self._profiles.pop(key_id, None)
            if (device_id := self._attached.pop(key_id, None)) is not None:
                self._by_device_id.pop(device_id, None)
            self._offered.pop(key_id, None)
            if unsubscribe := self._unsubscribe.pop(key_id, None):
                unsubscribe()
        await self._tokens.async_forget(key_ids)

    def known_key_ids(self) -> set[str]:
        """Return every key id with a token (or a revoked one)."""
        return self._tokens.key_ids()

    # --- tokens -------------------------------------------------------------------------

    def token(self, key_id: str) -> str | None:
        """Return a device's token; None once it was revoked."""
        return self._tokens.token(key_id)

    async def async_store_token(self, key_id: str, token: str) -> None:
        """Save a new device's token, before its subentry is created."""
        await self._tokens.async_set(key_id, token)

    async def async_rotate_token(self, key_id: str) -> None:
        """Give a device a new random token; the old URL stops working at once."""
        await self._tokens.async_set(key_id, generate_token())
        LOGGER.info("Generated a new ESPHome token for %s", key_id)
        async_fire_device_event(self._hass, key_id, DeviceEventType.KEY_ROTATED)

    async def async_revoke_token(self, key_id: str) -> None:
        """Take a device's token away: its URLs answer 404 until it gets a new one."""
        await self._tokens.async_set(key_id, None)
        LOGGER.info("Revoked the ESPHome token of %s", key_id)
        async_fire_device_event(self._hass, key_id, DeviceEventType.TOKEN_REVOKED)

    def device_for_token(self, token: str) -> str | None:
        """Return the key id of the configured device with this token, else None."""
        key_id = self._tokens.find(token)
        return key_id if key_id in self._devices else None

    # --- what a device fetches ---------------------------------------------------------

    def manifest(self, key_id: str, address: str | None, now: datetime) -> bytes:
        """Note the device's check and return the manifest it gets."""
        self._note_check(key_id, address, now)
        esphome = self._esphome(key_id)
        if (build := self._offered_build(key_id)) is not None:
            manifest = build_manifest(
                name=esphome.project_name,
                version=build.version,
                chip_family=esphome.chip_family,
                ota_path=firmware_file_name(build),
                md5=str(build.md5),
                sha256=build.sha256,
                summary=build.release_notes,
                release_url=build.release_url,
            )
        else:
            manifest = build_idle_manifest(
                name=esphome.project_name,
                current_version=self._data.state(key_id).firmware_version,
                chip_family=esphome.chip_family,
            )
        return json_bytes(manifest)

    def prepare_download(self, key_id: str, name: str) -> FirmwareDownload | None:
        """Return the offered build when `name` is its file's name, else None."""
        build = self._offered_build(key_id)
        if build is None or name != firmware_file_name(build):
            return None
        firmware = self._firmware
        return FirmwareDownload(
            build=build,
            path=firmware.catalog.path(build),
            signer=None,
            on_progress=lambda start, end: firmware.download_progressed(
                key_id, build, start, end
            ),
            on_broken_off=lambda: firmware.download_stopped(key_id),
        )

    @callback
    def _note_check(self, key_id: str, address: str | None, now: datetime) -> None:
        """Note when and from where the device checked; finish an update it booted into."""
        state = self._data.state(key_id)
        if state.last_seen is None:
            async_fire_device_event(
                self._hass,
                key_id,
                DeviceEventType.FIRST_SEEN,
                address=address or "an unknown address",
            )
        changes = DeviceChange.LAST_SEEN
        state.last_seen = now
        if state.address != address:
            state.address = address
            changes |= DeviceChange.ADDRESS
        if (
            changes != DeviceChange.LAST_SEEN
            or state.saved_last_seen is None
            or now - state.saved_last_seen >= _LAST_SEEN_RESOLUTION
        ):
            self._data.state_changed(key_id)
        self._feed.publish(key_id, changes)
        plan = self._firmware.plan(key_id)
        if (
            key_id not in self._attached
            and plan.downloaded_at is not None
            and plan.assigned_version is not None
        ):
            self._version_reported(key_id, plan.assigned_version)

    # --- builds ---------------------------------------------------------------------------

    def image_check(self, firmware_type: str) -> EsphomeImage | None:
        """Return the check a build of this type needs: ESPHome devices run it."""
        for device in self._devices.values():
            if device.esphome is not None and device.firmware_type == firmware_type:
                return EsphomeImage(device.esphome.chip_family)
        return None

    async def async_add_build(
        self,
        key_id: str,
        source: Path,
        *,
        ci_manifest: bytes | None = None,
        version: str | None = None,
        release_notes: str | None = None,
        release_url: str | None = None,
    ) -> Firmware:
        """Add a `firmware.ota.bin` for a device's project and chip family.

        The version is the one given, else the CI manifest's; a CI manifest's MD5 must
        be the file's. Raise FirmwareError (nothing kept) when anything does not fit.
        """
        device = self._devices[key_id]
        esphome = self._esphome(key_id)
        md5 = None
        if ci_manifest is not None:
            try:
                build = read_ci_manifest(ci_manifest, esphome.chip_family)
            except ManifestError as err:
                raise FirmwareError(err.code, **err.placeholders) from err
            if version and build.version and version != build.version:
                raise FirmwareError(
                    "version_not_manifests", version=version, manifest=build.version
                )
            version = version or build.version
            md5 = build.md5
            release_notes = release_notes or build.summary
            release_url = release_url or build.release_url
        if not version:
            raise FirmwareError("version_required")
        return await self._firmware.catalog.async_add(
            str(device.firmware_type),
            version,
            source,
            release_notes,
            release_url,
            EsphomeImage(esphome.chip_family, md5),
        )

    def _offered_build(self, key_id: str) -> Firmware | None:
        """Return the assigned build, when it was checked for the device's chip family."""
        build = self._firmware.assigned(key_id)
        if (
            build is None
            or build.md5 is None
            or build.chip_family is not self._esphome(key_id).chip_family
        ):
            return None
        return build

    def _offered_sha256(self, key_id: str) -> str | None:
        build = self._offered_build(key_id)
        return build.sha256 if build else None

    # --- the YAML snippet --------------------------------------------------------------

    def manifest_url(self, key_id: str) -> str:
        """Return the device's manifest URL, on Home Assistant's local address.

        Raise ServiceValidationError without a token, HomeAssistantError without a URL.
        """
        if (token := self._tokens.token(key_id)) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="token_revoked",
                translation_placeholders={"key_id": key_id},
            )
        try:
            base_url = get_url(self._hass, allow_cloud=False, prefer_external=False)
        except NoURLAvailableError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="no_url"
            ) from err
        return manifest_url(base_url, token)

    def snippet(self, key_id: str, server_hosts: Iterable[str]) -> Snippet:
        """Return the device's YAML (see `manifest_url` for its errors).

        `server_hosts` are the names Providore's CA issued Home Assistant's certificate
        for: over HTTPS to one of them, the device trusts only Providore's CA.
        """
        url = self.manifest_url(key_id)
        device = self._devices[key_id]
        esphome = self._esphome(key_id)
        running = self._data.state(key_id).firmware_version
        try:
            check_version(running or "")
        except ValueError:
            running = None
        return generate_snippet(
            device_name=device.name,
            project_name=esphome.project_name,
            project_version=running,
            chip_family=esphome.chip_family,
            manifest_url=url,
            ca_certificate=_host(url) in set(server_hosts),
        )

    # --- ESPHome's device -------------------------------------------------------------

    def is_attached(self, key_id: str) -> bool:
        """Return whether ESPHome's integration has the device (then it shows the update)."""
        return key_id in self._attached

    def device_info(self, device: DeviceProfile) -> DeviceInfo:
        """Return the device entities join: ESPHome's when attached, else one of Providore's.

        Attached, the entities only link to ESPHome's device (by its MAC), so they never
        rename it; detached, Providore's device is named as ESPHome names its own.
        """
        esphome = self._esphome(device.key_id)
        identifiers = {(DOMAIN, device.key_id)}
        connections = {(dr.CONNECTION_NETWORK_MAC, esphome.mac)}
        if self.is_attached(device.key_id):
            return DeviceInfo(identifiers=identifiers, connections=connections)
        manufacturer, model = _author_and_name(esphome.project_name)
        return DeviceInfo(
            identifiers=identifiers,
            connections=connections,
            name=device.name,
            manufacturer=manufacturer,
            model=model,
            serial_number=device.key_id,
            sw_version=self._data.state(device.key_id).firmware_version,
        )

    @callback
    def async_on_detached(self, listener: DetachedListener) -> CALLBACK_TYPE:
        """Call `listener` with each device ESPHome's integration no longer has."""
        self._detached_listeners.append(listener)
        return lambda: self._detached_listeners.remove(listener)

    @callback
    def _registry_updated(
        self, event: Event[dr.EventDeviceRegistryUpdatedData]
    ) -> None:
        """Follow a device registry change that concerns one of the ESPHome devices."""
        device_id = event.data["device_id"]
        key_id = self._by_device_id.get(device_id)
        if key_id is None:
            entry = dr.async_get(self._hass).async_get(device_id)
            if entry is None:
                return
            key_id = next(
                (
                    self._by_mac[value]
                    for kind, value in entry.connections
                    if kind == dr.CONNECTION_NETWORK_MAC and value in self._by_mac
                ),
                None,
            )
        if key_id is not None:
            self._refresh_attachment(key_id, notify=True)

    @callback
    def _refresh_attachment(self, key_id: str, *, notify: bool) -> None:
        """Look up ESPHome's device for the MAC; take the version it reports."""
        entry = dr.async_get(self._hass).async_get_device(
            connections={(dr.CONNECTION_NETWORK_MAC, self._esphome(key_id).mac)}
        )
        esphome_device = entry if entry and self._is_esphome_device(entry) else None
        attached_to = esphome_device.id if esphome_device else None
        if (before := self._attached.get(key_id)) != attached_to:
            if before is not None:
                del self._attached[key_id]
                self._by_device_id.pop(before, None)
            if attached_to is not None:
                self._attached[key_id] = attached_to
                self._by_device_id[attached_to] = key_id
            LOGGER.debug(
                "%s is %s ESPHome's device",
                key_id,
                "attached to" if attached_to else "detached from",
            )
            if notify:
                self._attachment_changed(key_id)
        if esphome_device and (version := project_version(esphome_device.sw_version)):
            self._version_reported(key_id, version)

    @callback
    def _attachment_changed(self, key_id: str) -> None:
        self._feed.publish(key_id, DeviceChange.ATTACHMENT)
        device = self._devices[key_id]
        if key_id in self._attached or device.subentry_id not in self._entry.subentries:
            return
        for listener in list(self._detached_listeners):
            listener(device)

    def _is_esphome_device(self, device: dr.DeviceEntry) -> bool:
        return any(
            entry.domain == ESPHOME_DOMAIN
            for entry_id in device.config_entries
            if (entry := self._hass.config_entries.async_get_entry(entry_id))
        )

    @callback
    def _version_reported(self, key_id: str, version: str) -> None:
        """Record the version the device runs (checked first); finish its update."""
        try:
            check_version(version)
        except ValueError:
            LOGGER.debug("Ignoring an unusable version reported for %s", key_id)
            return
        state = self._data.state(key_id)
        if state.firmware_version == version:
            return
        state.firmware_version = version
        self._data.state_changed(key_id)
        self._firmware.device_reported(key_id, version)
        if key_id not in self._attached:
            registry = dr.async_get(self._hass)
            if entry := registry.async_get_device(identifiers={(DOMAIN, key_id)}):
                registry.async_update_device(entry.id, sw_version=version)
        self._feed.publish(key_id, DeviceChange.FIRMWARE_VERSION | DeviceChange.UPDATE)

    # --- the check push ----------------------------------------------------------------

    @callback
    def _offer_may_have_changed(self, key_id: str) -> None:
        """Make ESPHome's update entities check when the manifest offers another build."""
        offered = self._offered_sha256(key_id)
        if self._offered.get(key_id) == offered:
            return
        self._offered[key_id] = offered
        if (device_id := self._attached.get(key_id)) is None:
            return
        entity_ids = [
            entity.entity_id
            for entity in er.async_entries_for_device(
                er.async_get(self._hass), device_id
            )
            if entity.platform == ESPHOME_DOMAIN and entity.domain == UPDATE_DOMAIN
        ]
        if entity_ids:
            self._hass.async_create_task(self._async_check(key_id, entity_ids))

    async def _async_check(self, key_id: str, entity_ids: list[str]) -> None:
        try:
            await self._hass.services.async_call(
                HOMEASSISTANT_DOMAIN,
                SERVICE_UPDATE_ENTITY,
                {ATTR_ENTITY_ID: entity_ids},
                blocking=True,
            )
        except HomeAssistantError as err:
            LOGGER.warning(
                "Could not ask ESPHome's %s to check for firmware for %s: %s",
                ", ".join(entity_ids),
                key_id,
                err,
            )
        else:
            LOGGER.debug("Asked %s to check for firmware", ", ".join(entity_ids))

    def _esphome(self, key_id: str) -> EspHomeProfile:
        return self._profiles[key_id]


def _author_and_name(project_name: str) -> tuple[str, str]:
    """Split a project name as ESPHome's integration does for its device's maker and model."""
    author, _, name = project_name.partition(".")
    return author, name


def _host(url: str) -> str | None:
    """Return the host of an https URL (None for http)."""
    parts = urlsplit(url)
    return parts.hostname if parts.scheme == "https" else None
