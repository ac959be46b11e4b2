"""The one path every Providore store is loaded through: bounded, and loud when unreadable.

Home Assistant moves a store file it cannot parse aside as `<name>.corrupt.<time>`
and hands back nothing, as if the store had never existed. For Providore that
would silently mean new keys or a new CA, so a load that ends like this raises
StoreUnreadable (naming where the corrupt copy went) instead of returning None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir, storage
from homeassistant.util import dt as dt_util

from .const import DOMAIN

STORAGE_VERSION: Final = 1
# A store that takes longer than this to load is treated as unreadable for now.
LOAD_TIMEOUT: Final = 30
_CORRUPT_MARK: Final = ".corrupt."
STORE_UNREADABLE_PREFIX: Final = "store_unreadable_"


def store_issue_id(key: str) -> str:
    """Return the id of the repair issue about an unreadable store."""
    return f"{STORE_UNREADABLE_PREFIX}{key}"


class StoreUnreadable(Exception):  # noqa: N818
    """A store exists but cannot be read; `corrupt_path` is where its copy went."""

    def __init__(self, key: str, reason: str, corrupt_path: str | None = None) -> None:
        """Describe the store and why it cannot be read."""
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.corrupt_path = corrupt_path


class StoreLoadTimeout(StoreUnreadable):
    """A store took too long to load; setting up again later may succeed."""


def providore_store[T: Mapping[str, Any]](
    hass: HomeAssistant, name: str, *, private: bool = False
) -> storage.Store[T]:
    """Return Providore's store `name`, written atomically (and 0600 when private)."""
    return storage.Store(
        hass, STORAGE_VERSION, f"{DOMAIN}.{name}", private=private, atomic_writes=True
    )


def _corrupt_copy_since(path: str, since: datetime) -> str | None:
    """Return the copy Home Assistant moved `path` to at or after `since`, if any."""
    original = Path(path)
    copies = [
        (moved_at, copy)
        for copy in original.parent.glob(f"{original.name}{_CORRUPT_MARK}*")
        if (moved_at := dt_util.parse_datetime(copy.name.rpartition(_CORRUPT_MARK)[2]))
        and moved_at >= since
    ]
    return str(max(copies)[1]) if copies else None


async def async_load[T: Mapping[str, Any]](
    hass: HomeAssistant, store: storage.Store[T]
) -> T | None:
    """Load a store; None only when it does not exist. Raise StoreUnreadable otherwise.

    A store found unreadable earlier stays unreadable while it is missing, until
    the user restores it or chooses to start afresh (its repair issue is open).
    """
    started = dt_util.utcnow()
    # A file restored while Home Assistant runs must be read again, not taken
    # from the store manager's record of what existed at start-up.
    storage.get_internal_store_manager(hass).async_invalidate(store.key)
    try:
        async with asyncio.timeout(LOAD_TIMEOUT):
            data = await store.async_load()
    except TimeoutError as err:
        raise StoreLoadTimeout(store.key, "loading timed out") from err
    except (HomeAssistantError, OSError, ValueError, KeyError, TypeError) as err:
        raise StoreUnreadable(store.key, str(err) or type(err).__name__) from err
    except NotImplementedError as err:
        raise StoreUnreadable(store.key, "written by a newer Providore") from err
    if data is None and (
        corrupt_path := await hass.async_add_executor_job(
            _corrupt_copy_since, store.path, started
        )
    ):
        raise StoreUnreadable(store.key, "not valid JSON", corrupt_path)
    if data is None and (
        issue := ir.async_get(hass).async_get_issue(DOMAIN, store_issue_id(store.key))
    ):
        moved_to = (issue.data or {}).get("corrupt_path")
        raise StoreUnreadable(
            store.key, "not restored yet", str(moved_to) if moved_to else None
        )
    return data
