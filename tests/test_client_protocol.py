"""The reference client's own protocol code reproduces the protocol's vectors, and its checks bite.

Deliberately imports nothing from the integration: the vectors come from
docs/protocol-vectors-v1.json through `vectors`, which imports no signer.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
import hashlib
import hmac
from typing import Any

import pytest

from providore_client.errors import ResponseRejected
from providore_client.protocol import (
    ResponseStamp,
    ResponseVerifier,
    format_time,
    is_valid_firmware_version,
    is_valid_key_id,
    is_valid_secret,
    parse_time,
    request_headers,
    request_message,
    response_message,
    verify_response,
)

from .vectors import REQUEST_VECTORS as REQUESTS, RESPONSE_VECTORS as RESPONSES

SECRET = "Zq3v9XkP2mRt7LwY4nHc8JdF6sGb1TaE"


def _body(vector: dict[str, Any]) -> bytes | None:
    return None if vector["body"] is None else vector["body"].encode()


def _stamp_headers(vector: dict[str, Any]) -> dict[str, str]:
    return {
        "created-at": vector["created_at"],
        "expiry": vector["expiry"],
        "signature": vector["signature"],
    }


def _during(vector: dict[str, Any]) -> datetime:
    """Return a moment inside the vector's validity window."""
    return parse_time(vector["created_at"]) + timedelta(minutes=1)


@pytest.mark.parametrize("vector", REQUESTS, ids=lambda v: f"{v['method']} {v['path']}")
def test_request_vectors(vector: dict[str, Any]) -> None:
    created = parse_time(vector["created_at"])
    message = request_message(
        vector["method"],
        vector["path"],
        vector["firmware_version"],
        vector["created_at"],
        vector["expiry"],
        _body(vector),
    )
    assert message == vector["message"].encode()

    headers = request_headers(
        key_id=vector["key_id"],
        secret=vector["secret_key"],
        method=vector["method"].lower(),
        path=vector["path"],
        firmware_version=vector["firmware_version"],
        now=created,
        body=_body(vector),
    )
    assert headers == {
        "Authorization": f'Hmac key-id="{vector["key_id"]}", signature="{vector["signature"]}"',
        "X-Firmware-Version": vector["firmware_version"],
        "Created-At": vector["created_at"],
        "Expiry": vector["expiry"],
    }


def test_get_ignores_a_body() -> None:
    """Only POST and PUT sign their body."""
    bare = request_message("GET", "/config", "1.0.0", "a", "b", None)
    assert request_message("GET", "/config", "1.0.0", "a", "b", b"x") == bare
    assert request_message("PUT", "/x", "1", "a", "b", None).endswith(b"\nb\n")


