"""Push notices: the integration's module and an independent device reproduce the vectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
from typing import Any

import pytest

from custom_components.providore.notice import (
    MAX_COUNTER,
    MAX_NOTICE_BYTES,
    NOTICE_LABEL,
    Change,
    NoticeBadSignature,
    NoticeError,
    NoticeExpired,
    NoticeForAnotherDevice,
    NoticeMalformed,
    NoticeReplayed,
    build_notice,
    next_counter,
    notice_topic,
    parse_notice,
    verify_notice,
)
from custom_components.providore.protocol import (
    DeviceKey,
    MalformedRequest,
    SignedRequest,
    Unauthorized,
    parse_timestamp,
    verify_request,
)

from . import notice_device, notice_vectors

DOCUMENT: dict[str, Any] = json.loads(
    notice_vectors.VECTORS_PATH.read_text(encoding="utf-8")
)
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]
VALID = [vector for vector in VECTORS if vector["result"] == "accepted"]
ERROR_KINDS: dict[type[NoticeError], str] = {
    NoticeMalformed: "malformed",
    NoticeForAnotherDevice: "another-device",
    NoticeBadSignature: "bad-signature",
    NoticeExpired: "expired",
    NoticeReplayed: "replayed",
}
NOW = datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)
KEY_ID = "d8fa0180"
SECRET = "Zq3v9XkP2mRt7LwY4nHc8JdF6sGb1TaE"


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _outcome(vector: dict[str, Any]) -> str:
    try:
        verify_notice(
            vector["notice"].encode(),
            key_id=vector["key_id"],
            secret_key=vector["secret"],
            now=_at(vector["now"]),
            last_counter=vector["last_counter"],
        )
    except NoticeError as err:
        return ERROR_KINDS[type(err)]
    return "accepted"


def test_vectors_file_is_generated_from_the_script() -> None:
    assert notice_vectors.render() == notice_vectors.VECTORS_PATH.read_text(
        encoding="utf-8"
    )
    results = {vector["result"] for vector in VECTORS}
    assert results == {"accepted", *ERROR_KINDS.values()}
    assert len(VALID) >= 5


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_module_builds_the_valid_vectors(vector: dict[str, Any]) -> None:
    wire = build_notice(
        key_id=vector["key_id"],
        secret_key=vector["secret"],
        changes=[Change(change) for change in vector["changes"]],
        counter=vector["counter"],
        now=_at(vector["created_at"]),
        lifetime=timedelta(seconds=vector["expiry"] - vector["created_at"]),
    )
    assert wire == vector["notice"].encode()
    assert wire == (vector["message"] + "\n" + vector["signature"]).encode()
    notice = verify_notice(
        wire,
        key_id=vector["key_id"],
        secret_key=vector["secret"],
        now=_at(vector["now"]),
        last_counter=vector["last_counter"],
    )
    assert notice.key_id == vector["key_id"]
    assert notice.counter == vector["counter"]
    assert notice.created_at == _at(vector["created_at"])
    assert notice.expiry == _at(vector["expiry"])
    assert sorted(notice.changes) == vector["changes"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector["name"])
def test_module_reaches_every_outcome(vector: dict[str, Any]) -> None:
    assert _outcome(vector) == vector["result"]


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_independent_device_builds_the_valid_vectors(vector: dict[str, Any]) -> None:
    wire = notice_device.make_notice(
        vector["key_id"],
        vector["secret"],
        vector["counter"],
        vector["created_at"],
        vector["expiry"],
        vector["changes"],
    )
    assert wire == vector["notice"].encode()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector["name"])
def test_independent_device_reaches_every_outcome(vector: dict[str, Any]) -> None:
    outcome = notice_device.check_notice(
        vector["notice"].encode(),
        vector["key_id"],
        vector["secret"],
        vector["now"],
        vector["last_counter"],
    )
    assert outcome == vector["result"]


def test_notice_fits_a_datagram_with_room_to_spare() -> None:
    longest = build_notice(
        key_id="K" * 32,
        secret_key=SECRET,
        changes=set(Change),
        counter=MAX_COUNTER,
        now=datetime(5000, 1, 1, tzinfo=UTC),
        lifetime=timedelta(seconds=300),
    )
    assert len(longest) < 200 < MAX_NOTICE_BYTES
    assert parse_notice(longest)[0].counter == MAX_COUNTER


def test_parse_returns_the_exact_signed_bytes() -> None:
    wire = build_notice(
        key_id=KEY_ID, secret_key=SECRET, changes=[Change.FIRMWARE], counter=5, now=NOW
    )
    notice, message, signature = parse_notice(wire)
    assert message + b"\n" + signature == wire
    assert message.startswith(NOTICE_LABEL.encode() + b"\n")
    assert notice.changes == {Change.FIRMWARE}
    # Whole seconds: a fraction of the build time is dropped, not rounded.
    later = build_notice(
        key_id=KEY_ID,
        secret_key=SECRET,
        changes=[Change.FIRMWARE],
        counter=5,
        now=NOW + timedelta(milliseconds=999),
    )
    assert later == wire


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"key_id": "bad key"}, "invalid key id"),
        ({"secret_key": "short"}, "invalid secret key"),
        ({"counter": 0}, "counter"),
        ({"counter": MAX_COUNTER + 1}, "counter"),
        ({"lifetime": timedelta(0)}, "lifetime"),
        ({"lifetime": timedelta(seconds=301)}, "lifetime"),
        ({"changes": []}, "at least one change"),
        ({"changes": ["reboot"]}, "reboot"),
    ],
)
def test_build_refuses_what_no_device_would_accept(
    overrides: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "key_id": KEY_ID,
        "secret_key": SECRET,
        "changes": [Change.CONFIG],
        "counter": 1,
        "now": NOW,
    } | overrides
    with pytest.raises(ValueError, match=message):
        build_notice(**arguments)


def test_errors_say_why_without_secrets() -> None:
    wire = build_notice(
        key_id=KEY_ID, secret_key=SECRET, changes=[Change.CONFIG], counter=9, now=NOW
    )
    arguments: dict[str, Any] = {"key_id": KEY_ID, "secret_key": SECRET, "now": NOW}
    with pytest.raises(NoticeReplayed, match="replayed counter 9, last accepted 9"):
        verify_notice(wire, last_counter=9, **arguments)
    with pytest.raises(NoticeReplayed, match="older counter 9, last accepted 10"):
        verify_notice(wire, last_counter=10, **arguments)
    with pytest.raises(NoticeExpired, match="expired at 2021-04-09T13:02:24Z"):
        verify_notice(
            wire,
            key_id=KEY_ID,
            secret_key=SECRET,
            now=NOW + timedelta(minutes=1),
            last_counter=0,
        )
    with pytest.raises(NoticeExpired, match="in the future, at 2021-04-09T13:01:24Z"):
        verify_notice(
            wire,
            key_id=KEY_ID,
            secret_key=SECRET,
            now=NOW - timedelta(seconds=301),
            last_counter=0,
        )
    with pytest.raises(NoticeBadSignature) as caught:
        verify_notice(
            wire,
            key_id=KEY_ID,
            secret_key="AnotherSecretKeyOf32Characters!!",
            now=NOW,
            last_counter=0,
        )
    assert SECRET not in str(caught.value)
    assert wire.rsplit(b"\n", 1)[1].decode() not in str(caught.value)
    with pytest.raises(NoticeForAnotherDevice, match="for device d8fa0180"):
        verify_notice(wire, key_id="other", secret_key=SECRET, now=NOW, last_counter=0)
    # A looser clock skew is the receiver's to choose.
    verify_notice(
        wire,
        key_id=KEY_ID,
        secret_key=SECRET,
        now=NOW - timedelta(seconds=400),
        last_counter=0,
        max_clock_skew=timedelta(seconds=500),
    )


def test_next_counter_only_goes_up() -> None:
    in_ms = int(NOW.timestamp() * 1000)
    assert next_counter(0, NOW) == in_ms
    assert next_counter(in_ms, NOW) == in_ms + 1
    # A clock that went back does not take the counter with it.
    assert next_counter(in_ms + 50, NOW - timedelta(hours=1)) == in_ms + 51
    assert next_counter(MAX_COUNTER, NOW) == MAX_COUNTER


def test_topic() -> None:
    assert notice_topic(KEY_ID) == "providore/d8fa0180/notify"


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_a_notice_signature_is_no_response_signature(vector: dict[str, Any]) -> None:
    """Read as a version 1 answer, a notice's last two lines would be its timestamps.

    They are its expiry in seconds and its changes, which never read as a time: no
    device that checks an answer's timestamps takes a notice's MAC for an answer's.
    """
    message: str = vector["message"]
    _body, created_at, expiry = message.rsplit("\n", 2)
    for value in (created_at, expiry):
        with pytest.raises(MalformedRequest):
            parse_timestamp(value)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", NOTICE_LABEL])
def test_a_notice_signature_is_no_request_signature(method: str) -> None:
    """A request message starts with its method in upper case, never with the label."""
    wire = build_notice(
        key_id=KEY_ID, secret_key=SECRET, changes=[Change.CONFIG], counter=1, now=NOW
    )
    lines = wire.decode().split("\n")
    # An attacker's best try: the notice's own lines in the places of a request's.
    request = SignedRequest(
        key_id=KEY_ID,
        signature=lines[6],
        firmware_version=lines[2],
        created_at_header=lines[3],
        expiry_header=lines[4],
        created_at=NOW,
        expiry=NOW + timedelta(minutes=1),
    )
    with pytest.raises(Unauthorized):
        verify_request(request, DeviceKey(SECRET), method, lines[1], lines[5].encode())
