"""Hypothesis strategies for requests to the device API, as a hostile client sends them.

A case is one to five requests. The first is built from a draft that is valid in
every part except none, one or two parts drawn to be broken, and signed (with the
device's key unless the secret is a broken part). The others are that request
changed in one part after it was signed, or sent again as captured. Every valid
timestamp drawn is noted with the instant it means, so that the oracle knows the
validity windows without parsing them with the code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import re

from hypothesis import strategies as st

from .conftest import KEY_ID, SECRET_KEY
from .device import hmac_b64
from .raw_http import RawRequest

BASE = b"/api/providore"
WRONG_SECRET = "NotTheRightSecretKeyAtAll1234567"
# The endpoints a device signs its requests for, with the method each serves.
SIGNED_ENDPOINTS: dict[bytes, bytes] = {
    b"/config": b"GET",
    b"/firmware/check": b"GET",
    b"/firmware": b"GET",
    b"/certificates/request": b"POST",
    b"/certificate": b"GET",
}
PUBLIC_ENDPOINTS = (b"/certificates/ca.pem", b"/certificates/crl.pem")
METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS")
SIGNED_HEADERS = (b"Authorization", b"X-Firmware-Version", b"Created-At", b"Expiry")
# The version of the build assigned to the device: never reported, so it stays pending.
ASSIGNED_VERSION = "1.1.0"
_LINE_BREAKS = re.compile(rb"[\r\n]")


@dataclass(frozen=True, slots=True)
class Step:
    """One request of a case, and whether it is valid in every part."""

    request: RawRequest
    # Valid in every part and signed with the device's key: it must be served.
    pristine: bool
    what: str


@dataclass(slots=True)
class Case:
    """The requests of one example, and the instant of every valid timestamp drawn."""

    steps: list[Step] = field(default_factory=list)
    instants: dict[bytes, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stamp:
    """A timestamp header's text and, when it is a valid one, the instant it means."""

    text: bytes
    instant: datetime | None


def _header_safe(value: bytes) -> bytes:
    """Drop line breaks: they would end the header (another attack, not this one's)."""
    return _LINE_BREAKS.sub(b"", value)


# --- versions ------------------------------------------------------------------------

VALID_VERSIONS = st.sampled_from(
    [b"1.0.0", b"2024.6.1-beta+3", b"v" * 64, b"!", b"~x~"]
)
HOSTILE_VERSIONS = st.one_of(
    st.sampled_from(
        [
            b"",
            b"v" * 65,
            b"1.0 beta",
            b"1.0\x01",
            b"1.0.0-\xff\xfe",
            "1.0.0-é".encode(),
            b"\x7f",
            b"9" * 5000,
        ]
    ),
    st.binary(max_size=80).map(_header_safe),
)
VERSIONS = st.one_of(VALID_VERSIONS, HOSTILE_VERSIONS)


# --- timestamps ----------------------------------------------------------------------


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


