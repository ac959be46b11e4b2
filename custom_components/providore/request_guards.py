"""What outlives a hub entry: failure throttling per address, and accepted POST signatures.

This state lives for as long as Home Assistant runs (reloading the entry never
reopens a replay window), and the signatures are written to disk before their
requests are answered, so a restart does not reopen it either.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, LOGGER, THROTTLE_LIMIT, THROTTLE_WINDOW_SECONDS
from .guards import FailureThrottle, ReplayCache, ReplayVerdict
from .protocol import is_valid_key_id
from .replay_log import append_entry, read_entries, rewrite
from .stores import StoreUnreadable, async_load, providore_store

THROTTLED_ISSUE_ID: Final = "address_throttled"
# The repair names this many of the most recently throttled addresses.
MAX_NAMED_ADDRESSES: Final = 5
# Unexpired signatures kept per key id; a device needing more is asked to wait.
MAX_SIGNATURES_PER_KEY: Final = 32
REPLAY_LOG: Final = "replay.jsonl"
# The log is rewritten when it holds this many more lines than live signatures.
COMPACT_AFTER_LINES: Final = 1000
# The key id noted for an address whose last try named no valid key id.
NO_KEY_ID: Final = "-"


class SignatureNotSaved(Exception):  # noqa: N818
    """An accepted signature could not be written to disk; the request is not served."""


class KeyBusy(Exception):  # noqa: N818
    """A key id made more POST requests than are remembered at once; it must wait."""


class RequestGuards:
    """Refuses floods of bad requests and replays of accepted POSTs."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with nothing throttled; call async_load for the saved signatures."""
        self._hass = hass
        self.throttle = FailureThrottle(
            THROTTLE_LIMIT, timedelta(seconds=THROTTLE_WINDOW_SECONDS)
        )
        self.replay = ReplayCache(MAX_SIGNATURES_PER_KEY)
        self._log_path = Path(hass.config.path(DOMAIN, REPLAY_LOG))
        self._log_lines = 0
        self._log_lock = asyncio.Lock()
        self._last_key_id_tried = NO_KEY_ID
        self._cancel_issue_check: CALLBACK_TYPE | None = None

    async def async_load(self) -> None:
        """Refuse again the signatures accepted before a restart, until they expire.

        A log that cannot be read costs only that memory; it never keeps
        Providore from starting.
        """
        now = dt_util.utcnow()
        try:
            entries = await self._hass.async_add_executor_job(
                read_entries, self._log_path, now
            )
        except OSError as err:
            LOGGER.warning("Starting without the accepted request signatures: %s", err)
            entries = []
        entries += await self._async_take_legacy_store(now)
        for key_id, signature, expiry in entries:
            self.replay.remember(key_id, signature, expiry, now)
        await self._async_compact(now)

    async def _async_take_legacy_store(
        self, now: datetime
    ) -> list[tuple[str, str, datetime]]:
        """Read (and delete) the signatures saved by earlier versions, without key ids."""
        store: Store[dict[str, str]] = providore_store(self._hass, "replay")
        try:
            saved = await async_load(self._hass, store) or {}
        except StoreUnreadable as err:
            LOGGER.warning("Skipping the earlier saved request signatures: %s", err)
            saved = {}
        await store.async_remove()
        return [
            (NO_KEY_ID, signature, moment)
            for signature, expiry in saved.items()
            if (moment := dt_util.parse_datetime(expiry)) is not None and moment > now
        ]

    async def async_remember(
        self, key_id: str, signature: str, expiry: datetime, now: datetime
    ) -> bool:
        """Return False for a replay; else note the signature on disk, then True.

        Raises KeyBusy when the key has too many unexpired signatures, and
        SignatureNotSaved when the disk refuses it (the request must not be served).
        """
        verdict = self.replay.remember(key_id, signature, expiry, now)
        if verdict is ReplayVerdict.REPLAYED:
            return False
        if verdict is ReplayVerdict.FULL:
            raise KeyBusy
        try:
            async with self._log_lock:
                await self._hass.async_add_executor_job(
                    append_entry, self._log_path, (key_id, signature, expiry)
                )
                self._log_lines += 1
                if self._log_lines > len(self.replay) + COMPACT_AFTER_LINES:
                    await self._async_compact(now)
        except OSError as err:
            self.replay.forget(signature)
            LOGGER.error("Could not save an accepted request signature: %s", err)
            raise SignatureNotSaved from err
        return True

    async def _async_compact(self, now: datetime) -> None:
        """Rewrite the log with only the unexpired signatures."""
        remembered = self.replay.remembered(now)
        try:
            await self._hass.async_add_executor_job(rewrite, self._log_path, remembered)
        except OSError as err:
            LOGGER.warning("Could not rewrite the accepted request signatures: %s", err)
            return
        self._log_lines = len(remembered)

    @callback
    def retry_after(self, address: str, now: datetime) -> int | None:
        """Return the seconds a throttled address must wait, else None."""
        return self.throttle.retry_after(address, now)

    @callback
    def record_failure(self, address: str, key_id: str | None, now: datetime) -> None:
        """Count a refused request; tell the user when its address becomes throttled."""
        if not self.throttle.record_failure(address, now):
            return
        tried = key_id if key_id is not None and is_valid_key_id(key_id) else NO_KEY_ID
        self._last_key_id_tried = tried
        LOGGER.warning(
            "Throttling device requests from %s after %s failures (last key id tried: %s)",
            address,
            THROTTLE_LIMIT,
            tried,
        )
        self._update_throttled_issue(now)

    @callback
    def unblock_all(self) -> None:
        """Let every throttled address try again (the user looked into it)."""
        now = dt_util.utcnow()
        for address in self.throttle.throttled_addresses(now):
            self.throttle.clear(address)
        self._update_throttled_issue(now)

    @callback
    def _update_throttled_issue(self, now: datetime) -> None:
        """Keep one repair naming the most recently throttled addresses, while any is."""
        if self._cancel_issue_check is not None:
            self._cancel_issue_check()
            self._cancel_issue_check = None
        throttled = self.throttle.throttled_addresses(now)
        if not throttled:
            ir.async_delete_issue(self._hass, DOMAIN, THROTTLED_ISSUE_ID)
            return
        named = ", ".join(throttled[:MAX_NAMED_ADDRESSES])
        if len(throttled) > MAX_NAMED_ADDRESSES:
            named += f" (+{len(throttled) - MAX_NAMED_ADDRESSES})"
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            THROTTLED_ISSUE_ID,
            is_fixable=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key="address_throttled",
            translation_placeholders={
                "addresses": named,
                "count": str(len(throttled)),
                "key_id": self._last_key_id_tried,
            },
        )
        release = min(
            self.throttle.retry_after(address, now) or 1 for address in throttled
        )

        @callback
        def check_again(_now: datetime) -> None:
            self._cancel_issue_check = None
            self._update_throttled_issue(dt_util.utcnow())

        self._cancel_issue_check = async_call_later(self._hass, release, check_again)

    @callback
    def async_stop(self) -> None:
        """Cancel the pending check of the throttled-addresses issue."""
        if self._cancel_issue_check is not None:
            self._cancel_issue_check()
            self._cancel_issue_check = None

    async def async_remove(self) -> None:
        """Forget every signature and delete the log (when the hub is removed)."""
        self.replay = ReplayCache(MAX_SIGNATURES_PER_KEY)
        self._log_lines = 0
        await self._hass.async_add_executor_job(self._log_path.unlink, True)


DATA_GUARDS: HassKey[RequestGuards] = HassKey(f"{DOMAIN}_guards")
