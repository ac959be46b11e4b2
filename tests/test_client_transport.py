"""The client against answers no Providore server should give, and over HTTPS.

Each test serves one hand-made answer on a loopback port and checks that the client
refuses it with one line and status 1, leaving files untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
import hashlib
import ipaddress
import os
from pathlib import Path
import ssl
import stat
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
import pytest

from providore_client.api import ProvidoreClient, open_session
from providore_client.cli import async_main
from providore_client.errors import ConnectionFailed, ProvidoreError, ResponseRejected
from providore_client.files import commit_file, write_atomically
from providore_client.firmware import FirmwareCheck

from .conftest import KEY_ID, SECRET_KEY
from .device import BASE, hmac_b64, iso

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
type Serve = Callable[[str, Handler], Awaitable[str]]
FIRMWARE = b"0123456789"


def _stamp(body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    created_at, expiry = iso(now), iso(now + timedelta(minutes=15))
    message = body + b"\n" + created_at.encode() + b"\n" + expiry.encode()
    return {
        "created-at": created_at,
        "expiry": expiry,
        "signature": hmac_b64(SECRET_KEY, message),
    }


def _signed(body: bytes, content_type: str = "application/json") -> web.Response:
    return web.Response(body=body, headers=_stamp(body), content_type=content_type)


def _firmware_headers(**changes: str) -> dict[str, str]:
    """Return a valid firmware answer's headers; changes use_underscores, "" drops one."""
    headers = {
        "x-firmware-version": "2.0.0",
        "x-firmware-sha256": hashlib.sha256(FIRMWARE).hexdigest(),
        **_stamp(FIRMWARE),
    }
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return {name: value for name, value in headers.items() if value}