# Each writes an instant in one form the protocol accepts, and returns the instant
# the text means (a form without seconds means the start of its minute).
VALID_STAMP_FORMS = st.sampled_from(
    [
        lambda t: (t.strftime("%Y-%m-%dT%H:%M:%SZ"), _floor_second(t)),
        lambda t: (t.strftime("%Y-%m-%dt%H:%M:%Sz"), _floor_second(t)),
        lambda t: (t.strftime("%Y-%m-%d %H:%M:%S+00:00"), _floor_second(t)),
        lambda t: (t.strftime("%Y-%m-%dT%H:%M:%S"), _floor_second(t)),
        lambda t: (t.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"), t),
        lambda t: (t.strftime("%Y-%m-%dT%H:%M:%S,%f") + "987Z", t),
        lambda t: (
            (t + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02"),
            _floor_second(t),
        ),
        lambda t: (
            (t - timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S-05:30"),
            _floor_second(t),
        ),
        lambda t: (t.strftime("%Y-%m-%dT%H:%MZ"), t.replace(second=0, microsecond=0)),
    ]
)
HOSTILE_STAMPS = st.one_of(
    st.sampled_from(
        [
            b"",
            b"bogus",
            b"2025-13-01T00:00:00Z",
            b"2025-06-01T24:00:00Z",
            b"2025-06-01T12:00:60Z",
            b"2025-06-01T12:00:00+24:00",
            b"9999-12-31T23:59:59-14:00",
            b"0001-01-01T00:00:00+01:00",
            b"1748779200",
            b"Sun, 01 Jun 2025 12:00:00 GMT",
            "\uff12\uff10\uff12\uff15-06-01T12:00:00Z".encode(),
            b"2025-06-01T12:00:00Z\xff",
        ]
    ),
    st.binary(max_size=40).map(_header_safe),
).map(lambda text: Stamp(text, None))
# Offsets and lifetimes in whole seconds, none within a second of a window's edge
# (the default skew is 300 s and the longest lifetime 900 s).
VALID_WINDOWS = st.tuples(
    st.sampled_from([0, -30, 120, 299]), st.sampled_from([900, 60, 600])
)
# Expired, made too far ahead, too long, inverted or empty windows.
HOSTILE_WINDOWS = st.sampled_from(
    [
        (-1000, 900),
        (-905, 900),
        (301, 60),
        (3600, 900),
        (0, 901),
        (0, 86400),
        (0, -60),
        (0, 0),
    ]
)


def valid_stamp(draw: st.DrawFn, moment: datetime) -> Stamp:
    """`moment` in one of the accepted forms."""
    text, instant = draw(VALID_STAMP_FORMS)(moment)
    return Stamp(text.encode(), instant)


# --- the Authorization header ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationForm:
    """How an Authorization header is written."""

    template: str

    def render(self, key_id: str, signature: str) -> bytes:
        """Return the header for that key id and signature."""
        text = self.template.format(k=key_id, s=signature)
        return text.encode("utf-8", "surrogateescape")


VALID_FORMS = st.sampled_from(
    [
        AuthorizationForm('Hmac key-id="{k}", signature="{s}"'),
        AuthorizationForm("Hmac key-id={k}, signature={s}"),
        AuthorizationForm('hmac signature="{s}",key-id={k}'),
        AuthorizationForm(
            'HMAC\tKey-Id="{k}" ,  SIGNATURE="{s}", algorithm="hmac-sha256"'
        ),
    ]
)
HOSTILE_FORMS = st.sampled_from(
    [
        AuthorizationForm('Hmac key-id="{k}", signature="{s}", key-id="{k}"'),
        AuthorizationForm('Hmac key-id="{k}"'),
        AuthorizationForm('Hmac signature="{s}"'),
        AuthorizationForm('Bearer key-id="{k}", signature="{s}"'),
        AuthorizationForm('Hmackey-id="{k}", signature="{s}"'),
        AuthorizationForm('Hmac key-id="{k}"; signature="{s}"'),
        AuthorizationForm('Hmac key-id="{k}, signature="{s}"'),
        AuthorizationForm('Hmac key-id="{k}", signature="{s}",'),
        AuthorizationForm('Hmac key-id="", signature="{s}"'),
        AuthorizationForm('Hmac key-id="{k}", signature="{s}\\"'),
    ]
)
FORMS = st.one_of(VALID_FORMS, HOSTILE_FORMS)
# Near misses of the device's key id (another letter case, a prefix, an extension)
# are drawn twice as often as odd ones or arbitrary text.
NEAR_KEY_IDS = st.sampled_from(["D8FA0180", "d8fa018", "d8fa0180x", "0badc0de"])
ODD_KEY_IDS = st.sampled_from(["x" * 33, "", "d8fa0180\t"])
HOSTILE_KEY_IDS = st.one_of(
    NEAR_KEY_IDS,
    NEAR_KEY_IDS,
    ODD_KEY_IDS,
    st.text(max_size=40).filter(lambda text: "\r" not in text and "\n" not in text),
)
FORGED_SIGNATURES = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60
)
SIGNATURE_TWEAKS = st.sampled_from(
    [
        lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BB"),
        lambda s: ("B" if s[:1] == "A" else "A") + s[1:],
        lambda s: s.rstrip("="),
        lambda s: s.replace("+", "-").replace("/", "_"),
        lambda s: s.lower(),
        lambda s: s + "AAAA",
    ]
)


# --- paths and queries ---------------------------------------------------------------


def _with_query(query: bytes) -> bytes:
    return b"?" + query if query else b""


# Queries are not signed: a valid one changes nothing but GET /firmware's 409.
VALID_QUERIES = st.sampled_from(
    [
        b"",
        b"a=b",
        b"version=" + ASSIGNED_VERSION.encode(),
        b"version=9.9.9",
        b"version=&version=1.1.0",
        b"%ff%00",
    ]
).map(_with_query)
HOSTILE_QUERIES = (
    st.binary(min_size=1, max_size=30)
    .map(lambda raw: raw.replace(b" ", b"").replace(b"#", b""))
    .map(_with_query)
)
ENDPOINT_PATHS = st.sampled_from([*SIGNED_ENDPOINTS, *PUBLIC_ENDPOINTS])
# Each writes an endpoint's path another way: another signed message for one route.
PATH_TRICKS = st.sampled_from(
    [
        lambda path: path[:2] + b"%%%02X" % path[2] + path[3:],
        lambda path: path[:-1] + b"%%%02x" % path[-1],
        lambda path: b"/%%%02X" % path[1] + path[2:],
        lambda path: b"/" + path,
        lambda path: b"/." + path,
        lambda path: path + b"/",
        lambda path: path.upper(),
        lambda path: path + b";x",
        lambda path: path + b"#x",
    ]
)
HOSTILE_PATHS = st.one_of(
    ENDPOINT_PATHS,
    st.sampled_from(PUBLIC_ENDPOINTS),
    st.tuples(ENDPOINT_PATHS, PATH_TRICKS).map(lambda pair: pair[1](pair[0])),
    st.sampled_from(
        [
            b"",
            b"/",
            b"/../..",
            b"/%2e%2e/config",
            b"/" + b"a" * 9000,
            # ESPHome's endpoint: its token is the only credential, and none is known.
            b"/esphome/0123456789abcdef0123456789abcdef/manifest.json",
            b"/esphome/" + b"A" * 43 + b"/firmware.bin",
        ]
    ),
    st.binary(min_size=1, max_size=30).map(
        lambda raw: b"/" + bytes(c for c in raw if c > 0x20 and c != 0x7F)
    ),
)


# --- bodies and other headers --------------------------------------------------------

SMALL_BODIES = st.binary(max_size=300)
HOSTILE_BODIES = st.one_of(
    SMALL_BODIES,
    st.sampled_from([b"A" * 65537, b"\x00" * 200_000]),
    # One byte of the device's CSR changed: drawn as (index, xor mask).
    st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
)
VALID_EXTRA_HEADERS = st.lists(
    st.sampled_from(
        [
            (b"Content-Type", b"text/plain"),
            (b"Range", b"bytes=0-99"),
            (b"Range", b"bytes=-10"),
            (b"X-Forwarded-For", b"203.0.113.7"),
            (b"X-Forwarded-For", b"2001:db8::42"),
            (b"X-Forwarded-For", b"198.51.100.1, 203.0.113.9"),
        ]
    ),
    max_size=2,
    unique_by=lambda header: header[0],
)
HOSTILE_EXTRA_HEADERS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                (b"Content-Type", b"application/json"),
                (b"Range", b"bytes=999999999-"),
                (b"Range", b"bytes=5-1"),
                (b"Range", b"bytes=0-1,5-9"),
                (b"X-Forwarded-For", b"garbage"),
                (b"X-Forwarded-For", b""),
                (b"Expect", b"100-continue"),
            ]
        ),
        st.tuples(
            st.sampled_from([b"X-Junk", b"Authorization ", b"\x00", b"X" * 9000]),
            st.binary(max_size=40).map(_header_safe),
        ),
    ),
    min_size=1,
    max_size=3,
)


