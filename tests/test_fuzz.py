"""The device API under property-based fuzzing, in-process through Home Assistant's HTTP stack.

Hypothesis draws requests (fuzz_requests.py): most are built from valid parts,
signed with the device's key or another, and then changed in one part after
signing. Each is sent byte for byte to the loaded integration, whose one device has
a document, an assigned build and a certificate, so every endpoint has something
to serve. Home Assistant trusts X-Forwarded-For from the test client, so requests
come from several addresses. For every request the oracle (fuzz_oracle.py, which
knows only the protocol document and tests/device.py) decides, and the test checks:

- no answer is a server error;
- nothing is served that was not signed with the device's key over exactly what
  was sent, inside its window (the public CA and CRL files aside), and every 200
  of a signed endpoint is signed;
- a request that is not so signed changes nothing: no store, neither registry, no
  entity state, not the replay log; an authentic one changes the device's reported
  state only when it is newer than the last recorded, appends exactly its own
  signature to the replay log when it is a POST, and issues a certificate or sends
  firmware only from its own endpoint;
- a request valid in every part is served as its endpoint promises and is never
  throttled, however many bad requests came from its address before.

The examples are derandomized, so every run checks the same ones; set
PROVIDORE_FUZZ_EXAMPLES to a number to explore that many random ones instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import astuple, dataclass, field
from datetime import datetime, timedelta
import json
import logging
import os
from pathlib import Path
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, given, settings
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.providore.const import DOMAIN, STATE_SAVE_DELAY
from custom_components.providore.request_guards import DATA_GUARDS, REPLAY_LOG
from custom_components.providore.runtime import ProvidoreRuntime

from .conftest import FIRMWARE_TYPE, KEY_ID, SECRET_KEY, loaded_runtime
from .device import response_is_signed
from .fuzz_oracle import Verdict, judge, signed_path
from .fuzz_requests import ASSIGNED_VERSION, Case, Step, cases
from .pki import ec_key, make_csr
from .raw_http import RawAnswer, exchange

EXPLORE = int(os.environ.get("PROVIDORE_FUZZ_EXAMPLES", "0"))
FUZZ_SETTINGS = settings(
    max_examples=EXPLORE or 600,
    derandomize=not EXPLORE,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CASE_TIMEOUT = 120.0
DOCUMENT = {"interval": 60, "mqtt": {"host": "broker.local", "password": "hunter2"}}
FIRMWARE = os.urandom(3000)
UPDATE = "update.garden_sensor_firmware"
# The refusal of a throttled address (the protocol's 429 for a key or a CA is another).
THROTTLED = "too many failed requests"
# What an endpoint answers a request that is valid in every part.
SERVED: dict[tuple[bytes, bytes], frozenset[int]] = {
    (b"GET", b"/config"): frozenset({200}),
    (b"GET", b"/firmware/check"): frozenset({204, 302}),
    (b"GET", b"/firmware"): frozenset({200, 206, 404, 409, 416}),
    (b"GET", b"/certificate"): frozenset({200}),
    (b"POST", b"/certificates/request"): frozenset({200, 400, 429}),
}
# The stores that only an authentic request may change, and what may change them.
REQUEST_STORES = ("device_state", "certificates", "firmware_updates")
# Each outcome the fixed examples must reach, so that no check is left idle.
OUTCOMES = (
    "served, signed",
    "valid, served",
    "refused, nothing changed",
    "public",
    "throttled or busy",
    "recorded",
    "answered, not recorded",
    "replay refused",
    "certificate issued",
    "firmware sent",
)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request sent, its answer, the oracle's verdict and what changed."""

    step: Step
    verdict: Verdict
    answer: RawAnswer
    # Whether the window held when the request was sent, and when it was answered.
    windows: frozenset[bool | None]
    # Created-At and signature of the request recorded last, before this one.
    recorded: tuple[datetime | None, str | None]
    # Whether the server had accepted this POST's signature before.
    replayed: bool
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def authentic(self) -> bool:
        """Signed with the device's key over what was sent, inside its window."""
        return self.verdict.signed and None not in self.windows and True in self.windows

    @property
    def new(self) -> bool:
        """Authentic and newer than the request recorded last."""
        created, signature = self.recorded
        return self.authentic and (
            created is None
            or self.verdict.created is None
            or self.verdict.created > created
            or (self.verdict.created == created and self.verdict.signature != signature)
        )

    @property
    def changed(self) -> set[str]:
        """The parts of the snapshot that changed."""
        return {part for part in self.before if self.before[part] != self.after[part]}

    def __str__(self) -> str:
        """Describe the exchange for a failure message."""
        request = self.step.request
        headers = ", ".join(
            f"{name.decode('latin-1')}: {value[:120]!r}"
            for name, value in request.headers
        )
        return (
            f"{self.step.what}: {request.method.decode('latin-1')} "
            f"{request.target[:200]!r} [{headers}] body {request.body[:80]!r} "
            f"({len(request.body)} bytes{', chunked' if request.chunked else ''})\n"
            f"-> {self.answer.status} {self.answer.body[:300]!r}\n"
            f"oracle: {self.verdict.refusal or 'signed'}, windows {set(self.windows)}"
        )