@pytest.mark.parametrize("vector", RESPONSES, ids=lambda v: v["signature"])
def test_response_vectors(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    assert (
        response_message(body, vector["created_at"], vector["expiry"])
        == vector["message"].encode()
    )
    verify_response(vector["secret_key"], body, _stamp_headers(vector), _during(vector))


@pytest.mark.parametrize("vector", RESPONSES, ids=lambda v: v["signature"])
def test_response_vectors_in_pieces(vector: dict[str, Any]) -> None:
    """The streaming verifier, used for firmware, agrees with the one-shot check."""
    verifier = ResponseVerifier(
        vector["secret_key"], ResponseStamp.from_headers(_stamp_headers(vector))
    )
    body = vector["body"].encode()
    for start in range(0, len(body), 7):
        verifier.update(body[start : start + 7])
    verifier.verify()


VECTOR = RESPONSES[0]


def _tamper(**changes: Any) -> tuple[bytes, dict[str, str]]:
    body = VECTOR["body"].encode()
    headers = _stamp_headers(VECTOR)
    if "body" in changes:
        body = changes.pop("body")
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return body, headers


@pytest.mark.parametrize(
    ("body", "headers", "secret", "reason"),
    [
        pytest.param(
            *_tamper(body=b"{}"), SECRET, "signature does not match", id="tampered-body"
        ),
        pytest.param(
            *_tamper(),
            "NotTheRightSecretKeyAtAll1234567",
            "signature does not match",
            id="wrong-secret",
        ),
        pytest.param(
            *_tamper(signature="AAAA"),
            SECRET,
            "signature does not match",
            id="wrong-signature",
        ),
        pytest.param(
            *_tamper(created_at="2021-04-09T13:01:26Z"),
            SECRET,
            "signature does not match",
            id="created-at-changed",
        ),
        pytest.param(
            *_tamper(signature="é"),
            SECRET,
            "signature does not match",
            id="non-ascii-signature",
        ),
    ],
)
def test_response_refused(
    body: bytes, headers: dict[str, str], secret: str, reason: str
) -> None:
    with pytest.raises(ResponseRejected, match=reason):
        verify_response(secret, body, headers, _during(VECTOR))


@pytest.mark.parametrize("missing", ["created-at", "expiry", "signature"])
def test_unsigned_response(missing: str) -> None:
    body, headers = _tamper()
    del headers[missing]
    with pytest.raises(ResponseRejected, match="not signed"):
        verify_response(SECRET, body, headers, _during(VECTOR))


CREATED = datetime(2021, 4, 9, 13, 1, 25, tzinfo=UTC)
EXPIRY = datetime(2021, 4, 9, 13, 16, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        pytest.param(EXPIRY, "expired", id="at-expiry"),
        pytest.param(EXPIRY + timedelta(days=1), "expired", id="day-later"),
        pytest.param(
            CREATED - timedelta(seconds=301), "in the future", id="created-301s-ahead"
        ),
    ],
)
def test_window_refused(now: datetime, reason: str) -> None:
    body, headers = _tamper()
    with pytest.raises(ResponseRejected, match=reason):
        verify_response(SECRET, body, headers, now)


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(EXPIRY - timedelta(seconds=1), id="last-second"),
        pytest.param(CREATED - timedelta(seconds=300), id="clock-300s-behind"),
    ],
)
def test_window_edges_accepted(now: datetime) -> None:
    body, headers = _tamper()
    verify_response(SECRET, body, headers, now)


@pytest.mark.parametrize(
    ("created_at", "expiry"),
    [
        pytest.param("2021-04-09T13:01:25Z", "2021-04-09T13:16:26Z", id="901s"),
        pytest.param("2021-04-09T13:01:25Z", "2021-04-09T13:01:24Z", id="negative"),
    ],
)
def test_window_shape_refused(created_at: str, expiry: str) -> None:
    stamp = ResponseStamp(created_at, expiry, "x")
    with pytest.raises(ResponseRejected, match="invalid validity window"):
        stamp.check_window(CREATED - timedelta(seconds=10))


# --- the original Providore server's answers: expiry equal to created-at --------

# Its times have no zone (UTC), and its expiry is its created-at.
ORIGINAL_TIME = "2021-04-09T13:01:25"