# --- a request, signed ---------------------------------------------------------------

# The parts of a draft that may be broken; each draft breaks at most two.
PARTS = (
    "endpoint",
    "method",
    "query",
    "version",
    "created",
    "expiry",
    "window",
    "key id",
    "secret",
    "authorization form",
    "body",
    "headers",
)
# One broken part most often: alone, it is what a check must catch by itself.
BROKEN_PARTS = st.one_of(
    st.sampled_from(PARTS).map(lambda part: frozenset({part})),
    st.just(frozenset[str]()),
    st.sets(st.sampled_from(PARTS), min_size=2, max_size=2).map(frozenset),
)
# The certificate request twice: it has a body and a replay cache to try.
VALID_ENDPOINTS = st.sampled_from(
    [*SIGNED_ENDPOINTS.items(), (b"/certificates/request", b"POST")]
)


@dataclass(frozen=True, slots=True)
class Draft:
    """What a client means to send, before it is signed, and which parts are broken."""

    method: bytes
    path: bytes
    query: bytes
    version: bytes
    created: Stamp
    expiry: Stamp
    body: bytes
    key_id: str
    secret: str
    form: AuthorizationForm
    extra: tuple[tuple[bytes, bytes], ...]
    chunked: bool
    broken: frozenset[str]

    @property
    def pristine(self) -> bool:
        """Whether no part is broken: signed, it must be served."""
        return not self.broken

    def signature(self) -> str:
        """Sign as a device does (tests/device.py's HMAC), over the raw bytes."""
        message = b"\n".join(
            (self.method, self.path, self.version, self.created.text, self.expiry.text)
        )
        if self.method in (b"POST", b"PUT"):
            message += b"\n" + self.body
        return hmac_b64(self.secret, message)

    def render(self, signature: str) -> RawRequest:
        """Return the request a client sends for the draft with that signature."""
        headers = (
            (b"Authorization", self.form.render(self.key_id, signature)),
            (b"X-Firmware-Version", self.version),
            (b"Created-At", self.created.text),
            (b"Expiry", self.expiry.text),
            *self.extra,
        )
        return RawRequest(
            self.method, BASE + self.path + self.query, headers, self.body, self.chunked
        )


