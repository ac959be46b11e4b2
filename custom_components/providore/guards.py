"""In-memory guards for the device endpoints: failure throttling and replay detection.

Pure standard library; every method takes the current time explicitly so the
behaviour is deterministic and easy to test. Memory stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta
from enum import Enum
import heapq

_SECOND = timedelta(seconds=1)


class FailureThrottle:
    """Counts failed requests per client address in a sliding window.

    A failure at time `t` counts while `now - t < window`. An address is throttled
    while at least `limit` failures count, so only the newest `limit` failures of an
    address are ever kept.
    """

    def __init__(
        self,
        limit: int = 10,
        window: timedelta = timedelta(minutes=5),
        max_addresses: int = 4096,
    ) -> None:
        """Set the failure limit, the window length and the number of tracked addresses."""
        if limit < 1 or max_addresses < 1 or window <= timedelta(0):
            raise ValueError("limit, window and max_addresses must be positive")
        self._limit = limit
        self._window = window
        self._max_addresses = max_addresses
        # Ordered by the time of each address's newest failure, oldest first.
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _current(self, address: str, now: datetime) -> deque[datetime] | None:
        """Return the failures of address still inside the window, forgetting stale ones."""
        failures = self._failures.get(address)
        if failures is None:
            return None
        start = now - self._window
        while failures and failures[0] <= start:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str, now: datetime) -> int | None:
        """Return whole seconds (at least 1) until address may retry, or None if not throttled."""
        failures = self._current(address, now)
        if failures is None or len(failures) < self._limit:
            return None
        # The count drops below the limit when the limit-th newest failure leaves.
        remaining = failures[-self._limit] + self._window - now
        return max(1, -(-remaining // _SECOND))

    def record_failure(self, address: str, now: datetime) -> bool:
        """Count a failure; return True exactly when it makes address reach the limit."""
        self._forget_stale(now)
        failures = self._current(address, now)
        if failures is None:
            while len(self._failures) >= self._max_addresses:
                self._failures.popitem(last=False)
            failures = self._failures[address] = deque(maxlen=self._limit)
        else:
            self._failures.move_to_end(address)
        before = len(failures)
        failures.append(now)
        return before == self._limit - 1

    def _forget_stale(self, now: datetime) -> None:
        """Drop addresses whose newest failure left the window (they come first)."""
        start = now - self._window
        while self._failures:
            address, failures = next(iter(self._failures.items()))
            if failures[-1] > start:
                return
            del self._failures[address]

    def clear(self, address: str) -> None:
        """Forget every failure of address, e.g. when the user unblocks it."""
        self._failures.pop(address, None)

    def throttled_addresses(self, now: datetime) -> list[str]:
        """Return the addresses throttled at `now`, the most recently failing first."""
        self._forget_stale(now)
        return [
            address
            for address in reversed(list(self._failures))
            if self.retry_after(address, now) is not None
        ]

    @property
    def tracked_addresses(self) -> int:
        """Return how many addresses currently have failures remembered."""
        return len(self._failures)


class ReplayVerdict(Enum):
    """What the replay cache says of a signature offered to it."""

    NEW = "new"
    REPLAYED = "replayed"
    # The key id has as many unexpired signatures as the cache keeps for one key.
    FULL = "full"


class ReplayCache:
    """Remembers accepted signatures until their requests expire.

    A signature is refused again whatever key id comes with it; at most `per_key`
    unexpired signatures are kept for one key id, so memory is bounded by the
    number of devices. A key that would need more is refused: its oldest
    signatures are never dropped early, which would reopen their replay window.
    """

    def __init__(self, per_key: int = 32) -> None:
        """Start empty."""
        if per_key < 1:
            raise ValueError("per_key must be positive")
        self._per_key = per_key
        self._entries: dict[str, tuple[str, datetime]] = {}
        self._counts: dict[str, int] = {}
        self._heap: list[tuple[datetime, str]] = []

    def _prune(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, signature = heapq.heappop(self._heap)
            entry = self._entries.get(signature)
            if entry is not None and entry[1] == expiry:
                self._drop(signature)

    def _drop(self, signature: str) -> None:
        key_id, _expiry = self._entries.pop(signature)
        if (count := self._counts[key_id] - 1) > 0:
            self._counts[key_id] = count
        else:
            del self._counts[key_id]

    def remember(
        self, key_id: str, signature: str, expiry: datetime, now: datetime
    ) -> ReplayVerdict:
        """Remember a signature at once, unless it was seen already or the key is full."""
        self._prune(now)
        if signature in self._entries:
            return ReplayVerdict.REPLAYED
        if self._counts.get(key_id, 0) >= self._per_key:
            return ReplayVerdict.FULL
        if expiry > now:
            self._entries[signature] = (key_id, expiry)
            self._counts[key_id] = self._counts.get(key_id, 0) + 1
            heapq.heappush(self._heap, (expiry, signature))
        return ReplayVerdict.NEW

    def forget(self, signature: str) -> None:
        """Drop a signature remembered for a request that was not answered after all."""
        if signature in self._entries:
            self._drop(signature)

    def remembered(self, now: datetime) -> list[tuple[str, str, datetime]]:
        """Return every unexpired (key id, signature, expiry), to save them."""
        self._prune(now)
        return [
            (key_id, signature, expiry)
            for signature, (key_id, expiry) in self._entries.items()
        ]

    def __len__(self) -> int:
        """Return how many signatures are remembered."""
        return len(self._entries)


class RateLimit:
    """At most `limit` events per key in a sliding window; memory stays bounded.

    Unlike FailureThrottle, which only counts what went wrong, this counts every
    event it lets through (for example every announcement of an unknown device).
    """

    def __init__(self, limit: int, window: timedelta, max_keys: int = 4096) -> None:
        """Allow `limit` events per key in `window`, tracking at most `max_keys` keys."""
        self._events = FailureThrottle(limit, window, max_keys)

    def retry_after(self, key: str, now: datetime) -> int | None:
        """Count an event and return None; or the seconds to wait when over the limit.

        An event refused is not counted, so a key that keeps trying is let through
        again as soon as its oldest counted event leaves the window.
        """
        if (wait := self._events.retry_after(key, now)) is not None:
            return wait
        self._events.record_failure(key, now)
        return None

    @property
    def tracked_keys(self) -> int:
        """Return how many keys have events remembered."""
        return self._events.tracked_addresses
