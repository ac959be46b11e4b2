"""ESPHome devices in Providore: their tokens, manifests, firmware and YAML.

An ESPHome device asks for `/api/providore/esphome/<token>/manifest.json` with ESPHome's
`update: platform: http_request` and installs what it offers. The manifest offers the
build assigned to the device (nothing until someone assigns one, as for every device);
without an assignment it names the version the device runs, so ESPHome sees nothing to
install. The firmware file's name is its SHA-256, so a device can only fetch the build
the manifest it read described.

Which version a device runs comes from ESPHome's integration where it has the device
(`esphome_attachment`). Elsewhere nothing can tell: a device that downloaded the
assigned build completely and then asks for its manifest again (ESPHome checks right
after it booted) counts as running it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.network import NoURLAvailableError, get_url

from .const import (
    API_BASE_PATH,
    DOMAIN,
    ESPHOME_MANIFEST_NAME,
    ESPHOME_PATH,
    LAST_SEEN_RESOLUTION,
    LOGGER,
)
from .device_data import DeviceData
from .device_events import DeviceEventType, async_fire_device_event
from .device_feed import DeviceFeed
from .esphome_attachment import DetachedListener, EsphomeAttachments
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

FIRMWARE_SUFFIX: Final = ".bin"
_LAST_SEEN_RESOLUTION: Final = timedelta(seconds=LAST_SEEN_RESOLUTION)


def manifest_url(base_url: str, token: str) -> str:
    """Return the URL an ESPHome device reads its manifest from (it holds the token)."""
    return f"{base_url}{API_BASE_PATH}{ESPHOME_PATH}/{token}/{ESPHOME_MANIFEST_NAME}"


def firmware_file_name(build: Firmware) -> str:
    """Return the name the manifest gives a build's file, beside the manifest."""
    return f"{build.sha256}{FIRMWARE_SUFFIX}"


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
        self._attachments = EsphomeAttachments(
            hass, entry, devices, feed, self._version_reported
        )
        # What ESPHome knows of each ESPHome device.
        self._profiles: dict[str, EspHomeProfile] = {}
        # The SHA-256 of the build each device's manifest offers (None: nothing).
        self._offered: dict[str, str | None] = {}
        self._unsubscribe: dict[str, CALLBACK_TYPE] = {}

    async def async_load(self) -> None:
        """Read the tokens; raise StoreUnreadable when they cannot be read."""
        await self._tokens.async_load()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Follow ESPHome's devices in the device registry; return a stop."""
        for device in self._devices.values():
            self.device_added(device)
        stop_listening = self._attachments.async_start()

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
        self._offered[key_id] = self._offered_sha256(key_id)
        self._unsubscribe[key_id] = self._feed.subscribe(
            key_id,
            DeviceChange.UPDATE | DeviceChange.PROFILE,
            lambda _changes: self._offer_may_have_changed(key_id),
        )
        self._attachments.device_added(key_id, device.esphome.mac)

    @callback
    def device_changed(self, device: DeviceProfile) -> None:
        """Follow a changed profile; rename the device's own device (never ESPHome's)."""
        if device.esphome is None:
            return
        self._profiles[device.key_id] = device.esphome
        if self.is_attached(device.key_id):
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
        for key_id in key_ids:
            self._profiles.pop(key_id, None)
            self._attachments.device_removed(key_id)
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
            not self.is_attached(key_id)
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
        return self._attachments.is_attached(key_id)

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
        return self._attachments.async_on_detached(listener)

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
        if not self.is_attached(key_id):
            registry = dr.async_get(self._hass)
            if entry := registry.async_get_device(identifiers={(DOMAIN, key_id)}):
                registry.async_update_device(entry.id, sw_version=version)
        self._feed.publish(key_id, DeviceChange.FIRMWARE_VERSION | DeviceChange.UPDATE)

    @callback
    def _offer_may_have_changed(self, key_id: str) -> None:
        """Have ESPHome check at once when the manifest offers another build."""
        offered = self._offered_sha256(key_id)
        if self._offered.get(key_id) != offered:
            self._offered[key_id] = offered
            self._attachments.request_check(key_id)

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
