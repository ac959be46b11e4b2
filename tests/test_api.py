"""End-to-end tests of the device HTTP API, through Home Assistant's real HTTP stack.

Requests are signed with the independent signer in `device.py`, sent with the
aiohttp test client to `hass.http.app`, and answered by the integration's views.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from http import HTTPStatus
import json
import logging
from pathlib import Path
import re
from typing import Any
from unittest.mock import patch

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs.issue_handler import (
    async_process_repairs_platforms,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.json import json_bytes
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN
from custom_components.providore.device_auth import (
    AuthenticatedRequest,
    signed_response,
)
from custom_components.providore.request_guards import (
    DATA_GUARDS,
    MAX_SIGNATURES_PER_KEY,
    RequestGuards,
)
from custom_components.providore.views import SignedView

from .conftest import KEY_ID, SECRET_KEY, loaded_runtime
from .device import BASE, hmac_b64, response_is_signed, signed_headers

DOCUMENT: dict[str, Any] = {
    "interval": 60,
    "mqtt": {"host": "broker.local", "port": 8883},
    "labels": ["garden", "east"],
}
DOCUMENT_V2: dict[str, Any] = {"interval": 30, "features": {"ota": True}}

ECHO_PATH = "/test/echo"
MAX_BODY = 64 * 1024
WRONG_SECRET = "NotTheRightSecretKeyAtAll1234567"
UNKNOWN_KEY_ID = "0badc0de"
FROZEN_NOW = "2025-06-01T12:00:00+00:00"

TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SIGNATURE_RE = re.compile(r'signature="?([^",\s]+)')
MAX_MESSAGE_LENGTH = 64

SENSOR_LAST_SEEN = "sensor.garden_sensor_last_seen"
SENSOR_FIRMWARE = "sensor.garden_sensor_firmware_version"
SENSOR_ADDRESS = "sensor.garden_sensor_address"
BINARY_SENSOR_CONNECTIVITY = "binary_sensor.garden_sensor_connectivity"

type Headers = dict[str, str]


class EchoView(SignedView):
    """A test-only POST endpoint: answers with the signed request body."""

    url = f"{BASE}{ECHO_PATH}"
    name = "api:providore:test:echo"

    async def post(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, then echo."""
        return await self._serve(request)

    async def respond(self, device: AuthenticatedRequest) -> web.StreamResponse:
        """Return the request body, signed."""
        return signed_response(device, device.body or b"", "text/plain")


# --- helpers -------------------------------------------------------------------


def _now() -> datetime:
    return dt_util.utcnow()


def _signature(headers: Mapping[str, str]) -> str:
    match = SIGNATURE_RE.search(headers["Authorization"])
    assert match is not None
    return match.group(1)


async def _get_config(client: TestClient, headers: Headers) -> ClientResponse:
    return await client.get(f"{BASE}/config", headers=headers)


async def _post_echo(
    client: TestClient, body: bytes, headers: Headers | None = None
) -> ClientResponse:
    if headers is None:
        headers = signed_headers("POST", ECHO_PATH, body=body)
    return await client.post(f"{BASE}{ECHO_PATH}", data=body, headers=headers)


async def _assert_signed_ok(resp: ClientResponse) -> bytes:
    """Check a 200 answer is signed as the protocol wants; return its body."""
    assert resp.status == HTTPStatus.OK
    assert "Date" in resp.headers
    body = await resp.read()
    assert response_is_signed(body, resp.headers)
    return body


