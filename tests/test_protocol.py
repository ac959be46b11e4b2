from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
import time
from typing import Any

from multidict import CIMultiDict
import pytest

from custom_components.providore import protocol
from custom_components.providore.protocol import (
    DeviceKey,
    MalformedRequest,
    PayloadTooLarge,
    ProtocolError,
    SignedRequest,
    Unauthorized,
    check_validity,
    format_timestamp,
    generate_key_id,
    generate_secret_key,
    is_valid_key_id,
    is_valid_secret_key,
    parse_authorization,
    parse_signed_request,
    parse_timestamp,
    request_message,
    response_headers,
    response_message,
    response_stamp,
    sign,
    verify_request,
)

from .vectors import REQUEST_VECTORS, RESPONSE_VECTORS

SECRET = "Zq3v9XkP2mRt7LwY4nHc8JdF6sGb1TaE"
NOW = datetime(2021, 4, 9, 13, 5, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
LIFETIME = timedelta(seconds=900)


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [
        f"{n}:{v['method']} {v['path']}" if v["kind"] == "request" else f"{n}:response"
        for n, v in enumerate(vectors)
    ]


def _body(vector: dict[str, Any]) -> bytes | None:
    body = vector["body"]
    return None if body is None else body.encode("utf-8")


def _flip(value: str) -> str:
    """Change the last character of value to a different ASCII character."""
    return value[:-1] + chr(ord(value[-1]) ^ 1)


def _headers(
    key_id: str,
    signature: str,
    version: str = "1.0.0",
    created_at: str = "2021-04-09T13:01:24Z",
    expiry: str = "2021-04-09T13:16:24Z",
) -> CIMultiDict[str]:
    # Lower-case names on purpose: the mapping, not the parser, handles case.
    return CIMultiDict(
        {
            "authorization": f"Hmac key-id={key_id}, signature={signature}",
            "x-firmware-version": version,
            "created-at": created_at,
            "expiry": expiry,
            "Content-Type": "application/json",
        }
    )


def _vector_request(vector: dict[str, Any], **overrides: str) -> SignedRequest:
    fields = {
        "version": vector["firmware_version"],
        "created_at": vector["created_at"],
        "expiry": vector["expiry"],
    }
    fields.update(overrides)
    return parse_signed_request(
        _headers(vector["key_id"], vector["signature"], **fields)
    )


def _request(
    created_at: datetime, expiry: datetime, signature: str = "c2ln"
) -> SignedRequest:
    return SignedRequest(
        key_id="d8fa0180",
        signature=signature,
        firmware_version="1.0.0",
        created_at_header=format_timestamp(created_at),
        expiry_header=format_timestamp(expiry),
        created_at=created_at,
        expiry=expiry,
    )


# --- vectors ---------------------------------------------------------------


@pytest.mark.parametrize("vector", REQUEST_VECTORS, ids=_ids(REQUEST_VECTORS))
def test_request_vector(vector: dict[str, Any]) -> None:
    request = _vector_request(vector)
    assert request.key_id == vector["key_id"]
    assert request.signature == vector["signature"]
    assert request.created_at_header == vector["created_at"]
    assert request.expiry_header == vector["expiry"]

    message = request_message(vector["method"], vector["path"], request, _body(vector))
    assert message == vector["message"].encode("utf-8")
    assert sign(vector["secret_key"], message) == vector["signature"]

    key = DeviceKey(vector["secret_key"])
    assert (
        verify_request(request, key, vector["method"], vector["path"], _body(vector))
        is key
    )
    assert key.sign(message) == vector["signature"]
    # The method is signed in upper case whatever case the caller passes.
    verify_request(
        request,
        key,
        vector["method"].lower(),
        vector["path"],
        _body(vector),
    )


@pytest.mark.parametrize("vector", REQUEST_VECTORS, ids=_ids(REQUEST_VECTORS))
@pytest.mark.parametrize(
    "change", ["method", "path", "version", "key", "signature", "created"]
)
def test_request_vector_rejects_one_byte_change(
    vector: dict[str, Any], change: str
) -> None:
    method, path, secret = vector["method"], vector["path"], vector["secret_key"]
    request = _vector_request(vector)
    if change == "method":
        method = _flip(method)
    elif change == "path":
        path = _flip(path)
    elif change == "version":
        request = _vector_request(vector, version=_flip(vector["firmware_version"]))
    elif change == "key":
        secret = _flip(secret)
    elif change == "signature":
        request = request._replace(signature=_flip(request.signature[:-1]) + "=")
    else:
        # Same instant, other spelling: the header is signed exactly as sent.
        request = _vector_request(
            vector, created_at=vector["created_at"].replace("Z", "+00:00")
        )
        assert request.created_at == parse_timestamp(vector["created_at"])
    with pytest.raises(Unauthorized) as err:
        verify_request(request, DeviceKey(secret), method, path, _body(vector))
    assert err.value.reason == "invalid signature"
    assert err.value.status == 401


@pytest.mark.parametrize(
    "vector", [v for v in REQUEST_VECTORS if v["body"]], ids=lambda v: v["path"]
)
def test_request_vector_rejects_body_change(vector: dict[str, Any]) -> None:
    request = _vector_request(vector)
    body = _body(vector)
    assert body is not None
    for changed in (body[:-1] + bytes([body[-1] ^ 1]), body + b"\n", body[:-1], b""):
        with pytest.raises(Unauthorized):
            verify_request(
                request,
                DeviceKey(vector["secret_key"]),
                vector["method"],
                vector["path"],
                changed,
            )


@pytest.mark.parametrize("vector", RESPONSE_VECTORS, ids=_ids(RESPONSE_VECTORS))
def test_response_vector(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    message = response_message(body, vector["created_at"], vector["expiry"])
    assert message == vector["message"].encode("utf-8")
    assert sign(vector["secret_key"], message) == vector["signature"]

    now = parse_timestamp(vector["created_at"])
    key = DeviceKey(vector["secret_key"])
    assert response_headers(key, body, now) == {
        "created-at": vector["created_at"],
        "expiry": vector["expiry"],
        "signature": vector["signature"],
    }
    # Sub-second precision is dropped, never rounded up.
    assert response_headers(key, body, now + timedelta(microseconds=999_999)) == (
        response_headers(key, body, now)
    )


def test_an_answer_is_signed_once_per_body_and_second() -> None:
    key = DeviceKey(SECRET)
    first = response_headers(key, b'{"a": 1}', NOW)
    # The same body within the same second: the headers already signed.
    assert response_headers(key, b'{"a": 1}', NOW + timedelta(milliseconds=500)) is (
        first
    )
    other_body = response_headers(key, b'{"a": 2}', NOW)
    next_second = response_headers(key, b'{"a": 1}', NOW + timedelta(seconds=1))
    other_key = response_headers(DeviceKey(SECRET[::-1]), b'{"a": 1}', NOW)
    for headers, body, secret in (
        (other_body, b'{"a": 2}', SECRET),
        (next_second, b'{"a": 1}', SECRET),
        (other_key, b'{"a": 1}', SECRET[::-1]),
    ):
        assert headers is not first
        message = response_message(body, headers["created-at"], headers["expiry"])
        assert headers["signature"] == sign(secret, message)
    assert next_second["created-at"] != first["created-at"]


def test_response_header_names_are_lower_case() -> None:
    headers = response_headers(DeviceKey(SECRET), b"x", NOW)
    assert list(headers) == ["created-at", "expiry", "signature"]
    assert protocol.RESPONSE_CREATED_AT == "created-at"
    assert protocol.RESPONSE_EXPIRY == "expiry"
    assert protocol.RESPONSE_SIGNATURE == "signature"
    assert timedelta(minutes=15) == protocol.RESPONSE_LIFETIME
    assert protocol.MAX_BODY_BYTES == 65536


# --- messages --------------------------------------------------------------


def test_request_message_post_and_put_always_add_body_line() -> None:
    request = _request(NOW, NOW + LIFETIME)
    head = b"\n".join(
        [b"1.0.0", request.created_at_header.encode(), request.expiry_header.encode()]
    )
    assert request_message("post", "/x", request, None) == b"POST\n/x\n" + head + b"\n"
    assert request_message("PUT", "/x", request, b"") == b"PUT\n/x\n" + head + b"\n"
    assert request_message("PUT", "/x", request, b"ab") == b"PUT\n/x\n" + head + b"\nab"
    assert request_message("GET", "/x", request, b"ignored") == b"GET\n/x\n" + head
    assert (
        request_message("DELETE", "/x", request, b"ignored") == b"DELETE\n/x\n" + head
    )


def test_request_message_reproduces_raw_header_bytes() -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape.
    raw_version = b"1.0-\xff\xfe-\xc3\xa9"
    version = raw_version.decode("utf-8", "surrogateescape")
    request = _request(NOW, NOW + LIFETIME)._replace(firmware_version=version)
    assert (
        request_message("GET", "/config", request, None).split(b"\n")[2] == raw_version
    )


def test_sign_is_padded_standard_base64() -> None:
    signature = sign(SECRET, b"")
    assert len(signature) == 44
    assert signature.endswith("=")
    assert (
        signature == "GmeofEzmO/gmr9QbfPR3EqVxecY9t9TSQlye11o0fqU="
    )  # openssl dgst -hmac
    assert sign(SECRET + "x", b"") != signature


# --- Authorization ---------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Hmac key-id=d8fa0180, signature=abc/+def=", ("d8fa0180", "abc/+def=")),
        ('Hmac key-id=d8fa0180, signature="abc/+def="', ("d8fa0180", "abc/+def=")),
        ('Hmac key-id="d8fa0180", signature="abc/+def=="', ("d8fa0180", "abc/+def==")),
        ("HMAC key-id=d8fa0180, signature=abc=", ("d8fa0180", "abc=")),
        ("hmac key-id=d8fa0180, signature=abc=", ("d8fa0180", "abc=")),
        ('Hmac signature="abc/+def=", key-id=d8fa0180', ("d8fa0180", "abc/+def=")),
        ("Hmac key-id=d8fa0180,signature=abc=", ("d8fa0180", "abc=")),
        ("Hmac   key-id=d8fa0180 ,    signature=abc=  ", ("d8fa0180", "abc=")),
        ("Hmac key-id=a_b-C, signature=x", ("a_b-C", "x")),
    ],
)
def test_parse_authorization(header: str, expected: tuple[str, str]) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "Bearer x",
        "Basic a2V5OnNlY3JldA==",
        "Hmac",
        "Hmac ",
        "Hmac key-id=d8fa0180",
        "Hmac signature=abc=",
        'Hmac key-id="", signature=abc=',
        "Hmac key-id=, signature=abc=",
        "Hmac key-id=d8fa0180, signature=abc=, signature=abc=",
        "Hmac key-id=a, KEY-ID=b, signature=abc=",
        'Hmac key-id=d8fa0180, signature="abc=',
        'Hmac key-id=d8fa0180, signature=abc="',
        "Hmac key-id=d8fa0180, signature=abc= junk",
        "Hmac key-id=d8fa0180, signature=abc=,",
        "Hmac key-id=d8fa0180,, signature=abc=",
        "Hmac key-id=d8fa0180 signature=abc=",
        "Hmackey-id=d8fa0180, signature=abc=",
        "Hmac key-id=d8fa0180; signature=abc=",
        "Hmac key-id=d8fa0180, signature=ab\u00e9=",
        "Hmac key-id=d8fa0180, signature=abc=\nX: y",
    ],
)
def test_parse_authorization_rejects(header: str) -> None:
    with pytest.raises(MalformedRequest) as err:
        parse_authorization(header)
    assert err.value.status == 400
    assert "abc" not in err.value.reason
    assert "d8fa0180" not in err.value.reason


