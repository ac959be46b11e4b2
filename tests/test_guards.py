from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.providore.guards import (
    FailureThrottle,
    RateLimit,
    ReplayCache,
    ReplayVerdict,
)

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def _seconds(value: float) -> datetime:
    return T0 + timedelta(seconds=value)


def test_limit_reached_exactly_on_tenth_failure() -> None:
    throttle = FailureThrottle()
    results = [throttle.record_failure("10.0.0.1", _seconds(i)) for i in range(15)]
    assert results == [False] * 9 + [True] + [False] * 5
    assert results.index(True) == 9


def test_retry_after_none_below_limit() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for i in range(9):
        throttle.record_failure("10.0.0.1", _seconds(i))
        assert throttle.retry_after("10.0.0.1", _seconds(i)) is None
    assert throttle.throttled_addresses(_seconds(9)) == []


def test_retry_after_counts_down_and_releases() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for i in range(10):
        throttle.record_failure("10.0.0.1", _seconds(i))
    # The first failure (t=0) leaves the window at t=300.
    assert throttle.retry_after("10.0.0.1", _seconds(9)) == 291
    assert throttle.retry_after("10.0.0.1", _seconds(9.5)) == 291  # rounded up
    assert throttle.retry_after("10.0.0.1", _seconds(299)) == 1
    assert throttle.retry_after("10.0.0.1", _seconds(299.999)) == 1  # at least 1
    assert throttle.throttled_addresses(_seconds(100)) == ["10.0.0.1"]
    assert throttle.retry_after("10.0.0.1", _seconds(300)) is None
    assert throttle.throttled_addresses(_seconds(300)) == []
    assert throttle.retry_after("10.0.0.1", T0 + WINDOW + timedelta(minutes=1)) is None


def test_retry_after_is_a_positive_integer() -> None:
    throttle = FailureThrottle(limit=3, window=timedelta(seconds=10))
    for _ in range(3):
        throttle.record_failure("a", T0)
    retry = throttle.retry_after("a", T0)
    assert isinstance(retry, int)
    assert retry == 10


def test_further_failures_extend_throttle() -> None:
    throttle = FailureThrottle(limit=3, window=timedelta(seconds=60))
    for t in (0, 10, 20):
        throttle.record_failure("a", _seconds(t))
    assert throttle.retry_after("a", _seconds(20)) == 40
    assert throttle.record_failure("a", _seconds(30)) is False
    # Now the limit-th newest failure is the one at t=10.
    assert throttle.retry_after("a", _seconds(30)) == 40
    assert throttle.retry_after("a", _seconds(69)) == 1
    assert throttle.retry_after("a", _seconds(70)) is None


def test_limit_reached_again_after_release() -> None:
    throttle = FailureThrottle(limit=2, window=timedelta(seconds=60))
    assert [throttle.record_failure("a", _seconds(t)) for t in (0, 1)] == [False, True]
    assert throttle.retry_after("a", _seconds(1)) == 59
    assert throttle.retry_after("a", _seconds(59)) == 1
    assert throttle.retry_after("a", _seconds(60)) is None
    assert [throttle.record_failure("a", _seconds(t)) for t in (61, 62)] == [
        False,
        True,
    ]
    assert throttle.retry_after("a", _seconds(62)) == 59


def test_spread_out_failures_never_throttle() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for i in range(50):
        now = _seconds(i * 34)  # at most 9 within any 300 s window
        assert throttle.record_failure("a", now) is False
        assert throttle.retry_after("a", now) is None


def test_failure_exactly_one_window_old_no_longer_counts() -> None:
    throttle = FailureThrottle(limit=2, window=timedelta(seconds=60))
    assert throttle.record_failure("a", _seconds(0)) is False
    assert throttle.record_failure("a", _seconds(60)) is False
    assert throttle.record_failure("a", _seconds(119.999)) is True


def test_other_addresses_unaffected() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for i in range(10):
        throttle.record_failure("10.0.0.1", _seconds(i))
    throttle.record_failure("10.0.0.2", _seconds(9))
    assert throttle.retry_after("10.0.0.1", _seconds(10)) is not None
    assert throttle.retry_after("10.0.0.2", _seconds(10)) is None
    assert throttle.retry_after("10.0.0.3", _seconds(10)) is None
    assert throttle.throttled_addresses(_seconds(10)) == ["10.0.0.1"]


def test_clear() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for i in range(10):
        throttle.record_failure("10.0.0.1", _seconds(i))
    throttle.record_failure("10.0.0.2", _seconds(9))
    throttle.clear("10.0.0.1")
    throttle.clear("never-seen")
    assert throttle.retry_after("10.0.0.1", _seconds(10)) is None
    assert throttle.tracked_addresses == 1
    # Counting starts afresh.
    assert throttle.record_failure("10.0.0.1", _seconds(11)) is False


def test_stale_addresses_are_forgotten() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW)
    for n in range(100):
        throttle.record_failure(f"10.0.1.{n}", _seconds(n))
    assert throttle.tracked_addresses == 100
    throttle.record_failure("10.0.2.1", _seconds(350))
    # Addresses whose last failure was at t <= 50 are gone.
    assert throttle.tracked_addresses == 50
    assert throttle.throttled_addresses(_seconds(1000)) == []
    assert throttle.tracked_addresses == 0