async def _assert_refused(
    resp: ClientResponse, status: int, sent: Mapping[str, str] | None = None
) -> str:
    """Check an error answer: status, Date, unsigned, short message without secrets."""
    assert resp.status == status
    assert "Date" in resp.headers
    for name in ("created-at", "expiry", "signature"):
        assert name not in resp.headers
    text = (await resp.read()).decode()
    message = json.loads(text)["message"]
    assert isinstance(message, str)
    assert 0 < len(message) <= MAX_MESSAGE_LENGTH
    assert SECRET_KEY not in text
    assert KEY_ID not in text
    if (
        sent is not None
        and "Authorization" in sent
        and (match := SIGNATURE_RE.search(sent["Authorization"])) is not None
    ):
        assert match.group(1) not in text
    return message


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
async def document(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> dict[str, Any]:
    """Give the device a default configuration document."""
    await loaded_runtime(hass).async_set_config(KEY_ID, DOCUMENT)
    return DOCUMENT


@pytest.fixture
async def client(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    document: dict[str, Any],
) -> TestClient:
    """Return a client for the device API of a set-up hub with a document.

    The test-only POST endpoint is registered first: the test server's router
    takes no new routes once a client has started it.
    """
    hass.http.register_view(EchoView())
    return await hass_client_no_auth()


@pytest.fixture
async def behind_proxy(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> MockConfigEntry:
    """Set up http to trust X-Forwarded-For from 127.0.0.1, then the hub."""
    assert await async_setup_component(
        hass,
        "http",
        {"http": {"use_x_forwarded_for": True, "trusted_proxies": ["127.0.0.1"]}},
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await loaded_runtime(hass).async_set_config(KEY_ID, DOCUMENT)
    return mock_config_entry


# --- 1. success ----------------------------------------------------------------


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "bare"])
async def test_config_success(client: TestClient, quoted: bool) -> None:
    """A signed GET /config returns the document, signed, with lower-case headers."""
    before = _now().replace(microsecond=0)
    resp = await _get_config(client, signed_headers("GET", "/config", quoted=quoted))
    after = _now()

    body = await _assert_signed_ok(resp)
    assert resp.content_type == "application/json"
    assert json.loads(body) == DOCUMENT
    assert not response_is_signed(body, resp.headers, secret=WRONG_SECRET)

    created_at, expiry = resp.headers["created-at"], resp.headers["expiry"]
    for value in (created_at, expiry):
        assert len(value) == 20
        assert TIMESTAMP_RE.fullmatch(value)
    created = dt_util.parse_datetime(created_at)
    expires = dt_util.parse_datetime(expiry)
    assert created is not None
    assert expires is not None
    assert before <= created <= after
    assert expires - created == timedelta(minutes=15)

    # Header names exactly as the firmware compares them, on the wire.
    names = [name for name, _ in resp.raw_headers]
    lowered = [name.lower() for name in names]
    for name in (b"created-at", b"expiry", b"signature"):
        assert lowered.count(name) == 1
        assert name in names
    assert b"date" in lowered


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param('hmac key-id="{key_id}", signature="{signature}"', id="lower"),
        pytest.param('HMAC key-id="{key_id}", signature="{signature}"', id="upper"),
        pytest.param('Hmac signature="{signature}", key-id="{key_id}"', id="reordered"),
        pytest.param('Hmac key-id="{key_id}",signature="{signature}"', id="no-space"),
        pytest.param('Hmac key-id={key_id}, signature="{signature}"', id="mixed"),
        pytest.param("hmac key-id={key_id}, signature={signature}", id="bare-lower"),
    ],
)
async def test_authorization_styles(client: TestClient, authorization: str) -> None:
    """The scheme in any case, parameters in any order, quoted or bare, all work."""
    headers = signed_headers("GET", "/config")
    headers["Authorization"] = authorization.format(
        key_id=KEY_ID, signature=_signature(headers)
    )
    body = await _assert_signed_ok(await _get_config(client, headers))
    assert json.loads(body) == DOCUMENT


# --- 2. documents --------------------------------------------------------------


async def test_version_specific_document(
    hass: HomeAssistant, client: TestClient
) -> None:
    """A document set for 2.0.0 goes to 2.0.0 only; other versions get the default."""
    await hass.services.async_call(
        DOMAIN,
        "set_config",
        {"key_id": KEY_ID, "config": DOCUMENT_V2, "firmware_version": "2.0.0"},
        blocking=True,
    )

    resp = await _get_config(
        client, signed_headers("GET", "/config", firmware_version="2.0.0")
    )
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT_V2

    resp = await _get_config(
        client, signed_headers("GET", "/config", firmware_version="1.0.0")
    )
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT


async def test_no_document(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """A device without a document gets an unsigned 404."""
    client = await hass_client_no_auth()
    headers = signed_headers("GET", "/config")
    await _assert_refused(await _get_config(client, headers), 404, headers)

    # A document only for another version is not a default.
    await loaded_runtime(hass).async_set_config(KEY_ID, DOCUMENT_V2, "2.0.0")
    headers = signed_headers("GET", "/config", firmware_version="1.0.0")
    await _assert_refused(await _get_config(client, headers), 404, headers)


# --- 3. rejection rules --------------------------------------------------------


def _without(name: str) -> Callable[[Headers], Headers]:
    return lambda headers: {k: v for k, v in headers.items() if k != name}


def _replace(name: str, value: str) -> Callable[[Headers], Headers]:
    return lambda headers: {**headers, name: value}


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_without("Authorization"), id="missing-authorization"),
        pytest.param(_replace("Authorization", "Bearer abc.def.ghi"), id="bearer"),
        pytest.param(
            _replace("Authorization", "Basic ZGV2aWNlOnNlY3JldA=="), id="basic"
        ),
        pytest.param(_replace("Authorization", "Hmac"), id="scheme-only"),
        pytest.param(_replace("Authorization", "garbage!"), id="garbage"),
        pytest.param(
            _replace("Authorization", f'Hmac key-id="{KEY_ID}"'), id="no-signature"
        ),
        pytest.param(
            _replace("Authorization", 'Hmac signature="c2lnbmF0dXJl"'), id="no-key-id"
        ),
        pytest.param(
            _replace("Authorization", f'Hmac key-id="{KEY_ID}" signature="abc"'),
            id="no-comma",
        ),
        pytest.param(
            _replace("Authorization", f'Hmac key-id="{KEY_ID}", signature="abc'),
            id="unterminated-quote",
        ),
        pytest.param(
            _replace("Authorization", f'Hmac key-id="{KEY_ID}", signature=""'),
            id="empty-signature",
        ),
        pytest.param(_without("X-Firmware-Version"), id="missing-firmware-version"),
        pytest.param(_without("Created-At"), id="missing-created-at"),
        pytest.param(_without("Expiry"), id="missing-expiry"),
        pytest.param(_replace("Created-At", "yesterday"), id="created-at-words"),
        pytest.param(_replace("Created-At", "1712667684"), id="created-at-epoch"),
        pytest.param(
            _replace("Expiry", "2025-13-45T00:00:00Z"), id="expiry-impossible-date"
        ),
        pytest.param(_replace("Expiry", ""), id="expiry-empty"),
    ],
)
async def test_malformed_request(
    client: TestClient, mutate: Callable[[Headers], Headers]
) -> None:
    """Missing or unparsable authentication headers get 400."""
    headers = mutate(signed_headers("GET", "/config"))
    await _assert_refused(await _get_config(client, headers), 400, headers)


