"""Push notices: a device hears within a second that something changed for it.

The signed notice itself is built by `notice` (docs/protocol.md, "Extension: push
notices"). This module decides when to send one and sends it: it follows each
device's change feed (only its configuration documents, firmware assignment and
certificate), so an ordinary request never sends anything and the work is per change,
never per request. Changes that happen together are merged into one notice per
device; the devices' counters are saved once for them, before anything is sent.

Backends are hub options: MQTT through Home Assistant's MQTT integration (best
effort: without it a log line says so) and UDP to the device's last address, with
an optional broadcast on each local network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
import ipaddress
import socket
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import mqtt, network
from homeassistant.components.network.models import Adapter
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import LOGGER
from .firmware_catalog import Firmware
from .models import DeviceChange, DeviceKind, DeviceProfile
from .notice import MQTT_QOS, Change, build_notice, next_counter, notice_topic
from .stores import async_load, providore_store

if TYPE_CHECKING:
    from .runtime import ProvidoreRuntime

# What a device is told about: the rest of its changes are of no use to it.
FOLLOWED: Final = DeviceChange.CONFIG | DeviceChange.UPDATE | DeviceChange.CERTIFICATE

type BuildKey = tuple[str, str] | None


def _counter_store(hass: HomeAssistant) -> Store[dict[str, int]]:
    return providore_store(hass, "notice_counters")


def _build_key(build: Firmware | None) -> BuildKey:
    return None if build is None else (build.version, build.sha256)


class UdpNotices:
    """Sends notices as datagrams: to a device's address, and as local broadcasts."""

    def __init__(self, port: int, broadcast: bool) -> None:
        """Send to `port`; with `broadcast`, also to every local IPv4 network."""
        self._port = port
        self._broadcast = broadcast
        self._broadcast_addresses: list[str] = []
        self._transports: dict[int, asyncio.DatagramTransport] = {}

    async def async_open(self, hass: HomeAssistant) -> None:
        """Open the sending sockets; find the broadcast address of each local network."""
        loop = asyncio.get_running_loop()
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                transport, _protocol = await loop.create_datagram_endpoint(
                    _SendOnly,
                    family=family,
                    allow_broadcast=self._broadcast and family == socket.AF_INET,
                )
            except OSError as err:
                LOGGER.debug("No UDP socket for %s: %s", family.name, err)
                continue
            self._transports[family] = transport
        if not self._transports:
            LOGGER.warning("Push notices over UDP are on, but no UDP socket opened")
        if self._broadcast:
            self._broadcast_addresses = broadcast_addresses(
                await network.async_get_adapters(hass)
            )

    def close(self) -> None:
        """Close the sockets."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def send(self, notice: bytes, address: str | None) -> list[str]:
        """Send a notice; return where it went."""
        destinations = [*self._unicast(address), *self._broadcast_addresses]
        sent = []
        for destination in destinations:
            family = socket.AF_INET6 if ":" in destination else socket.AF_INET
            if (transport := self._transports.get(family)) is None:
                continue
            transport.sendto(notice, (destination, self._port))
            sent.append(f"udp {destination}:{self._port}")
        return sent

    @staticmethod
    def _unicast(address: str | None) -> list[str]:
        if address is None:
            return []
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return []
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
            parsed = parsed.ipv4_mapped
        return [str(parsed)]


class _SendOnly(asyncio.DatagramProtocol):
    """Nothing is received on a sending socket; a send error is only logged."""

    def error_received(self, exc: Exception) -> None:
        LOGGER.debug("A notice datagram was not delivered: %s", exc)


def broadcast_addresses(adapters: Iterable[Adapter]) -> list[str]:
    """Return the broadcast address of each enabled adapter's IPv4 network."""
    found: list[str] = []
    for adapter in adapters:
        if not adapter["enabled"]:
            continue
        for ipv4 in adapter["ipv4"]:
            interface = ipaddress.ip_interface(
                f"{ipv4['address']}/{ipv4['network_prefix']}"
            )
            if interface.is_loopback or interface.network.prefixlen >= 31:
                continue
            if (address := str(interface.network.broadcast_address)) not in found:
                found.append(address)
    return found