def _draft_body(draw: st.DrawFn, hostile: bool, csr: bytes) -> bytes:
    if not hostile:
        return draw(st.one_of(st.sampled_from([csr, csr, b"", b"{}"]), SMALL_BODIES))
    body = draw(HOSTILE_BODIES)
    if isinstance(body, tuple):
        index, mask = body
        index %= len(csr)
        return csr[:index] + bytes([csr[index] ^ mask]) + csr[index + 1 :]
    return body


@st.composite
def drafts(draw: st.DrawFn, clock: Callable[[], datetime], csr: bytes) -> Draft:
    """Draw a draft valid in every part but those drawn to be broken (none to two)."""
    broken = draw(BROKEN_PARTS)

    def part[T](
        name: str, valid: st.SearchStrategy[T], hostile: st.SearchStrategy[T]
    ) -> T:
        return draw(hostile if name in broken else valid)

    path, method = draw(VALID_ENDPOINTS)
    if "endpoint" in broken:
        path = draw(HOSTILE_PATHS)
        method = SIGNED_ENDPOINTS.get(path, b"GET")
    method = part("method", st.just(method), st.sampled_from(METHODS))
    offset, lifetime = part("window", VALID_WINDOWS, HOSTILE_WINDOWS)
    created_at = _floor_second(clock()) + timedelta(seconds=offset)
    expiry_at = created_at + timedelta(seconds=lifetime)
    created = (
        draw(HOSTILE_STAMPS) if "created" in broken else valid_stamp(draw, created_at)
    )
    expiry = (
        draw(HOSTILE_STAMPS) if "expiry" in broken else valid_stamp(draw, expiry_at)
    )
    if method in (b"POST", b"PUT"):
        body = _draft_body(draw, "body" in broken, csr)
    else:
        body = part("body", st.just(b""), SMALL_BODIES)
    return Draft(
        method=method,
        path=path,
        query=part("query", VALID_QUERIES, HOSTILE_QUERIES),
        version=part("version", VALID_VERSIONS, HOSTILE_VERSIONS),
        created=created,
        expiry=expiry,
        body=body,
        key_id=part("key id", st.just(KEY_ID), HOSTILE_KEY_IDS),
        secret=part("secret", st.just(SECRET_KEY), st.just(WRONG_SECRET)),
        form=part("authorization form", VALID_FORMS, HOSTILE_FORMS),
        extra=tuple(part("headers", VALID_EXTRA_HEADERS, HOSTILE_EXTRA_HEADERS)),
        chunked=method in (b"POST", b"PUT") and draw(st.booleans()),
        broken=broken,
    )