@pytest.fixture
def serve(aiohttp_client: Any, socket_enabled: None) -> Serve:
    """Return a function serving one handler at BASE + path; it returns the base URL."""

    async def go(path: str, handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", BASE + path, handler)
        client = await aiohttp_client(app)
        return str(client.make_url(BASE))

    return go


async def _run(
    capsys: pytest.CaptureFixture[str], server: str, *argv: str
) -> tuple[int, str, str]:
    status = await async_main(
        [*argv, "--server", server, "--device-id", KEY_ID, "--secret", SECRET_KEY]
    )
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


async def _refused(
    capsys: pytest.CaptureFixture[str], server: str, reason: str, *argv: str
) -> str:
    status, out, err = await _run(capsys, server, *argv)
    assert (status, out) == (1, "")
    assert err.startswith("providore-client: error: ")
    assert err.count("\n") == 1
    assert reason in err
    return err


async def test_config_not_json(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _signed(b"{not json")

    await _refused(capsys, await serve("/config", handler), "not valid JSON", "config")


async def test_config_too_large(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _signed(b" " * (1024 * 1024 + 1))

    await _refused(
        capsys, await serve("/config", handler), "larger than 1 MiB", "config"
    )


async def test_throttled(serve: Serve, capsys: pytest.CaptureFixture[str]) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"message": "too many failed requests"},
            status=429,
            headers={"Retry-After": "42"},
        )

    await _refused(
        capsys,
        await serve("/config", handler),
        "429 Too Many Requests: too many failed requests (retry after 42 s)",
        "config",
    )


@pytest.mark.parametrize(
    "document",
    [b"[1, 2]", b'"text"', b"3", b"null"],
    ids=["list", "string", "number", "null"],
)
async def test_config_not_an_object(
    serve: Serve, capsys: pytest.CaptureFixture[str], document: bytes
) -> None:
    """A signed document that is valid JSON but not an object is refused, not printed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return _signed(document)

    await _refused(
        capsys, await serve("/config", handler), "not a JSON object", "config"
    )


UNPRINTABLE = "bad\x1b[2J\x07\x00\u202e\x9b31m end"
SHOWN = "bad\\x1b[2J\\x07\\x00\\u202e\\x9b31m end"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: web.Response(status=500, text=UNPRINTABLE), id="text"),
        pytest.param(lambda: web.json_response({"message": UNPRINTABLE}, status=400), id="json"),
    ],
)  # fmt: skip
async def test_server_text_is_made_printable(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    answer: Callable[[], web.Response],
) -> None:
    """Control characters and escape sequences from the server never reach the terminal."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer()

    err = await _refused(capsys, await serve("/config", handler), SHOWN, "config")
    assert not set(err) & set("\x1b\x07\x00\u202e\x9b")


@pytest.mark.parametrize(
    ("firmware", "chunked", "size"),
    [
        pytest.param(bytes(range(256)) * 20, False, "5120", id="with-length"),
        pytest.param(bytes(range(256)) * 20, True, "more than 4096", id="chunked"),
        pytest.param(b"\x1b[2J\x00", True, "5", id="short-chunked"),
    ],
)
async def test_binary_refusal_is_not_quoted(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    firmware: bytes,
    chunked: bool,
    size: str,
) -> None:
    """An unexpected binary answer (firmware bytes from /firmware/check) is only counted."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=firmware, content_type="application/octet-stream")
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(firmware)
        return response

    err = await _refused(
        capsys,
        await serve("/firmware/check", handler),
        f"the server answered 200 OK: <{size} bytes of binary>",
        "check",
    )
    assert err.removesuffix("\n").isprintable()


@pytest.mark.parametrize(
    ("status", "location", "reason"),
    [
        (
            302,
            "/api/providore/firmware?version=1.0%1b%5b2J",
            "unprintable characters: 1.0\\x1b[2J",
        ),
        (302, "/api/providore/firmware", "names no version"),
        (302, "/api/providore/firmware?version=", "names no version"),
        (200, "", "the server answered 200 OK"),
    ],
)
async def test_check_odd_answers(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    status: int,
    location: str,
    reason: str,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, headers={"Location": location} if location else {}
        )

    await _refused(capsys, await serve("/firmware/check", handler), reason, "check")


async def test_firmware_unprintable_version(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A version header with a C1 control character (a terminal escape) is refused."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=FIRMWARE, headers=_firmware_headers())
        response.headers["X-Firmware-Version"] = "2.0\x9b2J"
        return response

    target = tmp_path / "firmware.bin"
    url = await serve("/firmware", handler)
    await _refused(
        capsys,
        url,
        "unprintable characters: 2.0\\x9b2J",
        "firmware",
        "--out",
        str(target),
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({**_firmware_headers(), "x-firmware-version": ""}, "X-Firmware-Version is empty", id="empty-version"),
        pytest.param(_firmware_headers(x_firmware_sha256="abc"), "is not a SHA-256", id="short-sha256"),
        pytest.param(_firmware_headers(x_firmware_sha256=hashlib.sha256(b"other").hexdigest()), "SHA-256 does not match", id="wrong-sha256"),
    ],
)  # fmt: skip
async def test_firmware_odd_headers(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    headers: dict[str, str],
    reason: str,
) -> None:
    """X-Firmware-Version and X-Firmware-SHA256 are optional, but checked when present."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=FIRMWARE, headers=headers)

    target = tmp_path / "firmware.bin"
    url = await serve("/firmware", handler)
    await _refused(capsys, url, reason, "firmware", "--out", str(target))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("missing", "out", "said"),
    [
        pytest.param(
            {"x_firmware_version": ""},
            "",
            f"firmware written to {{target}} ({len(FIRMWARE)} bytes, sha256 ok); "
            "the server did not name its version",
            id="no-version",
        ),
        pytest.param(
            {"x_firmware_sha256": ""},
            "2.0.0\n",
            f"firmware 2.0.0 written to {{target}} "
            f"({len(FIRMWARE)} bytes, signature ok, no SHA-256 given)",
            id="no-sha256",
        ),
        pytest.param(
            {"x_firmware_version": "", "x_firmware_sha256": ""},
            "",
            f"firmware written to {{target}} ({len(FIRMWARE)} bytes, signature ok, "
            "no SHA-256 given); the server did not name its version",
            id="neither",
        ),
    ],
)
async def test_firmware_without_optional_headers(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    missing: dict[str, str],
    out: str,
    said: str,
) -> None:
    """As from the original server: the signature over the whole file is then the check."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=FIRMWARE, headers=_firmware_headers(**missing))

    target = tmp_path / "firmware.bin"
    url = await serve("/firmware", handler)
    status, stdout, err = await _run(capsys, url, "firmware", "--out", str(target))
    assert (status, stdout) == (0, out)
    assert err == f"providore-client: {said.format(target=target)}\n"
    assert target.read_bytes() == FIRMWARE


ODD_RANGES = [
    pytest.param({}, FIRMWARE[4:], ResponseRejected, "no valid Content-Range", id="no-range"),
    pytest.param({"content-range": "bytes 0-9/10"}, FIRMWARE, ResponseRejected, "not 4 onwards", id="wrong-start"),
    pytest.param({"content-range": "bytes 4-9/10"}, FIRMWARE, ResponseRejected, "more firmware than it announced", id="too-much"),
    pytest.param({"content-range": "bytes 4-9/10"}, FIRMWARE[4:7], ConnectionFailed, "stopped after 7 of 10 bytes", id="too-little"),
]  # fmt: skip


def _odd_range_handler(headers: dict[str, str], body: bytes) -> Handler:
    """Answer a ranged request oddly, and a whole-file request correctly."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Range") is None:
            return web.Response(body=FIRMWARE, headers=_firmware_headers())
        return web.Response(status=206, body=body, headers=_firmware_headers(**headers))

    return handler