@pytest.mark.parametrize(
    "header",
    [
        "Hmac " + " " * 8000 + "x\n",
        "Hmac " + " \t" * 4000 + "key-id=a " + " " * 100 + "\n",
        "Hmac key-id=a," + " " * 8000 + "signature",
        "Hmac " + "key-id=a-" * 900,
        "H" * 8000,
        " " * 8000 + "Hmac\n",
    ],
)
def test_parse_authorization_is_fast_on_hostile_input(header: str) -> None:
    # A backtracking pattern once took minutes on inputs like these.
    started = time.perf_counter()
    with pytest.raises(MalformedRequest):
        parse_authorization(header)
    assert time.perf_counter() - started < 0.5


def test_parse_authorization_reasons() -> None:
    with pytest.raises(MalformedRequest, match="^unsupported Authorization scheme$"):
        parse_authorization("Bearer x")
    with pytest.raises(
        MalformedRequest, match="^missing signature in Authorization header$"
    ):
        parse_authorization("Hmac key-id=a")
    with pytest.raises(
        MalformedRequest, match="^duplicate key-id in Authorization header$"
    ):
        parse_authorization("Hmac key-id=a, key-id=a, signature=b")


# --- timestamps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-04-09T13:01:24Z", datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)),
        ("2021-04-09t13:01:24z", datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)),
        (
            "2021-04-09T13:01:24.250Z",
            datetime(2021, 4, 9, 13, 1, 24, 250000, tzinfo=UTC),
        ),
        (
            "2021-04-09T13:01:24.123456789Z",
            datetime(2021, 4, 9, 13, 1, 24, 123456, tzinfo=UTC),
        ),
        ("2021-04-09T13:01:24+10:00", datetime(2021, 4, 9, 3, 1, 24, tzinfo=UTC)),
        ("2021-04-09T03:01:24-05:30", datetime(2021, 4, 9, 8, 31, 24, tzinfo=UTC)),
        ("2021-04-09T13:01:24+00:00", datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)),
        ("2021-04-09T13:01:24", datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)),
        ("2021-04-09 13:01:24", datetime(2021, 4, 9, 13, 1, 24, tzinfo=UTC)),
        ("2021-04-09T13:01", datetime(2021, 4, 9, 13, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(value: str, expected: datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert (parsed.hour, parsed.minute) == (expected.hour, expected.minute)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "2021-04-09",
        "13:01:24",
        "20210409T130124Z",
        "2021-04-09T13:01:24ZZ",
        "2021-04-09T13:01:24 Z",
        " 2021-04-09T13:01:24Z",
        "2021-13-09T13:01:24Z",
        "2021-04-09T25:01:24Z",
        "2021-04-09T13:01:60Z",
        "2021-04-09T13:01:24+24:00",
        "0001-01-01T00:00:00+10:00",
        "\u0662\u0660\u0662\u0661-04-09T13:01:24Z",
        "2021-04-09T13:01:2\uff14Z",
        "2021-04-09T13:01:24.\u0665Z",
    ],
)
def test_parse_timestamp_rejects(value: str) -> None:
    with pytest.raises(MalformedRequest, match="^invalid timestamp$"):
        parse_timestamp(value)


def test_format_timestamp() -> None:
    moment = datetime(
        2021, 4, 9, 23, 30, 5, 999_999, tzinfo=timezone(timedelta(hours=-2))
    )
    assert format_timestamp(moment) == "2021-04-10T01:30:05Z"
    assert len(format_timestamp(moment)) == 20
    assert (
        format_timestamp(datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC))
        == "0005-01-02T03:04:05Z"
    )
    assert parse_timestamp(format_timestamp(NOW)) == NOW
    with pytest.raises(ValueError, match="aware"):
        format_timestamp(datetime(2021, 4, 9, 13, 1, 24))  # noqa: DTZ001


