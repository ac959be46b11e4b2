"""What Providore keeps on disk: device secrets, configuration documents, reported state.

Each kind lives in its own Home Assistant store: the secrets in a private store
(mode 0600, written atomically and synced), so that no secret ever lands in the
world-readable config entries file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.helpers.singleton import singleton
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, STATE_SAVE_DELAY

STORAGE_VERSION = 1
DATA_STORAGE: HassKey[ProvidoreStorage] = HassKey(f"{DOMAIN}_storage")

type JsonObject = dict[str, Any]


class DeviceDocuments(TypedDict, total=False):
    """The configuration documents of one device."""

    default: JsonObject
    versions: dict[str, JsonObject]


class StoredState(TypedDict):
    """The serialised form of a device's reported state."""

    last_seen: str | None
    address: str | None
    firmware_version: str | None


@dataclass(slots=True)
class DeviceState:
    """What a device last told Home Assistant about itself."""

    last_seen: datetime | None = None
    address: str | None = None
    firmware_version: str | None = None

    @classmethod
    def from_stored(cls, stored: StoredState) -> DeviceState:
        """Read a stored state."""
        last_seen = stored["last_seen"]
        return cls(
            last_seen=dt_util.parse_datetime(last_seen) if last_seen else None,
            address=stored["address"],
            firmware_version=stored["firmware_version"],
        )

    def to_stored(self) -> StoredState:
        """Serialise for the store."""
        return StoredState(
            last_seen=self.last_seen.isoformat() if self.last_seen else None,
            address=self.address,
            firmware_version=self.firmware_version,
        )


class ProvidoreStorage:
    """Loads, holds and saves everything Providore persists."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the stores; call async_load before use."""
        self._secrets_store: Store[dict[str, str]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.secrets", private=True, atomic_writes=True
        )
        self._documents_store: Store[dict[str, DeviceDocuments]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.documents", atomic_writes=True
        )
        self._state_store: Store[dict[str, StoredState]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.device_state"
        )
        self._secrets: dict[str, str] = {}
        self._documents: dict[str, DeviceDocuments] = {}
        self._states: dict[str, DeviceState] = {}
        self._state_save_pending = False
        self._states_snapshot: dict[str, StoredState] = {}

    async def async_load(self) -> None:
        """Read all stores from disk."""
        self._secrets = await self._secrets_store.async_load() or {}
        self._documents = await self._documents_store.async_load() or {}
        stored_states = await self._state_store.async_load() or {}
        self._states = {
            key_id: DeviceState.from_stored(stored)
            for key_id, stored in stored_states.items()
        }

    def secret(self, key_id: str) -> str | None:
        """Return the secret key of a device, or None when there is none."""
        return self._secrets.get(key_id)

    async def async_set_secret(self, key_id: str, secret_key: str) -> None:
        """Store a device's secret key, replacing any earlier one at once."""
        self._secrets[key_id] = secret_key
        await self._secrets_store.async_save(self._secrets)

    def document(self, key_id: str, firmware_version: str | None) -> JsonObject | None:
        """Return the document for a firmware version, else the device's default."""
        documents = self._documents.get(key_id, DeviceDocuments())
        versions = documents.get("versions", {})
        if firmware_version is not None and firmware_version in versions:
            return versions[firmware_version]
        return documents.get("default")

    def documents(self, key_id: str) -> DeviceDocuments:
        """Return every document of a device."""
        return self._documents.get(key_id, DeviceDocuments())

    async def async_set_document(
        self, key_id: str, document: JsonObject, firmware_version: str | None = None
    ) -> None:
        """Set the default document of a device, or the one for a firmware version."""
        documents = self._documents.setdefault(key_id, DeviceDocuments())
        if firmware_version is None:
            documents["default"] = document
        else:
            documents.setdefault("versions", {})[firmware_version] = document
        await self._documents_store.async_save(self._documents)

    def state(self, key_id: str) -> DeviceState:
        """Return what a device last reported (empty when it never called)."""
        return self._states.setdefault(key_id, DeviceState())

    def schedule_state_save(self) -> None:
        """Write the reported states within a few seconds, once for many requests.

        The store's own delayed save postpones the write on every call, so a device
        calling every second would never be saved: schedule only when none is pending.
        """
        # The store calls _states_to_save in a worker thread on Home Assistant 2025.4
        # (in the event loop on 2026.2): it gets a copy made here, never live state.
        self._states_snapshot = self._stored_states()
        if not self._state_save_pending:
            self._state_save_pending = True
            self._state_store.async_delay_save(self._states_to_save, STATE_SAVE_DELAY)

    def _states_to_save(self) -> dict[str, StoredState]:
        # Clear the flag before reading: a request recorded meanwhile schedules anew.
        self._state_save_pending = False
        return self._states_snapshot

    def _stored_states(self) -> dict[str, StoredState]:
        return {key_id: state.to_stored() for key_id, state in self._states.items()}

    async def async_keep_only(self, key_ids: Iterable[str]) -> None:
        """Forget every device not in `key_ids`, e.g. after a device was removed."""
        keep = set(key_ids)
        if stale := set(self._secrets) - keep:
            for key_id in stale:
                del self._secrets[key_id]
            await self._secrets_store.async_save(self._secrets)
        if stale := set(self._documents) - keep:
            for key_id in stale:
                del self._documents[key_id]
            await self._documents_store.async_save(self._documents)
        if stale := set(self._states) - keep:
            for key_id in stale:
                del self._states[key_id]
            # This write replaces a pending delayed one: let the next request schedule.
            self._state_save_pending = False
            await self._state_store.async_save(self._stored_states())

    async def async_remove(self) -> None:
        """Delete every store from disk."""
        self._secrets, self._documents, self._states = {}, {}, {}
        self._state_save_pending = False
        for store in (self._secrets_store, self._documents_store, self._state_store):
            await store.async_remove()


@singleton(DATA_STORAGE, async_=True)
async def async_get_storage(hass: HomeAssistant) -> ProvidoreStorage:
    """Return the loaded storage, loading it on first use."""
    storage = ProvidoreStorage(hass)
    await storage.async_load()
    return storage