async def _resume_after_four_bytes(client: ProvidoreClient) -> None:
    async with client.firmware(offset=4) as stream:
        check = FirmwareCheck(SECRET_KEY, stream)
        check.update(FIRMWARE[:4])
        async for chunk in stream.chunks:
            check.update(chunk)
        check.verify()


@pytest.mark.parametrize(("headers", "body", "error", "reason"), ODD_RANGES)
async def test_odd_partial_answers_refused(
    serve: Serve,
    headers: dict[str, str],
    body: bytes,
    error: type[Exception],
    reason: str,
) -> None:
    """A 206 that does not continue the file where it stops is refused."""
    url = await serve("/firmware", _odd_range_handler(headers, body))
    async with open_session() as session:
        client = ProvidoreClient(session, url, KEY_ID, SECRET_KEY, "1.0.0")
        with pytest.raises(error, match=reason):
            await _resume_after_four_bytes(client)


@pytest.mark.parametrize(("headers", "body", "error", "reason"), ODD_RANGES[:3])
async def test_odd_partial_answers_start_over(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    headers: dict[str, str],
    body: bytes,
    error: type[Exception],
    reason: str,
) -> None:
    """The firmware command then discards its partial file and downloads the whole file."""
    target = tmp_path / "firmware.bin"
    (tmp_path / "firmware.bin.part").write_bytes(FIRMWARE[:4])
    url = await serve("/firmware", _odd_range_handler(headers, body))
    status, out, _ = await _run(capsys, url, "firmware", "--out", str(target))
    assert (status, out) == (0, "2.0.0\n")
    assert target.read_bytes() == FIRMWARE
    assert list(tmp_path.iterdir()) == [target]


async def test_firmware_without_length(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_firmware_headers())
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(FIRMWARE)
        await response.write_eof()
        return response

    target = tmp_path / "firmware.bin"
    await _refused(
        capsys,
        await serve("/firmware", handler),
        "no Content-Length",
        "firmware",
        "--out",
        str(target),
    )
    assert list(tmp_path.iterdir()) == []


async def test_firmware_unreachable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, socket_enabled: None
) -> None:
    target = tmp_path / "firmware.bin"
    await _refused(
        capsys,
        "http://127.0.0.1:9/api/providore",
        "cannot reach",
        "firmware",
        "--out",
        str(target),
    )
    assert list(tmp_path.iterdir()) == []