def _expired(now: datetime) -> Headers:
    return signed_headers("GET", "/config", created=now - timedelta(minutes=20))


def _window_too_long(now: datetime) -> Headers:
    return signed_headers(
        "GET", "/config", created=now, lifetime=timedelta(seconds=901)
    )


def _expiry_before_created(now: datetime) -> Headers:
    return signed_headers(
        "GET",
        "/config",
        created=now + timedelta(seconds=60),
        lifetime=timedelta(seconds=-30),
    )


def _created_far_ahead(now: datetime) -> Headers:
    return signed_headers("GET", "/config", created=now + timedelta(minutes=10))


def _tampered_path(now: datetime) -> Headers:
    return signed_headers("GET", "/firmware", created=now)


def _tampered_method(now: datetime) -> Headers:
    return signed_headers("POST", "/config", created=now)


def _tampered_version(now: datetime) -> Headers:
    return {
        **signed_headers("GET", "/config", created=now),
        "X-Firmware-Version": "9.9.9",
    }


def _wrong_secret(now: datetime) -> Headers:
    return signed_headers("GET", "/config", created=now, secret=WRONG_SECRET)


def _unknown_key_id(now: datetime) -> Headers:
    return signed_headers("GET", "/config", created=now, key_id=UNKNOWN_KEY_ID)


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(_expired, id="expired"),
        pytest.param(_window_too_long, id="window-901s"),
        pytest.param(_expiry_before_created, id="expiry-before-created"),
        pytest.param(_created_far_ahead, id="created-10min-ahead"),
        pytest.param(_tampered_path, id="signed-for-firmware"),
        pytest.param(_tampered_method, id="signed-for-post"),
        pytest.param(_tampered_version, id="firmware-version-changed"),
        pytest.param(_wrong_secret, id="wrong-signature"),
        pytest.param(_unknown_key_id, id="unknown-key-id"),
    ],
)
async def test_unauthorized_request(
    client: TestClient, make_headers: Callable[[datetime], Headers]
) -> None:
    """Bad signatures and validity windows get 401."""
    headers = make_headers(_now())
    await _assert_refused(await _get_config(client, headers), 401, headers)


async def test_unknown_key_id_looks_like_wrong_signature(client: TestClient) -> None:
    """No answer tells whether a key id exists."""
    now = _now()
    unknown = await _get_config(client, _unknown_key_id(now))
    wrong = await _get_config(client, _wrong_secret(now))
    assert unknown.status == wrong.status == 401
    assert await unknown.read() == await wrong.read()
    assert unknown.content_type == wrong.content_type
    assert {name.lower() for name, _ in unknown.raw_headers} == {
        name.lower() for name, _ in wrong.raw_headers
    }

    # Also when the request is refused for another reason first.
    known_expired = await _get_config(client, _expired(now))
    unknown_expired = await _get_config(
        client,
        signed_headers(
            "GET", "/config", key_id=UNKNOWN_KEY_ID, created=now - timedelta(hours=1)
        ),
    )
    assert known_expired.status == unknown_expired.status == 401
    assert await known_expired.read() == await unknown_expired.read()


@pytest.mark.parametrize(
    ("ahead", "status"),
    [(0, 200), (299, 200), (300, 200), (301, 401), (900, 401)],
)
async def test_created_at_clock_skew(
    client: TestClient, freezer: FrozenDateTimeFactory, ahead: int, status: int
) -> None:
    """Created-At may be up to 300 s ahead of the server's clock."""
    freezer.move_to(FROZEN_NOW)
    headers = signed_headers(
        "GET", "/config", created=_now() + timedelta(seconds=ahead)
    )
    resp = await _get_config(client, headers)
    if status == 200:
        await _assert_signed_ok(resp)
    else:
        await _assert_refused(resp, status, headers)


@pytest.mark.parametrize(
    ("lifetime", "status"),
    [(1, 200), (899, 200), (900, 200), (901, 401), (3600, 401)],
)
async def test_validity_window(
    client: TestClient, freezer: FrozenDateTimeFactory, lifetime: int, status: int
) -> None:
    """Expiry - Created-At may be at most 900 s."""
    freezer.move_to(FROZEN_NOW)
    headers = signed_headers(
        "GET", "/config", created=_now(), lifetime=timedelta(seconds=lifetime)
    )
    resp = await _get_config(client, headers)
    if status == 200:
        await _assert_signed_ok(resp)
    else:
        await _assert_refused(resp, status, headers)