# --- changes after signing ----------------------------------------------------------


def _replace_header(
    request: RawRequest, name: bytes, value: bytes | None
) -> RawRequest:
    """Replace a header's value, or drop the header with None."""
    headers = [
        (sent, old if sent != name else value)
        for sent, old in request.headers
        if sent != name or value is not None
    ]
    return replace(request, headers=tuple(headers))


def _repeat_header(
    request: RawRequest, name: bytes, value: bytes, *, first: bool
) -> RawRequest:
    """Send a header twice: `value` before or after the one already there."""
    headers: list[tuple[bytes, bytes]] = []
    for sent, old in request.headers:
        if sent != name:
            headers.append((sent, old))
        elif first:
            headers += [(sent, value), (sent, old)]
        else:
            headers += [(sent, old), (sent, value)]
    return replace(request, headers=tuple(headers))


@dataclass(frozen=True, slots=True)
class Signed:
    """A draft as signed, to be changed after signing."""

    draft: Draft
    signature: str
    case: Case
    clock: Callable[[], datetime]

    @property
    def request(self) -> RawRequest:
        """Return the request as signed."""
        return self.draft.render(self.signature)


# Each returns the signed request with one part changed, and whether that change
# keeps a request valid in every part so (another valid form of the same thing).
type Change = Callable[[st.DrawFn, Signed], tuple[RawRequest, bool]]


