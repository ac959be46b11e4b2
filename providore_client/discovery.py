"""Find the Providore server by zeroconf: browse `_providore._tcp`, check its TXT, build the URL.

The advertisement is not authenticated: it only says where to send signed requests,
and every answer is still verified with the device's key. With a CA file, servers
whose advertised CA fingerprint is not in it are passed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
import hmac
import ipaddress
from pathlib import Path
import re
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from zeroconf import (
    InterfaceChoice,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .errors import ProvidoreError, SettingsError

SERVICE_TYPE: Final = "_providore._tcp.local."
PROTOCOL_VERSION: Final = "1"
DEFAULT_WITHIN: Final = 3.0
# After the first server is found, how long to wait for others (several is an error).
SETTLE_TIME: Final = 0.5
_RESOLVE_TIMEOUT_MS: Final = 3000
_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9._~-]+)+", re.ASCII)
_HOST_RE: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?", re.ASCII)
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)

type Inform = Callable[[str], None]


class DiscoveryError(ProvidoreError):
    """No usable server was found, or more than one."""


class InvalidAdvertisement(DiscoveryError):  # noqa: N818
    """An advertisement this client cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class DiscoveredServer:
    """A Providore server found by zeroconf, with what its TXT says."""

    name: str
    host: str
    address: str
    port: int
    path: str
    tls: bool
    ca_fingerprint: str | None

    @property
    def url(self) -> str:
        """Return the base URL: the address over HTTP, the host name over HTTPS.

        A certificate names the host, not its address, so HTTPS needs a name that
        resolves (on a device: by mDNS).
        """
        if self.tls:
            return f"https://{self.host}:{self.port}{self.path}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}{self.path}"

    def describe(self) -> str:
        """Return one line naming the server and what was checked."""
        return f"{self.name!r} at {self.url}"


def read_advertisement(
    name: str,
    server: str | None,
    port: int | None,
    addresses: list[str],
    properties: Mapping[bytes, bytes | None],
) -> DiscoveredServer:
    """Check a resolved `_providore._tcp` service; raise InvalidAdvertisement if unusable."""
    txt = {
        key.decode("ascii", "replace").lower(): (value or b"").decode(
            "ascii", "replace"
        )
        for key, value in properties.items()
    }
    if txt.get("protocol") != PROTOCOL_VERSION:
        raise InvalidAdvertisement(
            f"speaks protocol {_shown(txt.get('protocol'))}, this client speaks {PROTOCOL_VERSION}"
        )
    path = txt.get("path", "").rstrip("/")
    if _PATH_RE.fullmatch(path) is None or {".", ".."} & set(path.split("/")):
        raise InvalidAdvertisement(f"invalid path {_shown(txt.get('path'))}")
    if txt.get("tls") not in ("0", "1"):
        raise InvalidAdvertisement(f"invalid tls {_shown(txt.get('tls'))}")
    fingerprint = txt.get("ca")
    if fingerprint is not None and _FINGERPRINT_RE.fullmatch(fingerprint) is None:
        raise InvalidAdvertisement(f"invalid ca {_shown(fingerprint)}")
    host = (server or "").rstrip(".")
    if not host or not all(_HOST_RE.fullmatch(label) for label in host.split(".")):
        raise InvalidAdvertisement(f"invalid host name {_shown(server)}")
    if not port:
        raise InvalidAdvertisement("no port")
    return DiscoveredServer(
        name=_instance_name(name),
        host=host,
        address=_best_address(addresses),
        port=port,
        path=path,
        tls=txt["tls"] == "1",
        ca_fingerprint=fingerprint,
    )


def ca_fingerprints(path: Path) -> frozenset[str]:
    """Return the SHA-256 fingerprints (lowercase hex) of every certificate in a PEM file."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as err:
        raise SettingsError(f"cannot read {path}: {err.strerror}") from None
    except ValueError:
        raise SettingsError(f"{path} holds no PEM certificate") from None
    return frozenset(
        certificate.fingerprint(hashes.SHA256()).hex() for certificate in certificates
    )


def check_ca(server: DiscoveredServer, ca: Path, fingerprints: frozenset[str]) -> None:
    """Refuse a server whose advertised CA is not in the CA file."""
    if server.ca_fingerprint is None:
        raise InvalidAdvertisement(
            f"advertises no CA fingerprint to check against {ca}"
        )
    if not any(
        hmac.compare_digest(server.ca_fingerprint, known) for known in fingerprints
    ):
        raise InvalidAdvertisement(f"its CA is not the one in {ca}")


async def discover_server(
    *,
    inform: Inform,
    ca: Path | None = None,
    within: float = DEFAULT_WITHIN,
    interfaces: list[str] | InterfaceChoice = InterfaceChoice.All,
) -> DiscoveredServer:
    """Return the one Providore server on the network, browsing for at most `within` seconds.

    Unusable advertisements are told to `inform` and passed over; several usable ones
    are an error, since the device cannot know which one holds its key.
    """
    fingerprints = ca_fingerprints(ca) if ca is not None else None
    found: list[DiscoveredServer] = []
    seen: set[str] = set()
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put_nowait(name)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        aiozc = AsyncZeroconf(interfaces=interfaces)
    except OSError as err:
        raise DiscoveryError(
            f"cannot look for a server by zeroconf: {err.strerror or err}"
        ) from None
    browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                name = await asyncio.wait_for(names.get(), remaining)
            except TimeoutError:
                break
            if name in seen:
                continue
            seen.add(name)
            if server := await _resolve(aiozc, name, inform, ca, fingerprints):
                found.append(server)
                deadline = min(deadline, loop.time() + SETTLE_TIME)
    finally:
        await browser.async_cancel()
        await aiozc.async_close()
    return _only_one(found, within)


async def _resolve(
    aiozc: AsyncZeroconf,
    name: str,
    inform: Inform,
    ca: Path | None,
    fingerprints: frozenset[str] | None,
) -> DiscoveredServer | None:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    if not await info.async_request(aiozc.zeroconf, _RESOLVE_TIMEOUT_MS):
        inform(f"passed over {_instance_name(name)!r}: it did not answer")
        return None
    try:
        server = read_advertisement(
            name, info.server, info.port, info.parsed_addresses(), info.properties
        )
        if ca is not None and fingerprints is not None:
            check_ca(server, ca, fingerprints)
    except InvalidAdvertisement as err:
        inform(f"passed over {_instance_name(name)!r}: {err}")
        return None
    return server


def _only_one(servers: list[DiscoveredServer], within: float) -> DiscoveredServer:
    if not servers:
        raise DiscoveryError(
            f"no Providore server found by zeroconf within {within:g} s: "
            "give --server, PROVIDORE_SERVER or server in the config file"
        )
    if len(servers) > 1:
        listed = ", ".join(server.describe() for server in servers)
        raise DiscoveryError(
            f"found {len(servers)} Providore servers ({listed}): choose one with --server"
        )
    return servers[0]


def _best_address(addresses: list[str]) -> str:
    """Prefer IPv4, then a global IPv6 address (link-local ones need a zone)."""
    parsed = [ipaddress.ip_address(address) for address in addresses]
    usable = [address for address in parsed if not address.is_link_local]
    if not usable:
        raise InvalidAdvertisement("no usable address")
    usable.sort(key=lambda address: address.version)
    return str(usable[0])


def _instance_name(name: str) -> str:
    return name.removesuffix("." + SERVICE_TYPE)


def _shown(value: str | None) -> str:
    if value is None:
        return "(missing)"
    return repr(value[:70])
