"""A STAND-IN for the firmware and certificate endpoints, which this branch's integration lacks.

It answers like docs/protocol.md with the tests' independent signer (`device.py`), and can
misbehave on purpose (tampered body, wrong signature, expired answer, wrong SHA-256,
cut-off download, server error) to test the reference client's checks. Once the
integration serves these endpoints, the client tests move to the real ones.

With `original=True` it behaves as the original Providore server does where it departs
from the protocol (docs/protocol.md, "Compatibility with the original Providore
server"): it reads a request body only when it is sent as text/plain, its firmware
answers name no version and no SHA-256, it signs a body decoded as UTF-8 (invalid bytes
replaced), and its answers' expiry equals their created-at, a time without a zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hashlib
import hmac
import json
import re
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .device import BASE, hmac_b64, iso

WRONG_SECRET = "NotTheRightSecretKeyAtAll1234567"
_AUTHORIZATION_RE = re.compile(r'Hmac key-id="?([^",]+)"?, signature="?([^",]+)"?')
_RANGE_RE = re.compile(r"bytes=(\d+)-")

# Ways the stand-in misbehaves, set in StandIn.attack.
TAMPERED_BODY = "tampered-body"
WRONG_SIGNATURE = "wrong-signature"
EXPIRED = "expired"
FROM_THE_FUTURE = "from-the-future"
UNSIGNED = "unsigned"
WRONG_SHA256 = "wrong-sha256"
SERVER_ERROR = "server-error"
# The firmware answer names another version than the one asked for.
WRONG_VERSION = "wrong-version"


@dataclass
class StandIn:
    """The state of the stand-in server: devices, documents, firmware, its CA."""

    secrets: dict[str, str]
    documents: dict[str, Any] = field(default_factory=dict)
    firmware: bytes | None = None
    firmware_version: str = "1.1.0"
    attack: str | None = None
    # Serve at most this many body bytes of a firmware answer, then drop the connection.
    cut_after: int | None = None
    # False: answer a Range request with the whole file (200), as a server may.
    honour_range: bool = True
    certificate_days: int = 365
    # Behave as the original Providore server (see the module's docstring).
    original: bool = False
    # The last certificate issued to each device, as GET /certificate serves it.
    certificates: dict[str, bytes] = field(default_factory=dict)
    # What the stand-in saw: (method, path with query, X-Firmware-Version, Range).
    requests: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def app(self) -> web.Application:
        """Return the aiohttp application under the protocol's base path."""
        app = web.Application()
        app.router.add_get(f"{BASE}/config", self._config)
        app.router.add_get(f"{BASE}/firmware/check", self._firmware_check)
        app.router.add_get(f"{BASE}/firmware", self._firmware)
        app.router.add_post(f"{BASE}/certificates/request", self._certificate)
        app.router.add_get(f"{BASE}/certificate", self._current_certificate)
        return app

    async def _authenticate(self, request: web.Request) -> tuple[str, bytes]:
        """Check the request's signature like the protocol wants; return key id and body."""
        body = await request.read()
        if self.original and request.content_type != "text/plain":
            # The original parses only text/plain bodies: it signs an empty one instead.
            body = b""
        self.requests.append(
            (
                request.method,
                request.path_qs.removeprefix(BASE),
                request.headers.get("X-Firmware-Version", ""),
                request.headers.get("Range"),
            )
        )
        if self.attack == SERVER_ERROR:
            raise web.HTTPInternalServerError(text="boom\nsecond line")
        match = _AUTHORIZATION_RE.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            raise _refused(400, "malformed Authorization header")
        key_id, signature = match.groups()
        created_at = request.headers["Created-At"]
        expiry = request.headers["Expiry"]
        lines = [
            request.method,
            request.path.removeprefix(BASE),
            request.headers["X-Firmware-Version"],
            created_at,
            expiry,
        ]
        message = "\n".join(lines).encode()
        if request.method == "POST":
            message += b"\n" + body
        secret = self.secrets.get(key_id, WRONG_SECRET)
        if not hmac.compare_digest(hmac_b64(secret, message), signature):
            raise _refused(401, "invalid signature")
        if datetime.fromisoformat(expiry) <= datetime.now(UTC):
            raise _refused(401, "request expired")
        return key_id, body

    def _signed(
        self,
        key_id: str,
        body: bytes,
        content_type: str,
        *,
        signed_body: bytes | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """Answer with the protocol's signing headers, or misbehave as told."""
        now = datetime.now(UTC)
        if self.attack == EXPIRED:
            now -= timedelta(minutes=16)
        elif self.attack == FROM_THE_FUTURE:
            now += timedelta(minutes=10)
        created_at, expiry = iso(now), iso(now + timedelta(minutes=15))
        secret = (
            WRONG_SECRET if self.attack == WRONG_SIGNATURE else self.secrets[key_id]
        )
        covered = body if signed_body is None else signed_body
        if self.original:
            created_at = expiry = created_at.removesuffix("Z")
            covered = covered.decode("utf-8", "replace").encode()
        stamp = {
            "created-at": created_at,
            "expiry": expiry,
            "signature": hmac_b64(
                secret, covered + b"\n" + created_at.encode() + b"\n" + expiry.encode()
            ),
        }
        if self.attack == TAMPERED_BODY and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        all_headers = {
            **(headers or {}),
            **({} if self.attack == UNSIGNED else stamp),
            "Content-Type": content_type,
        }
        return web.Response(status=status, body=body, headers=all_headers)

    async def _config(self, request: web.Request) -> web.StreamResponse:
        key_id, _ = await self._authenticate(request)
        if key_id not in self.documents:
            raise _refused(404, "no configuration for this device")
        body = json.dumps(self.documents[key_id]).encode()
        return self._signed(key_id, body, "application/json")

    async def _firmware_check(self, request: web.Request) -> web.StreamResponse:
        await self._authenticate(request)
        reported = request.headers["X-Firmware-Version"]
        if self.firmware is None or reported == self.firmware_version:
            return web.Response(status=204)
        location = f"{BASE}/firmware?version={self.firmware_version}"
        return web.Response(status=302, headers={"Location": location})

    async def _firmware(self, request: web.Request) -> web.StreamResponse:
        key_id, _ = await self._authenticate(request)
        if self.firmware is None:
            raise _refused(404, "no firmware for this device")
        if request.query.get("version", self.firmware_version) != self.firmware_version:
            raise _refused(409, "not the assigned version")
        whole = self.firmware
        sha256 = hashlib.sha256(whole).hexdigest()
        if self.attack == WRONG_SHA256:
            sha256 = hashlib.sha256(whole + b"x").hexdigest()
        served = self.firmware_version
        if self.attack == WRONG_VERSION:
            served += "-other"
        headers = (
            {}
            if self.original
            else {"X-Firmware-Version": served, "X-Firmware-SHA256": sha256}
        )
        status, start = 200, 0
        range_header = request.headers.get("Range", "") if self.honour_range else ""
        if (match := _RANGE_RE.fullmatch(range_header)) is not None:
            start = int(match.group(1))
            if start >= len(whole):
                raise _refused(416, "range not satisfiable")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(whole) - 1}/{len(whole)}"
        response = self._signed(
            key_id,
            whole[start:],
            "application/octet-stream",
            signed_body=whole,
            status=status,
            headers=headers,
        )
        if self.cut_after is None:
            return response
        return await _cut_off(request, response, self.cut_after)

    async def _certificate(self, request: web.Request) -> web.StreamResponse:
        key_id, body = await self._authenticate(request)
        try:
            csr = x509.load_pem_x509_csr(body)
        except ValueError:
            raise _refused(400, "not a PEM CSR") from None
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not csr.is_signature_valid or [n.value for n in names] != [key_id]:
            raise _refused(400, "invalid CSR")
        pem = self.issue(
            csr.public_key(), key_id, timedelta(days=self.certificate_days)
        )
        self.certificates[key_id] = pem
        return self._signed(key_id, pem, "application/x-pem-file")

    async def _current_certificate(self, request: web.Request) -> web.StreamResponse:
        key_id, _ = await self._authenticate(request)
        if key_id not in self.certificates:
            raise _refused(404, "no certificate for this device")
        return self._signed(key_id, self.certificates[key_id], "application/x-pem-file")

    def issue(self, public_key: Any, common_name: str, lifetime: timedelta) -> bytes:
        """Return a PEM certificate for public_key, valid from now for lifetime."""
        now = datetime.now(UTC)
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stand-in CA")])
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + lifetime)
            .sign(self.ca_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM)


def _refused(status: int, message: str) -> web.HTTPException:
    error = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        416: web.HTTPRequestRangeNotSatisfiable,
    }[status]
    return error(text=json.dumps({"message": message}), content_type="application/json")


async def _cut_off(
    request: web.Request, response: web.Response, count: int
) -> web.StreamResponse:
    """Send the headers and the first `count` body bytes, then drop the connection."""
    assert response.body is not None
    body = bytes(response.body)  # type: ignore[arg-type]
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[:count])
    assert request.transport is not None
    request.transport.close()
    return stream