def _again(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    return signed.request, True


def _method(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    return replace(signed.request, method=draw(st.sampled_from(METHODS))), False


def _path(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    # The same route written another way: the forgery that a server would serve
    # if it decoded or normalised the path before checking the signature.
    # (The tricks need three characters; a broken draft may have fewer.)
    path = signed.draft.path if len(signed.draft.path) >= 3 else b"/config"
    target = BASE + draw(PATH_TRICKS)(path) + signed.draft.query
    return replace(signed.request, target=target), False


def _absolute_form(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    target = b"http://127.0.0.1" + signed.request.target
    return replace(signed.request, target=target), False


def _query(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    valid = draw(st.booleans())
    query = draw(VALID_QUERIES if valid else HOSTILE_QUERIES)
    return replace(signed.request, target=BASE + signed.draft.path + query), valid


def _version(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    return _replace_header(signed.request, b"X-Firmware-Version", draw(VERSIONS)), False


def _stamp(name: bytes) -> Change:
    def change(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
        original = (
            signed.draft.created if name == b"Created-At" else signed.draft.expiry
        )
        if draw(st.booleans()):
            stamp = valid_stamp(draw, original.instant or signed.clock())
            signed.case.instants[stamp.text] = stamp.instant
        else:
            stamp = draw(HOSTILE_STAMPS)
        return _replace_header(signed.request, name, stamp.text), False

    return change


def _body(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    return replace(signed.request, body=draw(SMALL_BODIES)), False


def _authorization(
    signed: Signed, form: AuthorizationForm, key_id: str, signature: str
) -> RawRequest:
    value = form.render(key_id, signature)
    return _replace_header(signed.request, b"Authorization", value)


def _signature(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    draft, signature = signed.draft, signed.signature
    tweaked = draw(SIGNATURE_TWEAKS)(signature) if signature else "A"
    return _authorization(signed, draft.form, draft.key_id, tweaked), False


def _key_id(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    draft = signed.draft
    key_id = draw(HOSTILE_KEY_IDS)
    return _authorization(signed, draft.form, key_id, signed.signature), False


def _form_change(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    valid = draw(st.booleans())
    form = draw(VALID_FORMS if valid else HOSTILE_FORMS)
    return _authorization(signed, form, signed.draft.key_id, signed.signature), valid


def _drop_header(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    name = draw(st.sampled_from(SIGNED_HEADERS))
    return _replace_header(signed.request, name, None), False


def _repeat(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    request = signed.request
    name = draw(st.sampled_from(SIGNED_HEADERS))
    value = draw(st.one_of(st.just(dict(request.headers)[name]), VERSIONS))
    return _repeat_header(request, name, value, first=draw(st.booleans())), False


def _header_case(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    request = signed.request
    headers = tuple((name.swapcase(), value) for name, value in request.headers)
    return replace(request, headers=headers), True


def _transfer_coding(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    request = signed.request
    return replace(request, chunked=not request.chunked), True


def _forwarded_for(draw: st.DrawFn, signed: Signed) -> tuple[RawRequest, bool]:
    request = signed.request
    forwarded = draw(st.sampled_from([b"192.0.2.1", b"2001:db8::1", b"garbage"]))
    headers = (*request.headers, (b"X-Forwarded-For", forwarded))
    return replace(request, headers=headers), False


# The forgeries that matter most come first: Hypothesis draws early entries more often.
CHANGES: dict[str, Change] = {
    "signature": _signature,
    "path": _path,
    "key id": _key_id,
    "repeat header": _repeat,
    "version": _version,
    "created": _stamp(b"Created-At"),
    "expiry": _stamp(b"Expiry"),
    "body": _body,
    "method": _method,
    "again": _again,
    "authorization form": _form_change,
    "drop header": _drop_header,
    "query": _query,
    "absolute form": _absolute_form,
    "header case": _header_case,
    "transfer coding": _transfer_coding,
    "forwarded for": _forwarded_for,
}
CHANGE_NAMES = st.sampled_from(list(CHANGES))


@st.composite
def changed(draw: st.DrawFn, signed: Signed) -> Step:
    """Draw the signed request with one part changed after signing, or sent again."""
    what = draw(CHANGE_NAMES)
    request, keeps_valid = CHANGES[what](draw, signed)
    return Step(request, keeps_valid and signed.draft.pristine, f"signed, then {what}")


@st.composite
def cases(draw: st.DrawFn, clock: Callable[[], datetime], csr: bytes) -> Case:
    """Draw a draft, signed, then changes of what was signed (one to four if valid)."""
    draft = draw(drafts(clock, csr))
    case = Case()
    for stamp in (draft.created, draft.expiry):
        if stamp.instant is not None:
            case.instants[stamp.text] = stamp.instant
    signature = draft.signature()
    pristine = draft.pristine
    if draw(st.integers(0, 9)) == 0:
        signature = draw(FORGED_SIGNATURES)
        pristine = False
    case.steps.append(Step(draft.render(signature), pristine, "as drafted"))
    signed = Signed(draft, signature, case, clock)
    # Changes after signing matter most on a request that was valid as signed.
    for _ in range(draw(st.integers(1 if pristine else 0, 4 if pristine else 1))):
        case.steps.append(draw(changed(signed)))
    return case