@dataclass(slots=True)
class FuzzedApi:
    """The integration under test, and what the checks have seen so far."""

    hass: HomeAssistant
    hass_storage: dict[str, Any]
    runtime: ProvidoreRuntime
    host: str
    port: int
    csr: bytes
    # Signatures of POSTs the server accepted (they appeared in the replay log).
    accepted_posts: set[str] = field(default_factory=set)
    # Signatures of POSTs the server served (seen with or without the replay log).
    served_posts: set[str | None] = field(default_factory=set)
    seen: Counter[str] = field(default_factory=Counter)
    # The snapshot after the last request: nothing changes these parts between
    # requests (no timer of theirs is due within minutes), so it is the next "before".
    last_snapshot: dict[str, Any] | None = None

    async def check(self, case: Case) -> None:
        """Send each request of the case and check what it did."""
        for step in case.steps:
            verdict = judge(step.request, case.instants)
            state = self.runtime.state(KEY_ID)
            recorded = (state.request_created_at, state.request_signature)
            before = self.last_snapshot or await self._snapshot()
            sent_at = dt_util.utcnow()
            answer = await exchange(self.host, self.port, step.request)
            received_at = dt_util.utcnow()
            done = Exchange(
                step=step,
                verdict=verdict,
                answer=answer,
                windows=frozenset({verdict.fresh(sent_at), verdict.fresh(received_at)}),
                recorded=recorded,
                replayed=verdict.signature in self.accepted_posts,
                before=before,
                after=await self._snapshot(),
            )
            self.last_snapshot = done.after
            self._check_answer(done)
            self._check_changes(done)
            if step.pristine and done.windows == {True}:
                self._check_served(done)

    def _check_answer(self, done: Exchange) -> None:
        """No server error, no secret, no forgery served, signed when served."""
        answer = done.answer
        assert answer.status < 500, f"a server error: {done}"
        assert SECRET_KEY.encode() not in answer.body, f"the secret sent: {done}"
        assert "date" in answer.headers, f"no Date: {done}"
        public = self._is_public(answer)
        if answer.status < 400 and not public:
            assert done.verdict.signed, f"served a forgery: {done}"
            assert None not in done.windows, (
                f"served a timestamp it must refuse: {done}"
            )
            assert True in done.windows, f"served outside its window: {done}"
            self.seen["served, signed"] += 1
        elif answer.status < 400:
            self.seen["public"] += 1
        self._check_post_once(done)
        if answer.status == 200 and not public:
            assert response_is_signed(answer.body, answer.first_headers()), (
                f"unsigned: {done}"
            )
        if answer.status == 206:
            assert response_is_signed(FIRMWARE, answer.first_headers()), (
                f"unsigned: {done}"
            )
        if answer.status == 429:
            assert answer.header("retry-after"), f"no Retry-After: {done}"
            self.seen["throttled or busy"] += 1
        if (message := _message(answer)) is not None:
            assert 0 < len(message) <= 100, f"message length: {done}"
            for value in done.step.request.header_values(b"authorization"):
                for part in value.split(b'"'):
                    assert len(part) < 16 or part.decode("latin-1") not in message, (
                        f"a signature sent back: {done}"
                    )

    def _check_post_once(self, done: Exchange) -> None:
        """Check that a POST taken once is refused ever after (401, or 429 throttled)."""
        signature = done.verdict.signature
        if done.step.request.method != b"POST" or not done.authentic:
            return
        if signature in self.accepted_posts or signature in self.served_posts:
            answer, message = done.answer, _message(done.answer)
            assert answer.status >= 400, f"a replay was served: {done}"
            taken = (
                message is not None and answer.status != 401 and message != THROTTLED
            )
            assert not taken, f"a replay was taken: {done}"
        elif done.answer.status < 400:
            self.served_posts.add(signature)

    def _check_changes(self, done: Exchange) -> None:
        """Nothing changed but what an authentic request may change."""
        allowed: set[str] = set()
        if done.authentic:
            allowed.add("entities")
            if done.new:
                allowed |= {"reported", "firmware"}
            if done.answer.header("x-firmware-sha256"):
                allowed.add("firmware")
            if done.step.request.method in (b"POST", b"PUT"):
                allowed.add("replay")
                if done.answer.status == 200:
                    allowed.add("certificates")
        changed = done.changed
        assert changed <= allowed, f"changed {changed - allowed}: {done}"
        if not done.verdict.signed and done.answer.status >= 400:
            self.seen["refused, nothing changed"] += 1
        if "reported" in changed:
            self.seen["recorded"] += 1
        elif done.authentic and not done.new and done.answer.status < 400:
            self.seen["answered, not recorded"] += 1
        if "replay" in changed:
            self._check_replay_log(done)
        if "certificates" in changed:
            self.seen["certificate issued"] += 1
        if done.answer.header("x-firmware-sha256"):
            self.seen["firmware sent"] += 1

    def _check_replay_log(self, done: Exchange) -> None:
        """Check that the replay log grew by one line: this request's signature."""
        before = done.before["replay"][0] or b""
        after = done.after["replay"][0] or b""
        assert after.startswith(before), f"replay log rewritten: {done}"
        added = after[len(before) :].splitlines()
        assert len(added) == 1, f"replay log lines: {added}: {done}"
        assert json.loads(added[0])["s"] == done.verdict.signature, f"logged: {done}"
        assert done.verdict.signature is not None
        self.accepted_posts.add(done.verdict.signature)

    def _check_served(self, done: Exchange) -> None:
        """Check that a request valid in every part got what its endpoint promises."""
        request, answer = done.step.request, done.answer
        if done.replayed:
            # A replay is refused, and counted as a failure of its address.
            assert answer.status in (401, 429), f"a replay was served: {done}"
            self.seen["replay refused"] += 1
            return
        assert _message(answer) != THROTTLED, f"a valid request was throttled: {done}"
        expected = SERVED[request.method, signed_path(request.target)]
        assert answer.status in expected, f"a valid request was refused: {done}"
        if done.new and answer.status < 400:
            recorded = self.runtime.state(KEY_ID).request_created_at
            assert recorded == done.verdict.created, f"not recorded: {done}"
        self.seen["valid, served"] += 1

    def _is_public(self, answer: RawAnswer) -> bool:
        """Whether the answer is the public CA certificate or revocation list."""
        public = (
            self.runtime.certificate_authority.certificate_pem,
            self.runtime.crl_pem,
        )
        return (
            answer.status == 200
            and answer.header("signature") is None
            and answer.body.decode("latin-1") in public
        )

    async def _snapshot(self) -> dict[str, Any]:
        """Everything a request could change, grouped by what may change it.

        Delayed writes are made first, so the stores hold what memory holds.
        """
        hass = self.hass
        async_fire_time_changed(
            hass, dt_util.utcnow() + timedelta(seconds=STATE_SAVE_DELAY + 1)
        )
        await hass.async_block_till_done()
        log = Path(hass.config.path(DOMAIN, REPLAY_LOG))
        remembered = hass.data[DATA_GUARDS].replay.remembered(
            dt_util.utc_from_timestamp(0)
        )
        entry = hass.config_entries.async_entries(DOMAIN)[0]
        return {
            "fixed": (
                self._stored(
                    *(
                        key.removeprefix(f"{DOMAIN}.")
                        for key in sorted(self.hass_storage)
                        if key.startswith(f"{DOMAIN}.")
                        and key.removeprefix(f"{DOMAIN}.") not in REQUEST_STORES
                    )
                ),
                json.dumps(entry.as_dict(), sort_keys=True, default=str),
                dict(er.async_get(hass).entities),
                self.runtime.secret(KEY_ID),
            ),
            "reported": (
                astuple(self.runtime.state(KEY_ID)),
                self._stored("device_state"),
                dict(dr.async_get(hass).devices),
            ),
            "entities": {
                state.entity_id: (state.state, dict(state.attributes))
                for state in hass.states.async_all()
            },
            "replay": (
                await hass.async_add_executor_job(_read_or_none, log),
                sorted((key_id, signature) for key_id, signature, _ in remembered),
            ),
            "certificates": (self._stored("certificates"), self.runtime.crl_pem),
            "firmware": (
                self._stored("firmware_updates"),
                self.runtime.firmware.plan(KEY_ID).to_stored(),
            ),
        }

    def _stored(self, *names: str) -> str:
        return json.dumps(
            {name: self.hass_storage.get(f"{DOMAIN}.{name}") for name in names},
            sort_keys=True,
            default=str,
        )