# --- signed request headers ------------------------------------------------


def test_parse_signed_request_keeps_headers_as_sent() -> None:
    request = parse_signed_request(
        _headers(
            "d8fa0180",
            "abc=",
            version="v2.0-beta+5",
            created_at="2021-04-09T23:01:24.5+10:00",
            expiry="2021-04-09T13:16:24",
        )
    )
    assert request == SignedRequest(
        key_id="d8fa0180",
        signature="abc=",
        firmware_version="v2.0-beta+5",
        created_at_header="2021-04-09T23:01:24.5+10:00",
        expiry_header="2021-04-09T13:16:24",
        created_at=datetime(2021, 4, 9, 13, 1, 24, 500000, tzinfo=UTC),
        expiry=datetime(2021, 4, 9, 13, 16, 24, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "version",
    [
        "",
        " 1.0.0",
        "1.0.0 ",
        "1.0 beta",
        "1.0.0\t",
        "1.0.0-\udcff\udcfe",  # non-UTF-8 bytes, as aiohttp decodes them
        "1.0.0-é",
        "1.0.0\x7f",
        "v" * 65,
    ],
    ids=[
        "empty",
        "leading-space",
        "trailing-space",
        "inner-space",
        "tab",
        "non-utf8",
        "non-ascii",
        "delete",
        "too-long",
    ],
)
def test_firmware_version_must_be_short_printable_ascii(version: str) -> None:
    """A version that could not be stored or shown is refused before anything else."""
    with pytest.raises(MalformedRequest) as err:
        parse_signed_request(_headers("d8fa0180", "abc=", version=version))
    assert err.value.status == 400
    assert "X-Firmware-Version" in err.value.reason


def test_firmware_version_of_64_characters_is_accepted() -> None:
    version = "1.0.0-" + "x" * 58
    assert parse_signed_request(_headers("d8fa0180", "abc=", version=version)) == (
        parse_signed_request(_headers("d8fa0180", "abc=", version=version))
    )
    request = parse_signed_request(_headers("d8fa0180", "abc=", version=version))
    assert request.firmware_version == version


@pytest.mark.parametrize(
    "header", ["Authorization", "X-Firmware-Version", "Created-At", "Expiry"]
)
def test_parse_signed_request_missing_header(header: str) -> None:
    headers = _headers("d8fa0180", "abc=")
    del headers[header]
    with pytest.raises(MalformedRequest) as err:
        parse_signed_request(headers)
    assert err.value.reason == f"missing {header} header"


@pytest.mark.parametrize("header", ["Created-At", "Expiry"])
def test_parse_signed_request_bad_date(header: str) -> None:
    headers = _headers("d8fa0180", "abc=")
    headers[header] = "2021-04-09"
    with pytest.raises(MalformedRequest) as err:
        parse_signed_request(headers)
    assert err.value.reason == f"invalid {header} header"


def test_parse_signed_request_bad_authorization() -> None:
    headers = _headers("d8fa0180", "abc=")
    headers["Authorization"] = "Bearer abc="
    with pytest.raises(MalformedRequest, match="scheme"):
        parse_signed_request(headers)


# --- verification and validity ---------------------------------------------


def test_unknown_key_looks_like_wrong_signature() -> None:
    vector = REQUEST_VECTORS[0]
    request = _vector_request(vector)
    args = (vector["method"], vector["path"], _body(vector))
    with pytest.raises(ProtocolError) as unknown:
        verify_request(request, None, *args)
    with pytest.raises(ProtocolError) as wrong:
        verify_request(request, DeviceKey(_flip(SECRET)), *args)
    assert type(unknown.value) is type(wrong.value) is Unauthorized
    assert unknown.value.reason == wrong.value.reason == "invalid signature"
    assert str(unknown.value) == str(wrong.value)
    assert unknown.value.status == wrong.value.status == 401


def test_unknown_key_rejected_even_with_dummy_key_signature() -> None:
    request = _request(NOW, NOW + LIFETIME)
    dummy = protocol._DUMMY_SECRET
    signed = request._replace(
        signature=sign(dummy, request_message("GET", "/config", request, None))
    )
    verify_request(signed, DeviceKey(dummy), "GET", "/config", None)
    with pytest.raises(Unauthorized, match="^invalid signature$"):
        verify_request(signed, None, "GET", "/config", None)


def test_check_validity_accepts_normal_request() -> None:
    check_validity(
        _request(NOW - timedelta(seconds=10), NOW + timedelta(seconds=890)),
        NOW,
        SKEW,
        LIFETIME,
    )


@pytest.mark.parametrize(
    ("created", "expiry", "reason"),
    [
        (-900, 0, "request expired"),
        (-901, -1, "request expired"),
        (-10, -5, "request expired"),
        (301, 400, "created in the future"),
        (0, 901, "validity window too long"),
        (-1, 900, "validity window too long"),
        (-3600, 3600, "validity window too long"),
        (200, 100, "invalid validity window"),
    ],
)
def test_check_validity_rejects(created: int, expiry: int, reason: str) -> None:
    request = _request(
        NOW + timedelta(seconds=created), NOW + timedelta(seconds=expiry)
    )
    with pytest.raises(Unauthorized) as err:
        check_validity(request, NOW, SKEW, LIFETIME)
    assert err.value.reason == reason
    assert err.value.status == 401


@pytest.mark.parametrize(
    ("created", "expiry"),
    [
        (300, 400),  # skew exactly at the limit
        (0, 900),  # lifetime exactly at the limit
        (-899, 1),  # expires one second from now
        (10, 10),  # empty window, still in the future
    ],
)
def test_check_validity_boundaries_accepted(created: int, expiry: int) -> None:
    request = _request(
        NOW + timedelta(seconds=created), NOW + timedelta(seconds=expiry)
    )
    check_validity(request, NOW, SKEW, LIFETIME)


def test_check_validity_sub_second_boundaries() -> None:
    tick = timedelta(microseconds=1)
    with pytest.raises(Unauthorized, match="future"):
        check_validity(
            _request(NOW + SKEW + tick, NOW + SKEW + tick), NOW, SKEW, LIFETIME
        )
    with pytest.raises(Unauthorized, match="too long"):
        check_validity(_request(NOW, NOW + LIFETIME + tick), NOW, SKEW, LIFETIME)
    check_validity(_request(NOW - LIFETIME + tick, NOW + tick), NOW, SKEW, LIFETIME)


# --- keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("d8fa0180", True),
        ("a", True),
        ("A-Z_a-z_0-9", True),
        ("x" * 32, True),
        ("x" * 33, False),
        ("", False),
        ("d8fa 0180", False),
        ("d8fa0180\n", False),
        ("d8fa.0180", False),
        ("caf\u00e9", False),
        ("\u0661\u0662", False),
        ("key/id", False),
    ],
)
def test_is_valid_key_id(value: str, valid: bool) -> None:
    assert is_valid_key_id(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (SECRET, True),
        ("x" * 16, True),
        ("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", True),
        ("x" * 15, False),
        ("x" * 33, False),
        ("", False),
        ("x" * 15 + " ", False),
        ("x" * 15 + "\t", False),
        ("x" * 16 + "\n", False),
        ("x" * 15 + "\u00e9", False),
        ("x" * 15 + "\x7f", False),
    ],
)
def test_is_valid_secret_key(value: str, valid: bool) -> None:
    assert is_valid_secret_key(value) is valid


