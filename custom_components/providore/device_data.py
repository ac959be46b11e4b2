"""What Providore keeps per device: secret keys, configuration documents, reported state.

Secrets and documents (which may hold credentials) live in private stores (mode
0600, written atomically and synced), never in the world-readable config entries.
Reported state changes with every request, so it is written in batches: a request
re-serialises only its own device's entry, and the file follows within seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import STATE_SAVE_DELAY
from .stores import async_load, providore_store

type JsonObject = dict[str, Any]


class DeviceDocuments(TypedDict, total=False):
    """The configuration documents of one device."""

    default: JsonObject
    versions: dict[str, JsonObject]


class StoredState(TypedDict, total=False):
    """The serialised form of a device's reported state."""

    last_seen: str | None
    address: str | None
    firmware_version: str | None
    # The Created-At of the newest request recorded: older ones are not recorded.
    request_created_at: str | None


@dataclass(slots=True)
class DeviceState:
    """What a device last told Home Assistant about itself."""

    last_seen: datetime | None = None
    address: str | None = None
    firmware_version: str | None = None
    request_created_at: datetime | None = None
    # Not saved: the last value written to disk, and the signature last recorded.
    saved_last_seen: datetime | None = None
    request_signature: str | None = None

    @classmethod
    def from_stored(cls, stored: StoredState) -> DeviceState:
        """Read a stored state."""
        last_seen = _parse(stored.get("last_seen"))
        return cls(
            last_seen=last_seen,
            address=stored.get("address"),
            firmware_version=stored.get("firmware_version"),
            request_created_at=_parse(stored.get("request_created_at")),
            saved_last_seen=last_seen,
        )

    def to_stored(self) -> StoredState:
        """Serialise for the store."""
        return StoredState(
            last_seen=_format(self.last_seen),
            address=self.address,
            firmware_version=self.firmware_version,
            request_created_at=_format(self.request_created_at),
        )


def _served_version(
    documents: DeviceDocuments, firmware_version: str | None
) -> str | None:
    """Return the version whose document a device running `firmware_version` gets.

    None means the default document.
    """
    versions = documents.get("versions")
    if versions and firmware_version is not None and firmware_version in versions:
        return firmware_version
    return None


def _parse(value: str | None) -> datetime | None:
    return dt_util.parse_datetime(value) if value else None


def _format(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class DeviceData:
    """Secrets, documents and states of every device, loaded and saved together."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the stores; call async_load before use."""
        self._hass = hass
        self._secrets_store: Store[dict[str, str]] = providore_store(
            hass, "secrets", private=True
        )
        self._documents_store: Store[dict[str, DeviceDocuments]] = providore_store(
            hass, "documents", private=True
        )
        self._state_store: Store[dict[str, StoredState]] = providore_store(
            hass, "device_state"
        )
        self._secrets: dict[str, str] = {}
        self._documents: dict[str, DeviceDocuments] = {}
        # Per device, each document already encoded as served (None: the default).
        self._encoded: dict[str, dict[str | None, bytes]] = {}
        self._states: dict[str, DeviceState] = {}
        # Each device's state as last serialised; the save copies this mapping whole.
        self._stored_states: dict[str, StoredState] = {}
        self._state_save_pending = False

    async def async_load(self) -> None:
        """Read every store; raise StoreUnreadable when one cannot be read."""
        hass = self._hass
        self._secrets = await async_load(hass, self._secrets_store) or {}
        self._documents = await async_load(hass, self._documents_store) or {}
        self._stored_states = await async_load(hass, self._state_store) or {}
        self._states = {
            key_id: DeviceState.from_stored(stored)
            for key_id, stored in self._stored_states.items()
        }

    def secret(self, key_id: str) -> str | None:
        """Return the secret key of a device, or None when there is none."""
        return self._secrets.get(key_id)

    def key_ids_with_secrets(self) -> set[str]:
        """Return every key id that has a secret."""
        return set(self._secrets)

    async def async_set_secrets(self, secrets: Mapping[str, str]) -> None:
        """Store secret keys (replacing earlier ones at once), in one synced write."""
        self._secrets.update(secrets)
        await self._secrets_store.async_save(self._secrets)

    def document(self, key_id: str, firmware_version: str | None) -> JsonObject | None:
        """Return the document for a firmware version, else the device's default."""
        documents = self._documents.get(key_id)
        if documents is None:
            return None
        if (version := _served_version(documents, firmware_version)) is not None:
            return documents["versions"][version]
        return documents.get("default")

    def document_body(self, key_id: str, firmware_version: str | None) -> bytes | None:
        """Return `document` as the JSON bytes served, encoded once per document."""
        documents = self._documents.get(key_id)
        if documents is None:
            return None
        version = _served_version(documents, firmware_version)
        encoded = self._encoded.setdefault(key_id, {})
        if (body := encoded.get(version)) is None:
            document = (
                documents.get("default")
                if version is None
                else documents["versions"][version]
            )
            if document is None:
                return None
            body = encoded[version] = json_bytes(document)
        return body

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
        self._encoded.pop(key_id, None)
        await self._documents_store.async_save(self._documents)

    def state(self, key_id: str) -> DeviceState:
        """Return what a device last reported (empty when it never called)."""
        if (state := self._states.get(key_id)) is None:
            state = self._states[key_id] = DeviceState()
        return state

    @callback
    def state_changed(self, key_id: str) -> None:
        """Save a device's state within a few seconds, batched with other devices'."""
        state = self._states[key_id]
        state.saved_last_seen = state.last_seen
        self._stored_states[key_id] = state.to_stored()
        if not self._state_save_pending:
            self._state_save_pending = True
            self._state_store.async_delay_save(self._states_to_save, STATE_SAVE_DELAY)

    def _states_to_save(self) -> dict[str, StoredState]:
        """Return the states to write (Home Assistant may call this in a worker thread).

        Copying a dict is one atomic step under the GIL, and the loop only ever
        replaces entries, never changes one in place.
        """
        # Cleared first: a state recorded after the copy schedules another save.
        self._state_save_pending = False
        return self._stored_states.copy()

    async def async_forget(self, key_ids: Iterable[str]) -> None:
        """Delete every secret, document and state of the given devices."""
        forget = set(key_ids)
        if stale := forget & self._secrets.keys():
            for key_id in stale:
                del self._secrets[key_id]
            await self._secrets_store.async_save(self._secrets)
        if stale := forget & self._documents.keys():
            for key_id in stale:
                del self._documents[key_id]
                self._encoded.pop(key_id, None)
            await self._documents_store.async_save(self._documents)
        if stale := forget & (self._states.keys() | self._stored_states.keys()):
            for key_id in stale:
                self._states.pop(key_id, None)
                self._stored_states.pop(key_id, None)
            self._state_save_pending = False
            await self._state_store.async_save(self._stored_states.copy())

    def known_key_ids(self) -> set[str]:
        """Return every key id that has a secret, a document or a state."""
        return self._secrets.keys() | self._documents.keys() | self._states.keys()

    async def async_remove(self) -> None:
        """Delete every store from disk."""
        self._secrets, self._documents, self._states = {}, {}, {}
        self._encoded, self._stored_states = {}, {}
        self._state_save_pending = False
        for store in (self._secrets_store, self._documents_store, self._state_store):
            await store.async_remove()