def _message(answer: RawAnswer) -> str | None:
    """Return the message of the integration's JSON refusals."""
    if answer.header("content-type") != "application/json" or answer.status < 400:
        return None
    message = json.loads(answer.body)["message"]
    assert isinstance(message, str)
    return message


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@pytest.fixture
async def api(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
    hass_client_no_auth: ClientSessionGenerator,
) -> FuzzedApi:
    """Set up the hub behind a trusted proxy, with a document, a build and a certificate."""
    assert await async_setup_component(
        hass,
        "http",
        {"http": {"use_x_forwarded_for": True, "trusted_proxies": ["127.0.0.1"]}},
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    runtime = loaded_runtime(hass)
    await runtime.async_set_config(KEY_ID, DOCUMENT)

    build = Path(hass.config.path("build.bin"))
    await hass.async_add_executor_job(build.write_bytes, FIRMWARE)
    await hass.services.async_call(
        DOMAIN,
        "upload_firmware",
        {
            "firmware_type": FIRMWARE_TYPE,
            "version": ASSIGNED_VERSION,
            "path": build.name,
        },
        blocking=True,
    )
    await hass.services.async_call(
        "update", "install", {ATTR_ENTITY_ID: UPDATE}, blocking=True
    )
    key = await hass.async_add_executor_job(ec_key)
    csr = await hass.async_add_executor_job(make_csr, key, KEY_ID)
    await runtime.async_issue_certificate(KEY_ID, csr)
    await hass.async_block_till_done()
    assert runtime.firmware.pending(KEY_ID) is not None
    assert runtime.current_certificate(KEY_ID) is not None

    client = await hass_client_no_auth()
    return FuzzedApi(
        hass, hass_storage, runtime, client.server.host, client.server.port, csr
    )


async def test_device_api_under_fuzzing(
    hass: HomeAssistant, api: FuzzedApi, caplog: pytest.LogCaptureFixture
) -> None:
    """No 5xx, no forgery served, nothing changed by a forgery, the valid served."""
    # A line per request, and a traceback for each request aiohttp cannot parse.
    caplog.set_level(logging.CRITICAL, logger="aiohttp")
    # asyncio's debug mode (on in every test) makes each request three times slower;
    # the same code runs under it in the other tests.
    loop = hass.loop
    loop.set_debug(False)

    @FUZZ_SETTINGS
    @given(case=cases(dt_util.utcnow, api.csr))
    def run(case: Case) -> None:
        asyncio.run_coroutine_threadsafe(api.check(case), loop).result(CASE_TIMEOUT)

    await hass.async_add_executor_job(run)

    if not EXPLORE:
        missed = [outcome for outcome in OUTCOMES if not api.seen[outcome]]
        assert not missed, f"no example reached {missed}: {api.seen}"