async def test_expiry_boundary(
    client: TestClient, freezer: FrozenDateTimeFactory
) -> None:
    """A request is refused from its Expiry on."""
    freezer.move_to(FROZEN_NOW)
    created = _now()
    headers = signed_headers(
        "GET", "/config", created=created, lifetime=timedelta(seconds=60)
    )
    freezer.tick(timedelta(seconds=59))
    await _assert_signed_ok(await _get_config(client, headers))
    freezer.tick(timedelta(seconds=1))
    await _assert_refused(await _get_config(client, headers), 401, headers)


# --- 4. POST rules -------------------------------------------------------------


async def test_post_echo(client: TestClient) -> None:
    """A signed POST is accepted and its body reaches the endpoint."""
    body = b'{"hello": "world", "bytes": "\xff\x00"}'
    resp = await _post_echo(client, body)
    assert await _assert_signed_ok(resp) == body
    assert resp.content_type == "text/plain"


async def test_post_empty_body(client: TestClient) -> None:
    """A POST with an empty body signs an empty last line."""
    assert await _assert_signed_ok(await _post_echo(client, b"")) == b""


async def test_post_body_changed(client: TestClient) -> None:
    """A body changed after signing gets 401."""
    headers = signed_headers("POST", ECHO_PATH, body=b"temperature=21")
    resp = await _post_echo(client, b"temperature=99", headers)
    await _assert_refused(resp, 401, headers)


async def test_post_replay(client: TestClient) -> None:
    """The same signed POST is accepted once; the copy gets 401."""
    body = b"only once"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body
    await _assert_refused(await _post_echo(client, body, headers), 401, headers)

    # A fresh signature over the same body is a new request.
    fresh = signed_headers(
        "POST", ECHO_PATH, body=body, created=_now() + timedelta(seconds=1)
    )
    assert await _assert_signed_ok(await _post_echo(client, body, fresh)) == body


async def test_post_refused_is_not_remembered(client: TestClient) -> None:
    """A POST refused for its body is not counted as used."""
    body = b"payload"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    await _assert_refused(await _post_echo(client, b"other", headers), 401)
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body


async def test_post_body_size_limit(client: TestClient) -> None:
    """A body of exactly 64 KiB is accepted; one byte more gets 413."""
    body = bytes(range(256)) * (MAX_BODY // 256)
    assert len(body) == MAX_BODY
    assert await _assert_signed_ok(await _post_echo(client, body)) == body

    too_big = body + b"!"
    headers = signed_headers("POST", ECHO_PATH, body=too_big)
    await _assert_refused(await _post_echo(client, too_big, headers), 413, headers)


async def _chunks(body: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413), (MAX_BODY, 413)])
async def test_post_chunked_body_size_limit(
    client: TestClient, extra: int, status: int
) -> None:
    """The limit holds for a chunked body, which announces no Content-Length."""
    body = b"x" * (MAX_BODY + extra)
    headers = signed_headers("POST", ECHO_PATH, body=body)
    resp = await client.post(f"{BASE}{ECHO_PATH}", data=_chunks(body), headers=headers)
    if status == 200:
        assert await _assert_signed_ok(resp) == body
    else:
        await _assert_refused(resp, status, headers)


async def test_reload_does_not_reopen_replay_window(
    hass: HomeAssistant, init_integration: MockConfigEntry, client: TestClient
) -> None:
    """Accepted POST signatures outlive a reload of the entry."""
    body = b"reload me"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body

    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED

    await _assert_refused(await _post_echo(client, body, headers), 401, headers)


