"""Unknown devices found by zeroconf: the `_providore-dev._tcp` services on the network.

Home Assistant's zeroconf integration would hand such a service to the hub's config
flow (the manifest lists the type), but with a hub set up it aborts every discovery
flow of a `single_config_entry` integration before the flow runs, and a discovery
flow could not create a device subentry anyway (Home Assistant 2025.4 to 2026.2 only
let `user` and `reconfigure` flows do that). So while the hub is loaded, this browser
watches the type on Home Assistant's shared zeroconf instance itself and hands each
service to the pending devices, which the admin adopts through a repair or the Add
device flow. The manifest's entry still serves before the hub exists: a device's
service then offers to set Providore up.
"""

from __future__ import annotations

import asyncio
from typing import Final

from homeassistant.components import zeroconf
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

from .const import LOGGER
from .device_hello import DEVICE_SERVICE_TYPE, HelloMalformed, hello_from_txt
from .pending_devices import AnnouncementSource, PendingDevices

# Services resolved at the same time; more are passed over until one is done.
MAX_RESOLVING: Final = 8
RESOLVE_TIMEOUT_MS: Final = 3000


class DeviceBrowser:
    """Hands every `_providore-dev._tcp` service seen to the pending devices."""

    def __init__(self, hass: HomeAssistant, pending: PendingDevices) -> None:
        """Prepare; nothing is browsed before async_start."""
        self._hass = hass
        self._pending = pending
        self._browser: AsyncServiceBrowser | None = None
        self._resolving: set[asyncio.Task[None]] = set()

    async def async_start(self) -> None:
        """Browse on Home Assistant's shared zeroconf instance."""
        aiozc = await zeroconf.async_get_async_instance(self._hass)
        self._browser = AsyncServiceBrowser(
            aiozc.zeroconf, [DEVICE_SERVICE_TYPE], handlers=[self._service_changed]
        )

    async def async_stop(self) -> None:
        """Stop browsing and resolving."""
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        for task in self._resolving:
            task.cancel()
        await asyncio.gather(*self._resolving, return_exceptions=True)

    # python-zeroconf calls handlers with these keyword arguments.
    @callback
    def _service_changed(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            return
        if len(self._resolving) >= MAX_RESOLVING:
            LOGGER.debug("Passed over %s: too many device services at once", name)
            return
        task = self._hass.async_create_background_task(
            self._async_resolve(zeroconf, service_type, name),
            "providore device service",
        )
        self._resolving.add(task)
        task.add_done_callback(self._resolving.discard)

    async def _async_resolve(self, zc: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zc, RESOLVE_TIMEOUT_MS):
            return
        addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
        address = addresses[0] if addresses else None
        now = dt_util.utcnow()
        if self._pending.retry_after(address or name, now) is not None:
            return
        try:
            hello = hello_from_txt(info.properties)
        except HelloMalformed as err:
            LOGGER.debug("Passed over the device service %s: %s", name, err)
            return
        self._pending.announce(hello, address, AnnouncementSource.ZEROCONF, now)