def _original_answer(body: bytes = b"{}") -> dict[str, str]:
    """Return the signing headers the original server gives `body`, signed independently."""
    message = body + f"\n{ORIGINAL_TIME}\n{ORIGINAL_TIME}".encode()
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    return {
        "created-at": ORIGINAL_TIME,
        "expiry": ORIGINAL_TIME,
        "signature": base64.b64encode(digest).decode(),
    }


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(CREATED - timedelta(seconds=10), id="clock-behind"),
        pytest.param(CREATED, id="at-creation"),
        pytest.param(CREATED + timedelta(minutes=1), id="a-minute-later"),
    ],
)
def test_expiry_at_creation_refused_by_default(now: datetime) -> None:
    """Strict by default, whatever the clock says, with an error that names the fault."""
    with pytest.raises(ResponseRejected) as err:
        verify_response(SECRET, b"{}", _original_answer(), now)
    assert str(err.value) == (
        "the answer's expiry equals its created-at (2021-04-09T13:01:25), so it expired "
        "when it was made: a known fault of the original Providore server "
        "(accept it with --accept-expiry-at-creation)"
    )


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(CREATED - timedelta(seconds=300), id="clock-300s-behind"),
        pytest.param(CREATED, id="at-creation"),
        pytest.param(EXPIRY - timedelta(seconds=1), id="last-second"),
    ],
)
def test_expiry_at_creation_accepted_for_15_minutes_when_asked(now: datetime) -> None:
    verify_response(
        SECRET, b"{}", _original_answer(), now, accept_expiry_at_creation=True
    )


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        pytest.param(EXPIRY, "the answer expired at 2021-04-09T13:16:25Z", id="15-minutes-later"),
        pytest.param(CREATED - timedelta(seconds=301), "in the future", id="created-301s-ahead"),
    ],
)  # fmt: skip
def test_expiry_at_creation_window_when_asked(now: datetime, reason: str) -> None:
    """Accepted answers get the window a correct server gives, not an endless one."""
    with pytest.raises(ResponseRejected, match=reason):
        verify_response(
            SECRET, b"{}", _original_answer(), now, accept_expiry_at_creation=True
        )


def test_expiry_at_creation_still_needs_the_signature() -> None:
    with pytest.raises(ResponseRejected, match="signature does not match"):
        verify_response(
            SECRET, b"{ }", _original_answer(), CREATED, accept_expiry_at_creation=True
        )


def test_only_equal_times_are_the_fault() -> None:
    """A window that is merely short, or negative, is not taken for the original's fault."""
    one_second = ResponseStamp(ORIGINAL_TIME, "2021-04-09T13:01:26", "x")
    one_second.check_window(CREATED)
    negative = ResponseStamp(ORIGINAL_TIME, "2021-04-09T13:01:24", "x")
    with pytest.raises(ResponseRejected, match="invalid validity window"):
        negative.check_window(
            CREATED - timedelta(seconds=10), accept_expiry_at_creation=True
        )


@pytest.mark.parametrize(
    "value",
    ["yesterday", "", "1617973285", "2021-13-45T00:00:00Z", "2021-04-09 13:01:25Z"],
)
def test_unreadable_time(value: str) -> None:
    with pytest.raises(ResponseRejected, match="unreadable time"):
        parse_time(value)


def test_times() -> None:
    assert parse_time("2021-04-09T23:01:25+10:00") == CREATED
    assert parse_time("2021-04-09T13:01:25") == CREATED
    assert parse_time("2021-04-09T13:01:25.5Z") == CREATED + timedelta(milliseconds=500)
    assert (
        format_time(parse_time("2021-04-09T23:01:25.9+10:00")) == "2021-04-09T13:01:25Z"
    )


def test_key_rules() -> None:
    assert is_valid_key_id("d8fa0180")
    assert is_valid_key_id("A_b-9" * 6 + "xy")
    assert not is_valid_key_id("")
    assert not is_valid_key_id("x" * 33)
    assert not is_valid_key_id("bad id")
    assert is_valid_secret(SECRET)
    assert is_valid_secret("!" * 16)
    assert not is_valid_secret("x" * 15)
    assert not is_valid_secret("x" * 33)
    assert not is_valid_secret("with a space here")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1.0.0", True),
        ("2024.6.1-beta+3", True),
        ("!", True),
        ("~" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("1.0 beta", False),
        ("1.0\t", False),
        ("1.0\x7f", False),
        ("1.0-\xff\xfe", False),
        ("1.0.\u0661", False),
    ],
)
def test_firmware_version_rule(value: str, valid: bool) -> None:
    """What the client reports is what the server accepts: 1 to 64 of 0x21 to 0x7E."""
    assert is_valid_firmware_version(value) is valid
