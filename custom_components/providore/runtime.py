"""The one runtime object of a loaded hub: every store, and what the rest of Providore asks.

Views, entities, services, flows and repairs all call this object (the hub entry's
`runtime_data`). It loads every store through one path, keeps the devices of the
entry's subentries in step without reloads, and tells each device's entities
exactly what changed through one change feed per device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .certificate_authority import CertificateAuthority, CertificateUsage
from .certificates import CertificateStatus, IssuedCertificate, ProvidoreCertificates
from .const import (
    CONF_CA_FINGERPRINT,
    CONF_CERTIFICATE_USAGE,
    CONF_FIRMWARE_TYPE,
    CONF_HOSTS,
    CONF_KEY_ID,
    CONF_SERVER_CERTIFICATE,
    DEVICE_SUBENTRY_TYPES,
    DOMAIN,
    LAST_SEEN_RESOLUTION,
    LOGGER,
    SUBENTRY_TYPE_DEVICE,
)
from .device_browser import DeviceBrowser
from .device_data import DeviceData, DeviceDocuments, DeviceState, JsonObject
from .device_events import DeviceEventType, async_fire_device_event
from .device_feed import ChangeListener, DeviceFeed
from .device_import import ImportedDevice
from .esphome_devices import EsphomeDevices
from .esphome_snippet import Snippet
from .esphome_tokens import EsphomeTokens
from .firmware_catalog import Firmware, FirmwareCatalog
from .firmware_delivery import FirmwareDownload
from .firmware_manager import BuildUsage, FirmwareManager
from .firmware_updates import FirmwareUpdates
from .hub_device import async_register_hub_device
from .issues import (
    async_update_ca_issue,
    async_update_certificate_issue,
    async_update_missing_secret_issue,
    delete_device_issues,
)
from .models import DeviceChange, DeviceProfile, HubSettings
from .notice import Change
from .pending_devices import PendingDevices
from .presence import Presence
from .protocol import DeviceKey, SignedRequest, generate_key_id, generate_secret_key
from .push import PushNotices
from .rollouts import Rollouts, async_remove_store as async_remove_rollouts
from .server_advertisement import ServerAdvertisement
from .server_certificate import (
    ServerCertificate,
    issue_server_certificate,
    write_server_certificate,
)

type ProvidoreConfigEntry = ConfigEntry[ProvidoreRuntime]

# The revocation list is signed again this often; each one is valid for a week.
CRL_REFRESH_INTERVAL = timedelta(days=1)
_LAST_SEEN_RESOLUTION = timedelta(seconds=LAST_SEEN_RESOLUTION)


class DownloadRefused(Exception):  # noqa: N818
    """No firmware can be sent to the device; `status` and `reason` are for the device."""

    def __init__(self, status: int, reason: str) -> None:
        """Describe the refusal."""
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SubentryReader:
    """Read the devices of a hub entry's subentries, re-reading only what changed.

    Home Assistant changes a subentry in place, giving it a new data mapping or title:
    while both are the ones read before, so is the device's profile.
    """

    def __init__(self) -> None:
        """Start with nothing read."""
        self._read: dict[str, tuple[str, Mapping[str, Any], DeviceProfile]] = {}

    def profiles(self, entry: ConfigEntry) -> dict[str, DeviceProfile]:
        """Return the devices (Providore's and ESPHome's) by key id."""
        read: dict[str, tuple[str, Mapping[str, Any], DeviceProfile]] = {}
        for subentry_id, subentry in entry.subentries.items():
            if subentry.subentry_type not in DEVICE_SUBENTRY_TYPES:
                continue
            known = self._read.get(subentry_id)
            if (
                known is None
                or known[1] is not subentry.data
                or known[0] != subentry.title
            ):
                profile = DeviceProfile.from_subentry(subentry)
            else:
                profile = known[2]
            read[subentry_id] = (subentry.title, subentry.data, profile)
        self._read = read
        return {profile.key_id: profile for _, _, profile in read.values()}


def device_subentry(
    key_id: str, name: str, firmware_type: str, certificate_usage: CertificateUsage
) -> ConfigSubentry:
    """Return the subentry of a device added outside the Add device flow."""
    return ConfigSubentry(
        data=MappingProxyType(
            {
                CONF_KEY_ID: key_id,
                CONF_FIRMWARE_TYPE: firmware_type,
                CONF_CERTIFICATE_USAGE: certificate_usage.value,
            }
        ),
        subentry_type=SUBENTRY_TYPE_DEVICE,
        title=name,
        unique_id=key_id,
    )


def key_ids_in_use(entry: ConfigEntry) -> set[str]:
    """Return the key ids of every device subentry (of any kind) of a hub entry."""
    return {
        subentry.data[CONF_KEY_ID]
        for subentry in entry.subentries.values()
        if subentry.subentry_type in DEVICE_SUBENTRY_TYPES
    }


def new_key_id(entry: ConfigEntry) -> str:
    """Return a random key id no device of the hub entry has."""
    in_use = key_ids_in_use(entry)
    while (key_id := generate_key_id()) in in_use:
        continue
    return key_id


class ProvidoreRuntime:
    """Everything a loaded hub entry holds, behind intent-level methods."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Build the runtime from the entry; async_load reads the stores."""
        self.hass = hass
        self._entry = entry
        self.settings = HubSettings.from_options(entry.options)
        self._subentries = SubentryReader()
        self.devices: dict[str, DeviceProfile] = self._subentries.profiles(entry)
        self._data = DeviceData(hass)
        self._updates = FirmwareUpdates(hass)
        self._catalog = FirmwareCatalog(hass)
        self._feed = DeviceFeed()
        self._keys: dict[str, DeviceKey] = {}
        self._device_added_listeners: list[Callable[[DeviceProfile], None]] = []
        self._presence = Presence(
            hass,
            self.settings.online_interval,
            lambda key_id: self._data.state(key_id).last_seen,
            lambda key_id: self.publish(key_id, DeviceChange.CONNECTIVITY),
        )
        self._firmware = FirmwareManager(
            hass,
            self._catalog,
            self._updates,
            self.devices,
            self._data.state,
            self.publish,
            self.settings.update_timeout,
            lambda key_id: self._rollouts.follows(key_id),
        )
        self._rollouts = Rollouts(hass, self)
        self._certificates: ProvidoreCertificates
        self._notices = PushNotices(hass, entry, self)
        self.pending_devices = PendingDevices(hass, self.devices.__contains__)
        self._device_browser = DeviceBrowser(hass, self.pending_devices)
        self._advertisement = ServerAdvertisement(
            hass,
            entry,
            lambda: self.certificate_authority,
            self.settings.answer_providore_local,
        )
        self.esphome = EsphomeDevices(
            hass, entry, self.devices, self._firmware, self._data, self._feed
        )

    @classmethod
    async def async_load(
        cls, hass: HomeAssistant, entry: ConfigEntry
    ) -> ProvidoreRuntime:
        """Load every store; raise StoreUnreadable when one is lost."""
        runtime = cls(hass, entry)
        await runtime._data.async_load()
        await runtime._updates.async_load()
        await runtime._catalog.async_load()
        await runtime._rollouts.async_load()
        await runtime.esphome.async_load()
        runtime._certificates = await ProvidoreCertificates.async_load(
            hass,
            entry.data.get(CONF_CA_FINGERPRINT),
            runtime.devices,
            runtime._certificates_changed,
        )
        runtime._record_ca(runtime._certificates.authority)
        await runtime._notices.async_load()
        await runtime.pending_devices.async_load()
        return runtime

    async def async_start(self) -> None:
        """Reconcile the stores with the subentries, then start timers and listeners."""
        entry = self._entry
        # Data of devices removed while Providore was not loaded goes with them, and
        # so does the key saved by an Add device flow Home Assistant never recorded.
        if (
            stale := (
                self._data.known_key_ids()
                | self._updates.planned_key_ids()
                | self._certificates.device_key_ids()
                | self.esphome.known_key_ids()
            )
            - self.devices.keys()
        ):
            LOGGER.warning(
                "Dropping the keys and data of %s device(s) without a subentry: %s",
                len(stale),
                ", ".join(sorted(stale)),
            )
            await self._async_forget(stale)
        now = dt_util.utcnow()
        for key_id in self.devices:
            self._presence.resume(key_id, now)
            self._update_missing_secret_issue(key_id)
        self._update_certificate_issues(now)
        async_register_hub_device(self.hass, entry)
        entry.async_on_unload(self._presence.stop)
        # Before the firmware manager: rollouts hear of a deleted build first.
        self._rollouts.async_start()
        entry.async_on_unload(self._rollouts.async_stop)
        entry.async_on_unload(self._firmware.async_start())
        entry.async_on_unload(self.esphome.async_start())
        entry.async_on_unload(
            async_track_time_interval(
                self.hass, self._async_daily, CRL_REFRESH_INTERVAL
            )
        )
        await self._async_start_discovery()

    async def _async_start_discovery(self) -> None:
        """Advertise the server, find unknown devices, and push notices to known ones."""
        entry = self._entry
        self._advertisement.async_start()
        entry.async_on_unload(self.pending_devices.async_stop)
        await self._device_browser.async_start()
        entry.async_on_unload(self._device_browser.async_stop)
        await self._notices.async_start()

    async def _async_daily(self, now: datetime) -> None:
        await self._certificates.async_publish_crl()
        self._update_certificate_issues(now)

    @callback
    def _certificates_changed(self, key_id: str) -> None:
        if (device := self.devices.get(key_id)) is not None:
            now = dt_util.utcnow()
            async_update_certificate_issue(
                self.hass, device, self._certificates.current(key_id, now), now
            )
        self.publish(key_id, DeviceChange.CERTIFICATE)

    @callback
    def _update_certificate_issues(self, now: datetime) -> None:
        """Check every device's certificate and the CA for a coming expiry."""
        for key_id, device in self.devices.items():
            async_update_certificate_issue(
                self.hass, device, self._certificates.current(key_id, now), now
            )
        async_update_ca_issue(
            self.hass, self.certificate_authority.certificate.not_valid_after_utc, now
        )

    @callback
    def _update_missing_secret_issue(self, key_id: str) -> None:
        device = self.devices[key_id]
        if device.esphome is None:
            async_update_missing_secret_issue(
                self.hass, device, self._data.secret(key_id) is not None
            )

    # --- devices ---------------------------------------------------------------

    async def async_sync_devices(self) -> None:
        """Follow the entry's subentries: add, change and remove devices in place."""
        if HubSettings.from_options(self._entry.options) != self.settings:
            self.hass.config_entries.async_schedule_reload(self._entry.entry_id)
            return
        current = self._subentries.profiles(self._entry)
        removed = self.devices.keys() - current.keys()
        for key_id, profile in current.items():
            if (known := self.devices.get(key_id)) is None:
                self._device_added(profile)
            elif known is not profile and known != profile:
                self._device_changed(known, profile)
        if removed:
            await self._async_forget(removed)

    @callback
    def _device_added(self, profile: DeviceProfile) -> None:
        self.devices[profile.key_id] = profile
        self._firmware.device_added(profile.key_id)
        self.pending_devices.device_added(profile.key_id)
        self.esphome.device_added(profile)
        self._update_missing_secret_issue(profile.key_id)
        for listener in self._device_added_listeners:
            listener(profile)

    @callback
    def _device_changed(self, known: DeviceProfile, profile: DeviceProfile) -> None:
        self.devices[profile.key_id] = profile
        self.esphome.device_changed(profile)
        registry = dr.async_get(self.hass)
        if profile.esphome is None and (
            device := registry.async_get_device(identifiers={(DOMAIN, profile.key_id)})
        ):
            registry.async_update_device(
                device.id, name=profile.name, model=profile.firmware_type
            )
        changes = DeviceChange.PROFILE
        if known.firmware_type != profile.firmware_type:
            changes |= DeviceChange.UPDATE
        self.publish(profile.key_id, changes)

    async def _async_forget(self, key_ids: set[str]) -> None:
        """Delete every secret, document, state, plan and certificate of the devices."""
        if not key_ids:
            return
        for key_id in key_ids:
            self.devices.pop(key_id, None)
            self._keys.pop(key_id, None)
            self._presence.forget(key_id)
            self._rollouts.device_removed(key_id)
            self._firmware.device_removed(key_id)
            self._notices.device_removed(key_id)
            delete_device_issues(self.hass, key_id)
        await self._data.async_forget(key_ids)
        await self._updates.async_forget(key_ids)
        await self._certificates.async_forget(key_ids)
        await self.esphome.async_forget(key_ids)
        LOGGER.debug("Forgot the data of %s removed device(s)", len(key_ids))

    async def async_import_devices(self, devices: Iterable[ImportedDevice]) -> None:
        """Add checked devices as subentries, their secrets saved first."""
        devices = list(devices)
        await self.async_store_secrets(
            {device.key_id: device.secret_key for device in devices}
        )
        for device in devices:
            self.hass.config_entries.async_add_subentry(
                self._entry,
                device_subentry(
                    device.key_id,
                    device.name,
                    device.firmware_type or "",
                    CertificateUsage.CLIENT,
                ),
            )
        LOGGER.info("Imported %s devices", len(devices))

    @callback
    def async_on_device_added(
        self, listener: Callable[[DeviceProfile], None]
    ) -> CALLBACK_TYPE:
        """Call `listener` with each device added while the hub runs."""
        self._device_added_listeners.append(listener)
        return lambda: self._device_added_listeners.remove(listener)

    # --- the change feed ---------------------------------------------------------

    @callback
    def async_subscribe(
        self, key_id: str, changes: DeviceChange, listener: ChangeListener
    ) -> CALLBACK_TYPE:
        """Call `listener` whenever any of `changes` happens to the device."""
        return self._feed.subscribe(key_id, changes, listener)

    @callback
    def publish(self, key_id: str, changes: DeviceChange) -> None:
        """Tell the device's listeners what changed."""
        self._feed.publish(key_id, changes)

    # --- discovery and push notices ---------------------------------------------

    @property
    def notices_enabled(self) -> bool:
        """Return whether a push notice backend is turned on."""
        return self._notices.enabled

    async def async_notify(self, key_id: str, changes: set[Change]) -> list[str]:
        """Send a device a push notice now; return where it went."""
        return await self._notices.async_notify(key_id, changes)

    def notices_diagnostics(self) -> dict[str, object]:
        """Return the push backends and how many devices were sent a notice."""
        return self._notices.diagnostics()

    async def async_adopt_device(
        self,
        key_id: str,
        name: str,
        firmware_type: str,
        secret_key: str,
        certificate_usage: CertificateUsage,
    ) -> None:
        """Add a device (from outside a subentry flow), its key saved first.

        A repair flow cannot create a subentry through a subentry flow (only its
        `user` source may), so the device is added to the entry directly.
        """
        await self.async_store_secrets({key_id: secret_key})
        self.hass.config_entries.async_add_subentry(
            self._entry,
            device_subentry(key_id, name, firmware_type, certificate_usage),
        )
        LOGGER.info("Adopted device %s as %s", key_id, name)

    # --- keys --------------------------------------------------------------------

    def secret(self, key_id: str) -> str | None:
        """Return the secret key of a configured device, else None (ESPHome's have none)."""
        device = self.devices.get(key_id)
        if device is None or device.esphome is not None:
            return None
        return self._data.secret(key_id)

    def device_key(self, key_id: str) -> DeviceKey | None:
        """Return the device's key, prepared for signing; None for an unknown device."""
        if (key := self._keys.get(key_id)) is None:
            if (secret := self.secret(key_id)) is None:
                return None
            key = self._keys[key_id] = DeviceKey(secret)
        return key

    async def async_store_secrets(self, secrets: Mapping[str, str]) -> None:
        """Save secret keys, before their devices are added or to replace a key."""
        await self._data.async_set_secrets(secrets)
        for key_id in secrets:
            self._keys.pop(key_id, None)
            self._firmware.signatures.forget(key_id)
            if key_id in self.devices:
                self._update_missing_secret_issue(key_id)

    async def async_rotate_key(self, key_id: str) -> None:
        """Give a device a new random secret key; the old one is refused at once."""
        await self.async_store_secrets({key_id: generate_secret_key()})
        LOGGER.info("Generated a new secret key for %s", key_id)
        async_fire_device_event(self.hass, key_id, DeviceEventType.KEY_ROTATED)

    # --- what devices report -------------------------------------------------------

    def state(self, key_id: str) -> DeviceState:
        """Return what a device last reported."""
        return self._data.state(key_id)

    def is_online(self, key_id: str) -> bool:
        """Return whether a device called within the online interval."""
        return self._presence.is_online(key_id)

    @callback
    def record_contact(
        self, key_id: str, signed: SignedRequest, address: str | None, now: datetime
    ) -> None:
        """Note an authenticated request: when, from where, and which firmware.

        Reported state only moves forward: a request older than the newest one
        recorded, or seen already (a replay), is answered but not recorded.
        """
        state = self._data.state(key_id)
        newest = state.request_created_at
        if newest is not None and (
            signed.created_at < newest
            or (
                signed.created_at == newest
                and signed.signature == state.request_signature
            )
        ):
            return
        state.request_created_at = signed.created_at
        state.request_signature = signed.signature
        if state.last_seen is None:
            async_fire_device_event(
                self.hass,
                key_id,
                DeviceEventType.FIRST_SEEN,
                address=address or "an unknown address",
            )
        state.last_seen = now
        changes = DeviceChange.LAST_SEEN
        if state.address != address:
            state.address = address
            changes |= DeviceChange.ADDRESS
        if state.firmware_version != signed.firmware_version:
            state.firmware_version = signed.firmware_version
            changes |= DeviceChange.FIRMWARE_VERSION | DeviceChange.UPDATE
            self._firmware_version_changed(key_id, signed.firmware_version)
        if (
            changes is not DeviceChange.LAST_SEEN
            or state.saved_last_seen is None
            or now - state.saved_last_seen >= _LAST_SEEN_RESOLUTION
        ):
            self._data.state_changed(key_id)
        self._presence.device_seen(key_id, now)
        self.publish(key_id, changes)

    @callback
    def _firmware_version_changed(self, key_id: str, firmware_version: str) -> None:
        registry = dr.async_get(self.hass)
        if device := registry.async_get_device(identifiers={(DOMAIN, key_id)}):
            registry.async_update_device(device.id, sw_version=firmware_version)
        self._firmware.device_reported(key_id, firmware_version)

    # --- configuration documents ---------------------------------------------------

    def config_document(
        self, key_id: str, firmware_version: str | None
    ) -> JsonObject | None:
        """Return the configuration document a device running a version gets."""
        return self._data.document(key_id, firmware_version)

    def config_body(self, key_id: str, firmware_version: str | None) -> bytes | None:
        """Return that document as the JSON bytes served (encoded once)."""
        return self._data.document_body(key_id, firmware_version)

    def documents(self, key_id: str) -> DeviceDocuments:
        """Return every configuration document of a device."""
        return self._data.documents(key_id)

    async def async_set_config(
        self, key_id: str, document: JsonObject, firmware_version: str | None = None
    ) -> None:
        """Set a device's default document, or the one for a firmware version."""
        await self._data.async_set_document(key_id, document, firmware_version)
        self.publish(key_id, DeviceChange.CONFIG)

    # --- firmware -------------------------------------------------------------------

    @property
    def firmware(self) -> FirmwareManager:
        """Return the firmware updates of the devices (read by entities and diagnostics)."""
        return self._firmware

    async def async_install_firmware(self, key_id: str, version: str | None) -> None:
        """Assign the newest (or the given) build of its type to a device."""
        await self._firmware.async_install(key_id, version)

    async def async_cancel_update(self, key_id: str) -> None:
        """Withdraw a device's pending update."""
        await self._firmware.async_cancel(key_id)

    async def async_set_auto_update(self, key_id: str, enabled: bool) -> None:
        """Turn a device's automatic updates on or off."""
        await self._firmware.async_set_auto_update(key_id, enabled)

    @property
    def rollouts(self) -> Rollouts:
        """Return the fleet rollouts (read by entities, flows and diagnostics)."""
        return self._rollouts

    async def async_add_build(
        self,
        firmware_type: str,
        version: str,
        source: Path,
        release_notes: str | None = None,
        release_url: str | None = None,
    ) -> Firmware:
        """Copy a build into the catalog; its devices see it at once.

        A build of ESPHome devices' firmware type must be an image for their chip family.
        """
        return await self._catalog.async_add(
            firmware_type,
            version,
            source,
            release_notes,
            release_url,
            self.esphome.image_check(firmware_type),
        )

    async def async_delete_build(self, firmware_type: str, version: str) -> None:
        """Delete a build; assignments of it are withdrawn at once."""
        await self._catalog.async_delete(firmware_type, version)

    def firmware_types(self) -> list[str]:
        """Return every firmware type with a build in the catalog."""
        return self._catalog.firmware_types()

    def builds(self, firmware_type: str) -> list[Firmware]:
        """Return the builds of a type, oldest version first."""
        return self._catalog.versions(firmware_type)

    def build_usage(self) -> list[BuildUsage]:
        """Return every build and the devices that run it or are assigned it."""
        return self._firmware.usage()

    async def async_prepare_download(
        self, key_id: str, key: DeviceKey, asked_version: str | None
    ) -> FirmwareDownload:
        """Return what to send a device for GET /firmware; raise DownloadRefused."""
        build = self._firmware.assigned(key_id)
        if build is None:
            raise DownloadRefused(404, "no firmware assigned to this device")
        if asked_version is not None and asked_version != build.version:
            raise DownloadRefused(409, "that version is not assigned")
        path = self._catalog.path(build)
        try:
            signer = await self._firmware.signatures.async_signer(
                self.hass, key_id, key, build, path
            )
        except FileNotFoundError as err:
            raise DownloadRefused(404, "firmware file is missing") from err
        return FirmwareDownload(
            build=build,
            path=path,
            signer=signer,
            on_progress=lambda start, end: self._firmware.download_progressed(
                key_id, build, start, end
            ),
            on_broken_off=lambda: self._firmware.download_stopped(key_id),
        )

    # --- certificates ---------------------------------------------------------------

    @property
    def certificate_authority(self) -> CertificateAuthority:
        """Return the CA."""
        return self._certificates.authority

    @property
    def crl_pem(self) -> str:
        """Return the current revocation list."""
        return self._certificates.crl_pem

    def current_certificate(self, key_id: str) -> IssuedCertificate | None:
        """Return the device's newest valid certificate."""
        return self._certificates.current(key_id, dt_util.utcnow())

    def newest_certificate(self, key_id: str) -> IssuedCertificate | None:
        """Return the certificate issued to the device last, even revoked or expired."""
        return self._certificates.newest(key_id)

    def certificate_status(self, key_id: str) -> CertificateStatus:
        """Return whether the device's newest certificate is valid, revoked or expired."""
        return self._certificates.status(key_id, dt_util.utcnow())

    async def async_issue_certificate(
        self, key_id: str, csr_pem: bytes
    ) -> IssuedCertificate:
        """Issue a certificate for a device's CSR, for its configured usage."""
        return await self._certificates.async_issue(
            key_id,
            csr_pem,
            self.devices[key_id].certificate_usage,
            self.settings.certificate_validity,
        )

    async def async_revoke_certificates(self, key_id: str) -> None:
        """Revoke a device's valid certificates."""
        await self._certificates.async_revoke(key_id)

    async def async_import_ca(
        self, certificate: str, private_key: str, password: str | None
    ) -> None:
        """Replace the CA with the user's own."""
        self._record_ca(
            await self._certificates.async_import_ca(certificate, private_key, password)
        )
        self._update_certificate_issues(dt_util.utcnow())
        self._advertisement.async_refresh_soon()

    def esphome_snippet(self, key_id: str) -> Snippet:
        """Return an ESPHome device's YAML (trusting Providore's CA where it issued HA's)."""
        hosts = self._entry.data.get(CONF_SERVER_CERTIFICATE, {}).get(CONF_HOSTS, [])
        return self.esphome.snippet(key_id, hosts)

    async def async_issue_server_certificate(
        self, names: list[x509.GeneralName]
    ) -> tuple[ServerCertificate, Path, Path]:
        """Issue Home Assistant's HTTPS certificate; write it and its key to the config folder.

        Return it with the paths of the certificate and of the key (mode 0600).
        """
        issued = await self.hass.async_add_executor_job(
            issue_server_certificate,
            self.certificate_authority,
            names,
            dt_util.utcnow(),
            self.settings.certificate_validity,
        )
        certificate_path, key_path = await self.hass.async_add_executor_job(
            write_server_certificate, Path(self.hass.config.config_dir), issued
        )
        self.hass.config_entries.async_update_entry(
            self._entry,
            data={
                **self._entry.data,
                CONF_SERVER_CERTIFICATE: {
                    CONF_HOSTS: list(issued.hosts),
                    "not_after": issued.not_after.isoformat(),
                },
            },
        )
        LOGGER.info(
            "Issued Home Assistant's server certificate for %s, valid until %s",
            ", ".join(issued.hosts),
            issued.not_after.date().isoformat(),
        )
        return issued, certificate_path, key_path

    @callback
    def _record_ca(self, authority: CertificateAuthority) -> None:
        """Note the CA's fingerprint in the entry: a lost CA store is then noticed."""
        if self._entry.data.get(CONF_CA_FINGERPRINT) != authority.fingerprint:
            self.hass.config_entries.async_update_entry(
                self._entry,
                data={**self._entry.data, CONF_CA_FINGERPRINT: authority.fingerprint},
            )


async def async_remove_stores(hass: HomeAssistant) -> None:
    """Delete every store, build and the CA (when the hub entry is removed)."""
    await DeviceData(hass).async_remove()
    await FirmwareUpdates(hass).async_remove()
    await FirmwareCatalog(hass).async_remove()
    await async_remove_rollouts(hass)
    await ProvidoreCertificates.async_remove_stores(hass)
    await PushNotices.async_remove_store(hass)
    await PendingDevices.async_remove_store(hass)
    await EsphomeTokens(hass).async_remove()


@callback
def async_get_loaded_runtime(hass: HomeAssistant) -> ProvidoreRuntime | None:
    """Return the runtime of the loaded hub entry, or None when none is loaded."""
    entries: list[ProvidoreConfigEntry] = hass.config_entries.async_loaded_entries(
        DOMAIN
    )
    return entries[0].runtime_data if entries else None