def test_generated_keys() -> None:
    key_ids = {generate_key_id() for _ in range(20)}
    secrets = {generate_secret_key() for _ in range(20)}
    assert len(key_ids) == 20
    assert len(secrets) == 20
    for key_id in key_ids:
        assert is_valid_key_id(key_id)
        assert len(key_id) == 8
        assert set(key_id) <= set("0123456789abcdef")
    for secret in secrets:
        assert is_valid_secret_key(secret)
        assert len(secret) == 32
        assert secret.isascii()
        assert secret.isalnum()


# --- secrecy of error texts ----------------------------------------------------


def test_errors_never_contain_secret_or_signature() -> None:
    secret = "S3cr3tK3yS3cr3tK3y"
    signature = sign(secret, b"message")
    request = _request(NOW, NOW + LIFETIME, signature=signature)
    errors: list[ProtocolError] = []
    attempts: list[Callable[[], object]] = [
        lambda: verify_request(request, DeviceKey(secret), "GET", "/config", None),
        lambda: verify_request(request, None, "GET", "/config", None),
        lambda: parse_authorization(
            f"Hmac key-id={secret}, signature={signature} junk"
        ),
        lambda: parse_authorization(
            f"Hmac key-id={secret}, signature={signature}, signature={signature}"
        ),
        lambda: parse_authorization(f"{secret} key-id=a, signature={signature}"),
        lambda: parse_authorization(f'Hmac key-id={secret}, signature="{signature}'),
        lambda: parse_timestamp(secret),
        lambda: parse_signed_request(
            _headers(secret, signature, created_at=secret, expiry=signature)
        ),
        lambda: check_validity(
            _request(NOW - timedelta(hours=1), NOW - timedelta(minutes=50), signature),
            NOW,
            SKEW,
            LIFETIME,
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ProtocolError) as err:
            attempt()
        errors.append(err.value)
    assert len(errors) == len(attempts)
    for error in errors:
        for text in (error.reason, str(error), repr(error)):
            assert secret not in text
            assert signature not in text
            assert signature[:12] not in text


def test_error_statuses() -> None:
    assert ProtocolError("x").reason == "x"
    assert MalformedRequest("x").status == 400
    assert Unauthorized("x").status == 401
    assert PayloadTooLarge("too large").status == 413
    assert PayloadTooLarge("too large").reason == "too large"
    assert issubclass(PayloadTooLarge, ProtocolError)


def test_response_stamps_are_formatted_once_a_second() -> None:
    first = response_stamp(NOW)
    assert response_stamp(NOW + timedelta(milliseconds=999)) is first
    later = response_stamp(NOW + timedelta(seconds=1))
    assert later is not first
    assert later.created_at == "2021-04-09T13:05:01Z"
    assert later.expiry == "2021-04-09T13:20:01Z"