async def test_restart_does_not_reopen_replay_window(
    hass: HomeAssistant,
    client: TestClient,
    config_dir: Path,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Accepted POST signatures are on disk before the answer, and refused after a restart."""
    body = b"restart me"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body
    # Written (and synced) before the device got its answer: no delay to wait out.
    log = config_dir / DOMAIN / "replay.jsonl"
    assert _signature(headers) in log.read_text()

    # What async_setup does when Home Assistant starts again.
    restarted = RequestGuards(hass)
    await restarted.async_load()
    hass.data[DATA_GUARDS] = restarted
    assert len(restarted.replay) == 1
    await _assert_refused(await _post_echo(client, body, headers), 401, headers)

    # Once the request has expired, a restart forgets its signature.
    freezer.tick(timedelta(minutes=16))
    later = RequestGuards(hass)
    await later.async_load()
    assert len(later.replay) == 0
    assert log.read_text() == ""


async def test_signatures_saved_by_earlier_versions_are_kept(
    hass: HomeAssistant, client: TestClient, hass_storage: dict[str, Any]
) -> None:
    body = b"from before the upgrade"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    hass_storage[f"{DOMAIN}.replay"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.replay",
        "data": {_signature(headers): (_now() + timedelta(minutes=10)).isoformat()},
    }
    restarted = RequestGuards(hass)
    await restarted.async_load()
    hass.data[DATA_GUARDS] = restarted
    await _assert_refused(await _post_echo(client, body, headers), 401, headers)
    assert f"{DOMAIN}.replay" not in hass_storage


async def test_replay_cache_is_bounded_per_key(
    hass: HomeAssistant, client: TestClient, config_dir: Path
) -> None:
    """A key cannot grow the cache without bound: past the limit it is asked to wait."""
    for number in range(MAX_SIGNATURES_PER_KEY):
        body = f"request {number}".encode()
        assert await _assert_signed_ok(await _post_echo(client, body)) == body
    body = b"one too many"
    resp = await _post_echo(client, body)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert len(hass.data[DATA_GUARDS].replay) == MAX_SIGNATURES_PER_KEY
    # Each POST added one line to the log; none rewrote the whole cache.
    log = config_dir / DOMAIN / "replay.jsonl"
    assert len(log.read_text().splitlines()) == MAX_SIGNATURES_PER_KEY


async def test_a_post_that_cannot_be_recorded_is_not_served(
    hass: HomeAssistant, client: TestClient
) -> None:
    body = b"disk full"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    with patch(
        "custom_components.providore.request_guards.append_entry",
        side_effect=OSError(28, "No space left on device"),
    ):
        resp = await _post_echo(client, body, headers)
    assert resp.status == 503
    assert "signature" not in resp.headers
    # Not remembered either: the same request is served once the disk takes it.
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body


# --- 5. throttling -------------------------------------------------------------


def _providore_issues(issue_registry: ir.IssueRegistry) -> list[ir.IssueEntry]:
    return [
        issue
        for (domain, _), issue in issue_registry.issues.items()
        if domain == DOMAIN
    ]


async def _fail_ten_times(
    client: TestClient,
    created: datetime,
    extra: Headers | None = None,
    key_id: str = KEY_ID,
) -> None:
    for _ in range(10):
        headers = {
            **signed_headers(
                "GET", "/config", created=created, key_id=key_id, secret=WRONG_SECRET
            ),
            **(extra or {}),
        }
        await _assert_refused(await _get_config(client, headers), 401, headers)


def _throttled_issue(issue_registry: ir.IssueRegistry) -> ir.IssueEntry:
    (issue,) = _providore_issues(issue_registry)
    assert issue.issue_id == "address_throttled"
    return issue


async def test_throttling(
    hass: HomeAssistant,
    client: TestClient,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
) -> None:
    """After 10 failures an address's bad requests get 429 until the window has passed."""
    freezer.move_to(FROZEN_NOW)
    start = _now()
    assert _providore_issues(issue_registry) == []
    await _fail_ten_times(client, start)

    resp = await _get_config(client, _wrong_secret(start))
    await _assert_refused(resp, 429)
    retry_after = resp.headers["Retry-After"]
    assert retry_after.isdigit()
    assert 0 < int(retry_after) <= 300

    # A correctly signed request is never throttled: the device is not locked out.
    resp = await _get_config(client, signed_headers("GET", "/config", created=start))
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT

    # The user hears of it once: one repair issue.
    issue = _throttled_issue(issue_registry)
    assert issue.translation_key == "address_throttled"
    assert issue.translation_placeholders == {
        "addresses": "127.0.0.1",
        "count": "1",
        "key_id": KEY_ID,
    }
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.WARNING

    # Refused requests while throttled neither add issues nor extend the block.
    for _ in range(5):
        await _assert_refused(await _get_config(client, _wrong_secret(_now())), 429)
    assert len(_providore_issues(issue_registry)) == 1

    freezer.tick(timedelta(minutes=4, seconds=59))
    resp = await _get_config(client, _wrong_secret(_now()))
    await _assert_refused(resp, 429)
    assert 0 < int(resp.headers["Retry-After"]) <= 1

    # Once no address is throttled, the issue goes by itself.
    freezer.tick(timedelta(seconds=2))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _providore_issues(issue_registry) == []
    await _assert_refused(await _get_config(client, _wrong_secret(_now())), 401)


async def test_throttling_ends_after_window(
    client: TestClient, freezer: FrozenDateTimeFactory
) -> None:
    """5 min 1 s after the tenth failure the address is no longer throttled."""
    freezer.move_to(FROZEN_NOW)
    await _fail_ten_times(client, _now())
    await _assert_refused(await _get_config(client, _wrong_secret(_now())), 429)
    freezer.tick(timedelta(minutes=5, seconds=1))
    await _assert_refused(await _get_config(client, _wrong_secret(_now())), 401)


@pytest.mark.parametrize(
    ("key_id", "named"),
    [
        (KEY_ID, KEY_ID),
        (UNKNOWN_KEY_ID, UNKNOWN_KEY_ID),
        ("<b>x</b>", "-"),
        ("k" * 33, "-"),
    ],
    ids=["known", "unknown", "markup", "too-long"],
)
async def test_throttled_issue_names_key_id_tried(
    client: TestClient, issue_registry: ir.IssueRegistry, key_id: str, named: str
) -> None:
    """The issue names the key id the address tried, unless it is not a key id."""
    await _fail_ten_times(client, _now(), key_id=key_id)
    issue = _throttled_issue(issue_registry)
    assert issue.translation_placeholders == {
        "addresses": "127.0.0.1",
        "count": "1",
        "key_id": named,
    }


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_throttling_per_address(
    hass: HomeAssistant,
    behind_proxy: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A throttled address does not affect any other client, nor its own good requests."""
    client = await hass_client_no_auth()
    attacker = {"X-Forwarded-For": "10.0.0.5"}
    device = {"X-Forwarded-For": "10.0.0.6"}

    await _fail_ten_times(client, _now(), attacker)
    resp = await _get_config(client, {**_wrong_secret(_now()), **attacker})
    await _assert_refused(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0
    issue = _throttled_issue(issue_registry)
    assert issue.translation_placeholders == {
        "addresses": "10.0.0.5",
        "count": "1",
        "key_id": KEY_ID,
    }

    # A spoofed X-Forwarded-For can get any address throttled, but a device behind
    # it (the same NAT or proxy) is still served: its requests are correctly signed.
    resp = await _get_config(client, {**signed_headers("GET", "/config"), **attacker})
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT

    # Another address, and the proxy's own, are served as usual.
    later = signed_headers("GET", "/config", created=_now() + timedelta(seconds=1))
    resp = await _get_config(client, {**later, **device})
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT
    await hass.async_block_till_done()
    assert hass.states.get(SENSOR_ADDRESS).state == "10.0.0.6"

    # A new request (a replay of the same one would not be recorded).
    later = signed_headers("GET", "/config", created=_now() + timedelta(seconds=2))
    resp = await _get_config(client, later)
    await _assert_signed_ok(resp)
    assert hass.states.get(SENSOR_ADDRESS).state == "127.0.0.1"

    # Failures of the other address count for it alone.
    for _ in range(9):
        headers = {**_wrong_secret(_now()), **device}
        await _assert_refused(await _get_config(client, headers), 401)
    resp = await _get_config(client, {**_wrong_secret(_now()), **attacker})
    await _assert_refused(resp, 429)
    assert len(_providore_issues(issue_registry)) == 1


async def test_many_throttled_addresses_make_one_issue(
    hass: HomeAssistant,
    behind_proxy: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """300 throttled addresses: one issue naming the five most recent."""
    freezer.move_to(FROZEN_NOW)
    client = await hass_client_no_auth()
    guards = hass.data[DATA_GUARDS]
    for number in range(300):
        for _ in range(10):
            guards.record_failure(
                f"10.1.{number // 256}.{number % 256}", KEY_ID, _now()
            )
    issue = _throttled_issue(issue_registry)
    assert issue.translation_placeholders == {
        "addresses": "10.1.1.43, 10.1.1.42, 10.1.1.41, 10.1.1.40, 10.1.1.39 (+295)",
        "count": "300",
        "key_id": KEY_ID,
    }
    # Through the real API too: one more address, still one issue.
    await _fail_ten_times(client, _now(), {"X-Forwarded-For": "10.2.0.1"})
    issue = _throttled_issue(issue_registry)
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["addresses"].startswith("10.2.0.1, ")
    assert issue.translation_placeholders["count"] == "301"

    freezer.tick(timedelta(minutes=5, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _providore_issues(issue_registry) == []


async def test_repair_flow_unblocks_addresses(
    hass: HomeAssistant,
    client: TestClient,
    hass_client: ClientSessionGenerator,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Confirming the repair issue lets every throttled address try again at once."""
    await _fail_ten_times(client, _now())
    await _assert_refused(await _get_config(client, _wrong_secret(_now())), 429)
    issue = _throttled_issue(issue_registry)

    assert await async_setup_component(hass, "repairs", {})
    await async_process_repairs_platforms(hass)
    admin = await hass_client()

    resp = await admin.post(
        "/api/repairs/issues/fix",
        json={"handler": DOMAIN, "issue_id": issue.issue_id},
    )
    assert resp.status == HTTPStatus.OK
    flow = await resp.json()
    assert flow["type"] == "form"
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {
        "addresses": "127.0.0.1",
        "count": "1",
        "key_id": KEY_ID,
    }

    resp = await admin.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert resp.status == HTTPStatus.OK
    assert (await resp.json())["type"] == "create_entry"

    await _assert_refused(await _get_config(client, _wrong_secret(_now())), 401)
    assert _providore_issues(issue_registry) == []


# --- 6. state ------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_success_updates_state(
    hass: HomeAssistant,
    client: TestClient,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A signed request updates last seen, address, firmware version and connectivity."""
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.sw_version is None
    assert hass.states.get(BINARY_SENSOR_CONNECTIVITY).state == "off"

    before = _now().replace(microsecond=0)
    resp = await _get_config(
        client, signed_headers("GET", "/config", firmware_version="1.2.3")
    )
    await _assert_signed_ok(resp)
    await hass.async_block_till_done()
    after = _now()

    last_seen = dt_util.parse_datetime(hass.states.get(SENSOR_LAST_SEEN).state)
    assert last_seen is not None
    assert before <= last_seen <= after
    assert hass.states.get(SENSOR_FIRMWARE).state == "1.2.3"
    assert hass.states.get(SENSOR_ADDRESS).state == "127.0.0.1"
    assert hass.states.get(BINARY_SENSOR_CONNECTIVITY).state == "on"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.sw_version == "1.2.3"

    # An update of the firmware shows at the next request.
    resp = await _get_config(
        client, signed_headers("GET", "/config", firmware_version="1.3.0")
    )
    await _assert_signed_ok(resp)
    await hass.async_block_till_done()
    assert hass.states.get(SENSOR_FIRMWARE).state == "1.3.0"
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    assert device.sw_version == "1.3.0"


def _snapshot(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry
) -> tuple[Any, ...]:
    device = device_registry.async_get_device(identifiers={(DOMAIN, KEY_ID)})
    assert device is not None
    return (
        hass.states.get(SENSOR_LAST_SEEN).state,
        hass.states.get(SENSOR_FIRMWARE).state,
        hass.states.get(SENSOR_ADDRESS).state,
        hass.states.get(BINARY_SENSOR_CONNECTIVITY).state,
        device.sw_version,
    )


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_failure_updates_nothing(
    hass: HomeAssistant,
    client: TestClient,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Refused requests change no state, before or after a success."""

    async def fail_in_every_way() -> None:
        now = _now()
        for headers in (
            {**_wrong_secret(now), "X-Firmware-Version": "9.9.9"},
            _tampered_version(now),
            signed_headers("GET", "/config", firmware_version="9.9.9", created=now)
            | {"Expiry": "soon"},
            signed_headers(
                "GET",
                "/config",
                firmware_version="9.9.9",
                created=now - timedelta(hours=1),
            ),
        ):
            resp = await _get_config(client, headers)
            assert resp.status in (400, 401)
        await hass.async_block_till_done()

    initial = _snapshot(hass, device_registry)
    assert initial == ("unknown", "unknown", "unknown", "off", None)
    await fail_in_every_way()
    assert _snapshot(hass, device_registry) == initial

    resp = await _get_config(
        client, signed_headers("GET", "/config", firmware_version="1.2.3")
    )
    await _assert_signed_ok(resp)
    await hass.async_block_till_done()
    seen = _snapshot(hass, device_registry)
    assert seen[1:] == ("1.2.3", "127.0.0.1", "on", "1.2.3")

    await fail_in_every_way()
    assert _snapshot(hass, device_registry) == seen


# --- 7. lifecycle --------------------------------------------------------------


async def test_unload_and_setup_again(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    client: TestClient,
) -> None:
    """Unloaded, the API answers 404; set up again, it serves; a reload is harmless."""
    await _assert_signed_ok(await _get_config(client, signed_headers("GET", "/config")))

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED

    headers = signed_headers("GET", "/config")
    await _assert_refused(await _get_config(client, headers), 404, headers)
    body = b"while unloaded"
    headers = signed_headers("POST", ECHO_PATH, body=body)
    await _assert_refused(await _post_echo(client, body, headers), 404, headers)

    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    resp = await _get_config(client, signed_headers("GET", "/config"))
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT
    # The POST refused while unloaded was never accepted, so it is not a replay.
    assert await _assert_signed_ok(await _post_echo(client, body, headers)) == body

    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    resp = await _get_config(client, signed_headers("GET", "/config"))
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT
    assert await _assert_signed_ok(await _post_echo(client, b"after reload")) == (
        b"after reload"
    )


# --- 8. logs -------------------------------------------------------------------


async def test_secrets_never_logged(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the secret key nor any signature reaches the log."""
    caplog.set_level(logging.DEBUG)
    await loaded_runtime(hass).async_set_config(KEY_ID, DOCUMENT)
    hass.http.register_view(EchoView())
    client = await hass_client_no_auth()
    signatures: list[str] = []

    async def send(headers: Headers, body: bytes | None = None) -> ClientResponse:
        signatures.append(_signature(headers))
        if body is None:
            resp = await _get_config(client, headers)
        else:
            resp = await _post_echo(client, body, headers)
        if "signature" in resp.headers:
            signatures.append(resp.headers["signature"])
        return resp

    now = _now()
    await _assert_signed_ok(await send(signed_headers("GET", "/config")))
    await _assert_signed_ok(await send(signed_headers("GET", "/config", quoted=False)))
    body = b"secret-free payload"
    post_headers = signed_headers("POST", ECHO_PATH, body=body)
    await _assert_signed_ok(await send(post_headers, body))
    await _assert_refused(await send(post_headers, body), 401)  # replay
    await _assert_refused(await send(_wrong_secret(now)), 401)
    await _assert_refused(await send(_unknown_key_id(now)), 401)
    await _assert_refused(await send(_expired(now)), 401)
    await _assert_refused(await send(_tampered_path(now)), 401)
    await _assert_refused(
        await send({**signed_headers("GET", "/config"), "Created-At": "bogus"}), 400
    )
    for _ in range(4):
        await _assert_refused(await send(_wrong_secret(now)), 401)
    # Throttled now: ten failures so far.
    await _assert_refused(await send(_wrong_secret(now)), 429)
    await _assert_refused(await send(_wrong_secret(now)), 429)
    await hass.async_block_till_done()

    # The log was captured at all.
    assert "Refused a device request from 127.0.0.1" in caplog.text
    assert "Throttling device requests from 127.0.0.1" in caplog.text

    assert SECRET_KEY not in caplog.text
    assert len(signatures) > 15
    for signature in signatures:
        assert signature not in caplog.text


async def test_rotated_key_replaces_the_old_one_at_once(
    hass: HomeAssistant, init_integration: MockConfigEntry, client: TestClient
) -> None:
    resp = await _get_config(client, signed_headers("GET", "/config"))
    await _assert_signed_ok(resp)

    subentry_id = next(iter(init_integration.subentries))
    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, "device"),
        context={"source": "reconfigure", "subentry_id": subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Garden sensor", "rotate_key": True}
    )
    assert result["reason"] == "key_rotated"

    resp = await _get_config(client, signed_headers("GET", "/config"))
    await _assert_refused(resp, HTTPStatus.UNAUTHORIZED)

    new_secret = loaded_runtime(hass).secret(KEY_ID)
    assert new_secret is not None
    assert new_secret != SECRET_KEY
    resp = await _get_config(
        client, signed_headers("GET", "/config", secret=new_secret)
    )
    assert resp.status == HTTPStatus.OK
    body = await resp.read()
    assert response_is_signed(body, resp.headers, new_secret)
    assert not response_is_signed(body, resp.headers, SECRET_KEY)


# --- 10. a hostile device cannot hurt Home Assistant ----------------------------


async def _raw_get(client: TestClient, head: bytes) -> tuple[int, bytes]:
    """Send a request with exactly these header bytes (a client library would refuse them)."""
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /api/providore/config HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Connection: close\r\n" + head + b"\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _signed_head(version: bytes) -> bytes:
    """Headers signed over a version given as raw bytes, as a device could send them."""
    created = _now()
    headers = signed_headers(
        "GET", "/config", firmware_version=version.decode("latin-1"), created=created
    )
    # Sign over the raw bytes, as a malicious device would.
    message = b"\n".join(
        (
            b"GET",
            b"/config",
            version,
            headers["Created-At"].encode(),
            headers["Expiry"].encode(),
        )
    )
    signature = hmac_b64(SECRET_KEY, message)
    return (
        f'Authorization: Hmac key-id="{KEY_ID}", signature="{signature}"\r\n'.encode()
        + b"X-Firmware-Version: "
        + version
        + b"\r\n"
        + f"Created-At: {headers['Created-At']}\r\nExpiry: {headers['Expiry']}\r\n".encode()
    )


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    "version",
    [b"1.0.0-\xff\xfe", b"1.0.0-\xc3\xa9", b"v" * 300, b"1.0 beta", b"1.0\x01"],
    ids=["non-utf8", "non-ascii", "300-chars", "space", "control"],
)
async def test_a_version_that_cannot_be_stored_is_refused(
    hass: HomeAssistant,
    client: TestClient,
    device_registry: dr.DeviceRegistry,
    hass_storage: dict[str, Any],
    version: bytes,
) -> None:
    """A signed request with such a version gets 400 before anything is recorded."""
    initial = _snapshot(hass, device_registry)
    status, body = await _raw_get(client, _signed_head(version))
    assert status == 400
    assert b"X-Firmware-Version" in body
    await hass.async_block_till_done()
    assert _snapshot(hass, device_registry) == initial
    assert f"{DOMAIN}.device_state" not in hass_storage
    # What Home Assistant's API serves (GET /api/states) still serialises.
    assert json_bytes([state.as_dict() for state in hass.states.async_all()])


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_a_replayed_get_is_answered_but_not_recorded(
    hass: HomeAssistant, client: TestClient, device_registry: dr.DeviceRegistry
) -> None:
    """A GET captured on the network cannot set the device's state back."""
    captured = signed_headers(
        "GET", "/config", firmware_version="1.0.0", created=_now()
    )
    await _assert_signed_ok(await _get_config(client, captured))
    newer = signed_headers(
        "GET",
        "/config",
        firmware_version="2.0.0",
        created=_now() + timedelta(seconds=5),
    )
    await _assert_signed_ok(await _get_config(client, newer))
    await hass.async_block_till_done()
    recorded = _snapshot(hass, device_registry)
    assert recorded[1] == "2.0.0"

    # The old capture, replayed inside its window: answered, not recorded.
    resp = await _get_config(client, captured)
    assert json.loads(await _assert_signed_ok(resp)) == DOCUMENT
    # The same request again, too (equal Created-At, same signature).
    await _assert_signed_ok(await _get_config(client, newer))
    await hass.async_block_till_done()
    assert _snapshot(hass, device_registry) == recorded
