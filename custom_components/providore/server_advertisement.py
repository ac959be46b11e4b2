"""Providore's `_providore._tcp` service on Home Assistant's shared zeroconf instance.

Registered when the hub is set up (as Home Assistant registers its own
`_home-assistant._tcp`), withdrawn when the hub unloads, and registered again when
what it says changes: Home Assistant's internal URL (a core configuration update),
Providore's CA (an import), or the host name option. The TXT layout is in
`advertisement`, which knows nothing of Home Assistant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from homeassistant.components import network, zeroconf
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_CORE_CONFIG_UPDATE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import instance_id
import yarl
from zeroconf import Error as ZeroconfError
from zeroconf.asyncio import AsyncServiceInfo

from .advertisement import SERVICE_TYPE, advertisement_properties
from .certificate_authority import CertificateAuthority
from .const import LOGGER

INSTANCE_NAME: Final = "Providore"
# The original firmware's default server is https://providore.local.
PROVIDORE_LOCAL_HOST: Final = "providore.local."

type ServiceKey = tuple[str, int, tuple[str, ...], tuple[tuple[str, str], ...]]


def web_endpoint(
    internal_url: str | None, server_port: int, use_ssl: bool
) -> tuple[str | None, int, bool]:
    """Return (its .local host name or None, port, TLS) of Home Assistant on the network.

    The internal URL, when one is set, is how devices on the network reach Home
    Assistant; otherwise its own web server's port and scheme are.
    """
    if internal_url:
        url = yarl.URL(internal_url)
        host = url.host if url.host and url.host.endswith(".local") else None
        return host, url.port or server_port, url.scheme == "https"
    return None, server_port, use_ssl


class ServerAdvertisement:
    """Keeps the hub's `_providore._tcp` service registered while the hub is loaded.

    When the host name option is on, the service's SRV record names
    `providore.local.`, so that name answers with Home Assistant's addresses too.
    It is one service, not a second one beside it: a device that finds two
    `_providore._tcp` services does not guess between them (see "Finding the
    server" in docs/protocol.md), and python-zeroconf answers for a host name
    exactly when a registered service names it as its server.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        authority: Callable[[], CertificateAuthority],
        answer_providore_local: bool,
    ) -> None:
        """Advertise the hub of `entry`; `authority` returns the current CA."""
        self._hass = hass
        self._entry = entry
        self._authority = authority
        self._answer_providore_local = answer_providore_local
        self._info: AsyncServiceInfo | None = None
        self._registered: ServiceKey | None = None
        self._stopped = False
        # One registration or withdrawal at a time, in the order asked.
        self._lock = asyncio.Lock()

    @callback
    def async_start(self) -> None:
        """Register the service soon; follow Home Assistant's URL; withdraw on unload."""
        self._entry.async_on_unload(
            self._hass.bus.async_listen(
                EVENT_CORE_CONFIG_UPDATE, self._core_config_updated
            )
        )
        self._entry.async_on_unload(self.async_stop)
        self.async_refresh_soon()

    @callback
    def async_refresh_soon(self) -> None:
        """Register the service again if what it says changed (without waiting).

        Registering probes the network for a name conflict first, which takes about
        a second; the hub does not wait for it. Unloading waits for it, then
        withdraws the service.
        """
        self._entry.async_create_task(
            self._hass, self.async_refresh(), "providore advertisement"
        )

    @callback
    def _core_config_updated(self, _event: Event) -> None:
        self.async_refresh_soon()

    async def async_refresh(self) -> None:
        """Register the service, or register it again when what it says changed."""
        async with self._lock:
            if self._stopped:
                return
            info = await self._async_service_info()
            key = _service_key(info)
            if key == self._registered:
                return
            aiozc = await zeroconf.async_get_async_instance(self._hass)
            try:
                if self._info is not None:
                    # Each call returns the task that says goodbye or announces the
                    # service on the network: the hub waits for it, not its setup.
                    await (await aiozc.async_unregister_service(self._info))
                    self._info = self._registered = None
                await (await aiozc.async_register_service(info, allow_name_change=True))
            except ZeroconfError as err:
                LOGGER.warning("Could not advertise Providore by zeroconf: %s", err)
                return
            self._info, self._registered = info, key
            LOGGER.debug(
                "Advertising %s at %s:%s (%s)",
                info.name,
                info.server,
                info.port,
                ", ".join(info.parsed_addresses()),
            )

    async def async_stop(self) -> None:
        """Withdraw the service (the hub unloads); a refresh still waiting does nothing."""
        self._stopped = True
        async with self._lock:
            if self._info is None:
                return
            aiozc = await zeroconf.async_get_async_instance(self._hass)
            info, self._info, self._registered = self._info, None, None
            if aiozc.zeroconf.done:
                # Home Assistant is closing: zeroconf said goodbye for every service.
                return
            try:
                await (await aiozc.async_unregister_service(info))
            except ZeroconfError as err:
                LOGGER.debug("Could not withdraw the zeroconf advertisement: %s", err)

    async def _async_service_info(self) -> AsyncServiceInfo:
        hass = self._hass
        api = hass.config.api
        host, port, tls = web_endpoint(
            hass.config.internal_url,
            hass.http.server_port,
            api is not None and api.use_ssl,
        )
        if self._answer_providore_local:
            server = PROVIDORE_LOCAL_HOST
        elif host is not None:
            server = f"{host}."
        else:
            # The host name Home Assistant advertises itself under.
            server = f"{await instance_id.async_get(hass)}.local."
        return AsyncServiceInfo(
            SERVICE_TYPE,
            name=f"{INSTANCE_NAME}.{SERVICE_TYPE}",
            server=server,
            port=port,
            parsed_addresses=await network.async_get_announce_addresses(hass),
            properties=advertisement_properties(
                tls=tls, ca_certificate=self._authority().certificate
            ),
        )


def _service_key(info: AsyncServiceInfo) -> ServiceKey:
    """Return what a device learns from the service, to tell whether it changed."""
    properties = tuple(
        sorted(
            (key.decode(), (value or b"").decode())
            for key, value in info.properties.items()
        )
    )
    return (
        info.server or "",
        info.port or 0,
        tuple(info.parsed_addresses()),
        properties,
    )
