"""The tokens of ESPHome devices: the secret in each device's manifest URL.

An ESPHome device sends no header of Providore's, so its manifest and firmware URLs
carry a 128-bit random token in their path. Tokens live in a private store (mode
0600, written atomically), like the secret keys of other devices. A request's token
is found in one dictionary lookup, by the SHA-256 of the token (which tells nothing
about any token's characters), and then compared in constant time, so the work per
request never grows with the number of devices.
"""

from __future__ import annotations

from collections.abc import Iterable
import hashlib
import hmac
import re
import secrets
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .stores import async_load, providore_store

TOKEN_BYTES: Final = 16
_TOKEN_RE: Final = re.compile(rf"[0-9a-f]{{{TOKEN_BYTES * 2}}}", re.ASCII)


def generate_token() -> str:
    """Return a new random token: 128 bits as 32 lowercase hex digits."""
    return secrets.token_hex(TOKEN_BYTES)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class EsphomeTokens:
    """Each ESPHome device's token (None once revoked), found by the token itself."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the store; call async_load before use."""
        self._hass = hass
        self._store: Store[dict[str, str | None]] = providore_store(
            hass, "esphome_tokens", private=True
        )
        self._tokens: dict[str, str | None] = {}
        # The SHA-256 of each live token, to the key id of its device.
        self._by_digest: dict[bytes, str] = {}

    async def async_load(self) -> None:
        """Read the tokens; raise StoreUnreadable when they cannot be read."""
        self._tokens = await async_load(self._hass, self._store) or {}
        self._by_digest = {
            _digest(token): key_id
            for key_id, token in self._tokens.items()
            if token is not None
        }

    def token(self, key_id: str) -> str | None:
        """Return a device's token; None when it has none (revoked, or never given)."""
        return self._tokens.get(key_id)

    def find(self, token: str) -> str | None:
        """Return the key id whose token this is, else None (unknown or revoked)."""
        if _TOKEN_RE.fullmatch(token) is None:
            return None
        key_id = self._by_digest.get(_digest(token))
        if key_id is None:
            return None
        known = self._tokens.get(key_id) or ""
        return key_id if hmac.compare_digest(known, token) else None

    def key_ids(self) -> set[str]:
        """Return every key id with a token or a revoked one."""
        return set(self._tokens)

    async def async_set(self, key_id: str, token: str | None) -> None:
        """Give a device a token (None revokes it); the old one is refused at once."""
        self._unindex(key_id)
        self._tokens[key_id] = token
        if token is not None:
            self._by_digest[_digest(token)] = key_id
        await self._store.async_save(dict(self._tokens))

    async def async_forget(self, key_ids: Iterable[str]) -> None:
        """Drop the tokens of removed devices."""
        if stale := set(key_ids) & self._tokens.keys():
            for key_id in stale:
                self._unindex(key_id)
                del self._tokens[key_id]
            await self._store.async_save(dict(self._tokens))

    async def async_remove(self) -> None:
        """Delete the store (when the hub is removed)."""
        self._tokens, self._by_digest = {}, {}
        await self._store.async_remove()

    def _unindex(self, key_id: str) -> None:
        if (old := self._tokens.get(key_id)) is not None:
            self._by_digest.pop(_digest(old), None)