async def test_rsa_key_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = tmp_path / "device.key"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    await _refused(
        capsys, "http://127.0.0.1:9/api/providore", "is not an EC private key",
        "certificate", "--key-path", str(key_path), "--cert-path", str(tmp_path / "c.pem"),
    )  # fmt: skip


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    """A rename that fails (the target is a folder) leaves no temporary file behind."""
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")
    with pytest.raises(
        ProvidoreError, match=f"^cannot write {target}: Is a directory$"
    ):
        write_atomically(target, b"data")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]


def test_write_errors_name_the_target(tmp_path: Path) -> None:
    """Errors name the user's path, never the temporary file's."""
    target = tmp_path / "missing-folder" / "k.pem"
    with pytest.raises(ProvidoreError) as raised:
        write_atomically(target, b"data")
    assert str(raised.value) == f"cannot write {target}: No such file or directory"
    partial = tmp_path / "k.pem.part"
    partial.write_bytes(b"data")
    folder = tmp_path / "folder"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(ProvidoreError, match=f"^cannot write {folder}: "):
        commit_file(partial, folder)


def test_renames_are_flushed_to_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each rename the folder itself is fsynced, so the new name survives a crash."""
    synced_folders: list[Path] = []
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        if stat.S_ISDIR(os.fstat(descriptor).st_mode):
            synced_folders.append(Path(f"/proc/self/fd/{descriptor}").readlink())
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    write_atomically(tmp_path / "device.pem", b"certificate")
    partial = tmp_path / "firmware.bin.part"
    partial.write_bytes(b"firmware")
    commit_file(partial, tmp_path / "firmware.bin")
    assert synced_folders == [tmp_path, tmp_path]
    assert (tmp_path / "firmware.bin").read_bytes() == b"firmware"


# --- HTTPS -----------------------------------------------------------------------


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: str,
    *,
    ca: bool,
) -> x509.Certificate:
    """Return a certificate that Python's strict verification accepts."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = {"key_cert_sign": True, "crl_sign": True, "digital_signature": False}
    else:
        usage = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
async def https_server(
    tmp_path: Path, aiohttp_client: Any, socket_enabled: None
) -> tuple[str, Path]:
    """Serve /config over HTTPS with a certificate from a private CA; return URL and CA file."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = _certificate("Test CA", ca_key, ca_key, "Test CA", ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = _certificate(
        "127.0.0.1", server_key, ca_key, "Test CA", ca=False
    )
    ca_file, cert_file, key_file = (
        tmp_path / "ca.pem",
        tmp_path / "server.pem",
        tmp_path / "server.key",
    )
    ca_file.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    async def handler(request: web.Request) -> web.StreamResponse:
        return _signed(b'{"tls": true}', content_type="application/json")

    app = web.Application()
    app.router.add_get(f"{BASE}/config", handler)
    server = TestServer(app)
    await server.start_server(ssl=context)
    client = await aiohttp_client(server)
    url = str(client.make_url(BASE))
    assert url.startswith("https://127.0.0.1:")
    return url, ca_file


async def test_https_with_ca(
    https_server: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ca_file = https_server
    status, out, err = await _run(capsys, url, "config", "--ca", str(ca_file))
    assert (status, out, err) == (0, '{\n  "tls": true\n}\n', "")


@pytest.fixture
async def refused_handshakes_ignored() -> AsyncIterator[None]:
    """Let the test server see a client hang up on its certificate without failing the test."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ConnectionResetError | ssl.SSLError):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
    yield
    loop.set_exception_handler(previous)


@pytest.mark.usefixtures("refused_handshakes_ignored")
async def test_https_without_ca(
    https_server: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = https_server
    await _refused(capsys, url, "certificate is not trusted", "config")


async def test_https_bad_ca_file(
    https_server: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, _ = https_server
    (tmp_path / "bad.pem").write_text("nope")
    await _refused(
        capsys,
        url,
        "cannot load the CA file",
        "config",
        "--ca",
        str(tmp_path / "bad.pem"),
    )