def test_max_addresses_evicts_oldest_newest_failure() -> None:
    throttle = FailureThrottle(limit=3, window=WINDOW, max_addresses=4)
    throttle.record_failure("a", _seconds(0))
    throttle.record_failure("b", _seconds(1))
    throttle.record_failure("c", _seconds(2))
    throttle.record_failure("d", _seconds(3))
    throttle.record_failure("a", _seconds(4))  # "a" now has the newest failure
    throttle.record_failure("e", _seconds(5))
    assert throttle.tracked_addresses == 4
    # "b" had the oldest newest-failure and was evicted; "a" kept its count.
    for _ in range(2):
        throttle.record_failure("b", _seconds(6))
    assert throttle.retry_after("b", _seconds(6)) is None
    assert throttle.record_failure("a", _seconds(7)) is True
    assert throttle.retry_after("a", _seconds(7)) == 293


def test_memory_stays_bounded() -> None:
    throttle = FailureThrottle(limit=10, window=WINDOW, max_addresses=64)
    for n in range(10_000):
        throttle.record_failure(f"addr-{n}", _seconds(n / 1000))
        assert throttle.tracked_addresses <= 64
    for _ in range(1000):
        throttle.record_failure("busy", _seconds(11))
    assert max(len(failures) for failures in throttle._failures.values()) == 10
    assert throttle.tracked_addresses == 64


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 0}, {"window": timedelta(0)}, {"max_addresses": 0}],
)
def test_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive"):
        FailureThrottle(**kwargs)  # type: ignore[arg-type]


NEW, REPLAYED, FULL = ReplayVerdict.NEW, ReplayVerdict.REPLAYED, ReplayVerdict.FULL


def test_replay_cache_refuses_repeat_before_expiry() -> None:
    cache = ReplayCache()
    expiry = _seconds(900)
    assert cache.remember("a", "sig-1", expiry, T0) is NEW
    assert cache.remember("a", "sig-1", expiry, _seconds(1)) is REPLAYED
    assert cache.remember("a", "sig-1", expiry, _seconds(899)) is REPLAYED
    # A signature is refused again whatever key id comes with it.
    assert cache.remember("b", "sig-1", expiry, _seconds(899)) is REPLAYED
    assert cache.remember("a", "sig-2", expiry, _seconds(899)) is NEW
    assert len(cache) == 2


def test_replay_cache_accepts_after_expiry() -> None:
    cache = ReplayCache()
    assert cache.remember("a", "sig-1", _seconds(900), T0) is NEW
    assert cache.remember("a", "sig-1", _seconds(1800), _seconds(900)) is NEW
    assert cache.remember("a", "sig-1", _seconds(1800), _seconds(901)) is REPLAYED


def test_replay_cache_prunes() -> None:
    cache = ReplayCache(per_key=1000)
    for n in range(100):
        cache.remember("a", f"sig-{n}", _seconds(n + 1), T0)
    assert len(cache) == 100
    cache.remember("a", "late", _seconds(1000), _seconds(50))
    assert len(cache) == 51  # sig-50 .. sig-99 plus "late"
    cache.remember("a", "later", _seconds(2000), _seconds(1000))
    assert len(cache) == 1


def test_replay_cache_ignores_already_expired() -> None:
    cache = ReplayCache()
    assert cache.remember("a", "old", T0, T0) is NEW
    assert len(cache) == 0


def test_replay_cache_is_bounded_per_key() -> None:
    """A key with as many unexpired signatures as allowed must wait; others need not."""
    cache = ReplayCache(per_key=3)
    for n in range(3):
        assert cache.remember("a", f"sig-{n}", _seconds(900 + n), T0) is NEW
    assert cache.remember("a", "sig-3", _seconds(900), _seconds(1)) is FULL
    assert cache.remember("b", "sig-4", _seconds(900), _seconds(1)) is NEW
    assert len(cache) == 4
    # Once the oldest has expired, the key may go on.
    assert cache.remember("a", "sig-3", _seconds(2000), _seconds(900)) is NEW
    assert cache.remembered(_seconds(901)) == [
        ("a", "sig-2", _seconds(902)),
        ("a", "sig-3", _seconds(2000)),
    ]


def test_replay_cache_forgets_an_unanswered_request() -> None:
    cache = ReplayCache(per_key=1)
    assert cache.remember("a", "sig-1", _seconds(900), T0) is NEW
    cache.forget("sig-1")
    cache.forget("sig-1")  # twice is harmless
    assert len(cache) == 0
    assert cache.remember("a", "sig-1", _seconds(900), T0) is NEW


def test_replay_cache_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="positive"):
        ReplayCache(per_key=0)


def test_rate_limit_counts_what_it_lets_through() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    limit = RateLimit(2, timedelta(minutes=1), max_keys=2)
    assert limit.retry_after("a", start) is None
    assert limit.retry_after("a", start + timedelta(seconds=10)) is None
    assert limit.retry_after("a", start + timedelta(seconds=20)) == 40
    # Refused tries are not counted: the oldest leaving the window lets one in.
    assert limit.retry_after("a", start + timedelta(seconds=61)) is None
    assert limit.retry_after("b", start) is None
    assert limit.retry_after("c", start) is None
    assert limit.tracked_keys == 2