class PushNotices:
    """Sends each device a notice when its configuration, firmware or certificate changes."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, runtime: ProvidoreRuntime
    ) -> None:
        """Prepare; async_load reads the counters, async_start follows the devices."""
        self._hass = hass
        self._entry = entry
        self._runtime = runtime
        settings = runtime.settings
        self._mqtt = settings.notify_mqtt
        self._udp = (
            UdpNotices(settings.notify_udp_port, settings.notify_udp_broadcast)
            if settings.notify_udp
            else None
        )
        self._store = _counter_store(hass)
        self._counters: dict[str, int] = {}
        self._queued: dict[str, set[Change]] = {}
        self._flushing: asyncio.Task[None] | None = None
        # Counters are taken, saved and used in order.
        self._lock = asyncio.Lock()
        self._unsubscribe: dict[str, CALLBACK_TYPE] = {}
        self._firmware_told: dict[str, BuildKey] = {}
        self._mqtt_missing_logged = False

    @property
    def enabled(self) -> bool:
        """Return whether any backend is turned on."""
        return self._mqtt or self._udp is not None

    async def async_load(self) -> None:
        """Read the last counter sent to each device."""
        stored = await async_load(self._hass, self._store) or {}
        self._counters = {
            key_id: counter
            for key_id, counter in stored.items()
            if isinstance(counter, int) and counter > 0
        }

    async def async_start(self) -> None:
        """Follow every device, now and as they are added; nothing when no backend is on."""
        if not self.enabled:
            return
        if self._udp is not None:
            await self._udp.async_open(self._hass)
        for device in self._runtime.devices.values():
            self._added(device)
        self._entry.async_on_unload(self._runtime.async_on_device_added(self._added))
        self._entry.async_on_unload(self._stop)

    @callback
    def _stop(self) -> None:
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._unsubscribe.clear()
        if self._udp is not None:
            self._udp.close()

    @callback
    def _added(self, device: DeviceProfile) -> None:
        # An ESPHome device speaks ESPHome, not this protocol: no notice for it.
        if device.kind is DeviceKind.PROVIDORE:
            self._follow(device.key_id)

    @callback
    def _follow(self, key_id: str) -> None:
        self._firmware_told[key_id] = _build_key(self._runtime.firmware.pending(key_id))

        @callback
        def changed(changes: DeviceChange) -> None:
            self._changed(key_id, changes)

        self._unsubscribe[key_id] = self._runtime.async_subscribe(
            key_id, FOLLOWED, changed
        )

    @callback
    def device_removed(self, key_id: str) -> None:
        """Stop following a removed device, and clear its retained notice."""
        if (unsubscribe := self._unsubscribe.pop(key_id, None)) is not None:
            unsubscribe()
        self._firmware_told.pop(key_id, None)
        self._queued.pop(key_id, None)
        if self._counters.pop(key_id, None) is not None:
            self._store.async_delay_save(lambda: dict(self._counters))
        if self._mqtt and mqtt.mqtt_config_entry_enabled(self._hass):
            self._entry.async_create_background_task(
                self._hass,
                self._async_publish(key_id, b""),
                "providore clear retained notice",
            )

    @callback
    def _changed(self, key_id: str, changes: DeviceChange) -> None:
        """Turn what changed into what the device should pull, if anything."""
        wanted: set[Change] = set()
        if DeviceChange.CONFIG in changes:
            wanted.add(Change.CONFIG)
        if DeviceChange.UPDATE in changes:
            # Download progress, catalog uploads and the versions the device reports
            # change UPDATE too: only a newly assigned build it does not run is news.
            firmware = self._runtime.firmware
            build = _build_key(firmware.assigned(key_id))
            if build != self._firmware_told.get(key_id):
                self._firmware_told[key_id] = build
                if firmware.pending(key_id) is not None:
                    wanted.add(Change.FIRMWARE)
        if DeviceChange.CERTIFICATE in changes and (
            self._runtime.current_certificate(key_id) is None
        ):
            # Revoked, or forgotten with a replaced CA: the device must ask for a new
            # one. A certificate is only issued at the device's own request, which
            # already answered it.
            wanted.add(Change.CERTIFICATE)
        if wanted:
            self._queued.setdefault(key_id, set()).update(wanted)
            if self._flushing is None:
                self._flushing = self._entry.async_create_background_task(
                    self._hass,
                    self._async_flush(),
                    "providore notices",
                    eager_start=False,
                )

    async def _async_flush(self) -> None:
        """Send what was queued; changes made meanwhile go in the next round."""
        try:
            while self._queued:
                batch, self._queued = self._queued, {}
                async with self._lock:
                    await self._async_send(batch, dt_util.utcnow())
        finally:
            self._flushing = None

    async def async_notify(self, key_id: str, changes: set[Change]) -> list[str]:
        """Send a device a notice now (an admin asks); return where it went."""
        async with self._lock:
            sent = await self._async_send({key_id: changes}, dt_util.utcnow())
        return sent.get(key_id, [])

    async def _async_send(
        self, batch: dict[str, set[Change]], now: datetime
    ) -> dict[str, list[str]]:
        """Take each device's next counter, save them all, then send the notices."""
        notices: dict[str, tuple[int, bytes]] = {}
        for key_id, changes in batch.items():
            if (secret := self._runtime.secret(key_id)) is None:
                continue
            counter = next_counter(self._counters.get(key_id, 0), now)
            self._counters[key_id] = counter
            notice = build_notice(
                key_id=key_id,
                secret_key=secret,
                changes=changes,
                counter=counter,
                now=now,
            )
            notices[key_id] = counter, notice
        if not notices:
            return {}
        try:
            await self._store.async_save(dict(self._counters))
        except (OSError, HomeAssistantError) as err:
            LOGGER.error("Notices not sent: their counters could not be saved: %s", err)
            return {}
        sent: dict[str, list[str]] = {}
        for key_id, (counter, notice) in notices.items():
            sent[key_id] = destinations = self._send(key_id, notice)
            LOGGER.debug(
                "Notice %s (%s) for %s: %s",
                counter,
                ",".join(sorted(batch[key_id])),
                key_id,
                ", ".join(destinations) or "sent nowhere",
            )
        return sent

    def _send(self, key_id: str, notice: bytes) -> list[str]:
        sent: list[str] = []
        if self._mqtt:
            if mqtt.mqtt_config_entry_enabled(self._hass):
                self._mqtt_missing_logged = False
                self._entry.async_create_background_task(
                    self._hass,
                    self._async_publish(key_id, notice),
                    "providore notice",
                )
                sent.append(f"mqtt {notice_topic(key_id)}")
            elif not self._mqtt_missing_logged:
                self._mqtt_missing_logged = True
                LOGGER.warning(
                    "Notices over MQTT are turned on, but Home Assistant's MQTT"
                    " integration is not set up: notices go by UDP only, if at all"
                )
        if self._udp is not None:
            sent += self._udp.send(notice, self._runtime.state(key_id).address)
        return sent

    async def _async_publish(self, key_id: str, payload: bytes) -> None:
        """Publish a notice, retained until the next one replaces it (best effort)."""
        try:
            await mqtt.async_publish(
                self._hass, notice_topic(key_id), payload, qos=MQTT_QOS, retain=True
            )
        except HomeAssistantError as err:
            LOGGER.warning("Could not publish the notice for %s: %s", key_id, err)

    @staticmethod
    async def async_remove_store(hass: HomeAssistant) -> None:
        """Delete the counters (the hub is removed)."""
        await _counter_store(hass).async_remove()

    def diagnostics(self) -> dict[str, Any]:
        """Return the backends and how many devices were sent a notice."""
        return {
            "mqtt": self._mqtt,
            "udp": self._udp is not None,
            "devices_notified": len(self._counters),
        }
