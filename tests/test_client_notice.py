"""The reference client's notice code reproduces the vectors; imports nothing from the integration."""

from __future__ import annotations

from datetime import UTC, datetime
import json
from pathlib import Path
from typing import Any

import pytest

from providore_client.errors import ResponseRejected
from providore_client.notice import (
    Change,
    ExpiredNotice,
    ForgedNotice,
    MalformedNotice,
    NoticeForAnotherDevice,
    NoticeIgnored,
    ReplayedNotice,
    notice_topic,
    read_notice,
    verify_notice,
)
from providore_client.protocol import verify_response

VECTORS_PATH = Path(__file__).parents[1] / "docs" / "protocol-notice-vectors-v1.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))[
    "vectors"
]
VALID = [vector for vector in VECTORS if vector["result"] == "accepted"]
KINDS: dict[type[NoticeIgnored], str] = {
    MalformedNotice: "malformed",
    NoticeForAnotherDevice: "another-device",
    ForgedNotice: "bad-signature",
    ExpiredNotice: "expired",
    ReplayedNotice: "replayed",
}


def _verify(vector: dict[str, Any]) -> Any:
    return verify_notice(
        vector["notice"].encode(),
        device_id=vector["key_id"],
        secret=vector["secret"],
        now=datetime.fromtimestamp(vector["now"], UTC),
        last_counter=vector["last_counter"],
    )


@pytest.mark.parametrize(
    "vector",
    [vector for vector in VECTORS if vector["result"] != "accepted"],
    ids=lambda vector: vector["name"],
)
def test_refused_vectors(vector: dict[str, Any]) -> None:
    expected = next(kind for kind, name in KINDS.items() if name == vector["result"])
    with pytest.raises(NoticeIgnored) as caught:
        _verify(vector)
    assert type(caught.value) is expected


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_accepted_vectors(vector: dict[str, Any]) -> None:
    notice = _verify(vector)
    assert notice.device_id == vector["key_id"]
    assert notice.counter == vector["counter"]
    assert (notice.created_at, notice.expiry) == (
        vector["created_at"],
        vector["expiry"],
    )
    assert notice.changes == {Change(change) for change in vector["changes"]}


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_signed_bytes_are_the_message(vector: dict[str, Any]) -> None:
    _notice, signed, signature = read_notice(vector["notice"].encode())
    assert signed == vector["message"].encode()
    assert signature == vector["signature"].encode()


def test_messages_name_the_reason() -> None:
    vector = VALID[0]
    late = vector | {"now": vector["expiry"] + 5}
    with pytest.raises(
        ExpiredNotice, match=r"expired 5 s ago \(is this clock right\?\)"
    ):
        _verify(late)
    early = vector | {"now": vector["created_at"] - 400}
    with pytest.raises(ExpiredNotice, match="made 400 s in the future"):
        _verify(early)
    again = vector | {"last_counter": vector["counter"]}
    with pytest.raises(ReplayedNotice, match="counter 1 is not above 1"):
        _verify(again)
    with pytest.raises(MalformedNotice, match="600 bytes, more than 512"):
        read_notice(b"x" * 600)


@pytest.mark.parametrize("vector", VALID, ids=lambda vector: vector["name"])
def test_a_notice_is_never_an_answer(vector: dict[str, Any]) -> None:
    """The client's answer check refuses a notice's MAC presented as an answer's.

    The MAC does match the notice's bytes read as body, created-at and expiry: only
    the timestamps' form stops it, and they can never have that form.
    """
    body, created_at, expiry = vector["message"].encode().rsplit(b"\n", 2)
    headers = {
        "created-at": created_at.decode(),
        "expiry": expiry.decode(),
        "signature": vector["signature"],
    }
    with pytest.raises(ResponseRejected, match="unreadable time"):
        verify_response(
            vector["secret"], body, headers, datetime.fromtimestamp(vector["now"], UTC)
        )


def test_topic() -> None:
    assert notice_topic("garden-1") == "providore/garden-1/notify"
