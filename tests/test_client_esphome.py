"""`providore-client esphome`: the client behaving like an ESPHome device, over real HTTP.

A small aiohttp server on a loopback port serves a manifest and firmware the way
Providore will (`/api/providore/esphome/<token>/…`), and misbehaves on demand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import hashlib
import json
from pathlib import Path
import ssl
from typing import Any

from aiohttp import BasicAuth, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import pytest

from providore_client.cli import async_main
from providore_client.esphome import display_url, resolve_firmware_url

from .pki import key_pem
from .test_client_transport import (
    _certificate,
    refused_handshakes_ignored,  # noqa: F401 (a fixture)
)

TOKEN = "8f14e45fceea167a5a36dedd4bea2543"
FOLDER = f"/api/providore/esphome/{TOKEN}"
FIRMWARE = b"\xe9\x05\x02\x20" + bytes(range(256)) * 300
MD5 = hashlib.md5(FIRMWARE, usedforsecurity=False).hexdigest()
SHA256 = hashlib.sha256(FIRMWARE).hexdigest()
PREFIX = "providore-client: "
USER, PASSWORD = "device", "s3cr3t:p@ss"

type Run = Callable[..., Awaitable[tuple[int, str, str]]]


@dataclass
class FakeProvidore:
    """What the loopback server serves, and what it saw."""

    manifest: Any = None
    # Serve these bytes as the manifest instead of `manifest` as JSON.
    raw_manifest: bytes | None = None
    # Send the manifest or the firmware chunked, without a Content-Length.
    chunked_manifest: bool = False
    chunked_firmware: bool = False
    # Send the Content-Length of the manifest or the firmware, but only this many bytes.
    cut_manifest_after: int | None = None
    cut_firmware_after: int | None = None
    # Answer the manifest request with 404.
    missing: bool = False
    credentials: BasicAuth | None = None
    # (path, request headers) of every request.
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        """Return the application: the manifest, and firmware relative and absolute."""
        app = web.Application()
        app.router.add_get(f"{FOLDER}/manifest.json", self._manifest)
        app.router.add_get(f"{FOLDER}/firmware.ota.bin", self._firmware)
        app.router.add_get("/firmware/absolute.ota.bin", self._firmware)
        return app

    def _check(self, request: web.Request) -> None:
        self.requests.append((request.path, dict(request.headers)))
        if self.credentials is not None:
            given = request.headers.get("Authorization", "")
            if given != self.credentials.encode():
                raise web.HTTPUnauthorized
        if self.missing:
            raise web.HTTPNotFound

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        body = (
            self.raw_manifest
            if self.raw_manifest is not None
            else json.dumps(self.manifest).encode()
        )
        if self.chunked_manifest:
            return await _chunked(request, body)
        if self.cut_manifest_after is not None:
            return await _cut(request, body, self.cut_manifest_after)
        return web.Response(body=body, content_type="application/json")

    async def _firmware(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        if self.chunked_firmware:
            return await _chunked(request, FIRMWARE)
        if self.cut_firmware_after is not None:
            return await _cut(request, FIRMWARE, self.cut_firmware_after)
        return web.Response(body=FIRMWARE, content_type="application/octet-stream")


async def _chunked(request: web.Request, body: bytes) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(body)
    await response.write_eof()
    return response


async def _cut(request: web.Request, body: bytes, after: int) -> web.StreamResponse:
    """Announce the whole body, send `after` bytes of it, then hang up."""
    response = web.StreamResponse(headers={"Content-Length": str(len(body))})
    await response.prepare(request)
    await response.write(body[:after])
    assert request.transport is not None
    request.transport.close()
    return response


def manifest(
    version: str = "1.2.0", path: str = "firmware.ota.bin", **ota: Any
) -> dict[str, Any]:
    """Return a manifest like Providore's, with a build for ESP32 and one for ESP32-C3."""
    return {
        "name": "Kitchen sensor",
        "version": version,
        "builds": [
            {"chipFamily": "ESP32", "ota": {"path": "other.bin", "md5": "0" * 32}},
            {
                "chipFamily": "ESP32-C3",
                "ota": {"path": path, "md5": MD5, "sha256": SHA256, **ota},
            },
        ],
    }


@pytest.fixture
def server() -> FakeProvidore:
    """Return the server's state, serving a 1.2.0 build for ESP32-C3."""
    return FakeProvidore(manifest=manifest())


@pytest.fixture
async def base_url(
    server: FakeProvidore, aiohttp_client: Any, socket_enabled: None
) -> str:
    """Return the loopback server's root URL, with no trailing slash."""
    client = await aiohttp_client(server.app())
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], base_url: str) -> Run:
    """Return a runner of `providore-client esphome ACTION` against the server."""

    async def go(
        action: str,
        *argv: str,
        source: str | None = None,
        running: str = "1.0.0",
        chip: str = "ESP32-C3",
    ) -> tuple[int, str, str]:
        capsys.readouterr()
        status = await async_main(
            [
                "esphome",
                action,
                "--source",
                source or f"{base_url}{FOLDER}/manifest.json",
                "--chip-family",
                chip,
                "--firmware-version",
                running,
                *argv,
            ]
        )
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert TOKEN not in captured.out + captured.err
        assert PASSWORD not in captured.out + captured.err
        return status, captured.out, captured.err

    return go


def _one_error_line(err: str, *fragments: str) -> None:
    assert err.startswith(f"{PREFIX}error: ")
    assert err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


def _no_headers_of_ours(headers: dict[str, str]) -> None:
    names = {name.lower() for name in headers}
    assert not {name for name in names if name.startswith("x-")}
    assert "authorization" not in names


# --- check ----------------------------------------------------------------------


async def test_check_offers_a_different_version(
    run: Run, server: FakeProvidore
) -> None:
    status, out, err = await run("check")
    assert (status, out) == (0, "1.2.0\n")
    assert err == f"{PREFIX}ESP32-C3 firmware 1.2.0 is offered (running 1.0.0)\n"
    assert [path for path, _ in server.requests] == [f"{FOLDER}/manifest.json"]
    _no_headers_of_ours(server.requests[0][1])


@pytest.mark.parametrize(
    ("offered", "running", "status"),
    [
        ("1.2.0", "1.2.0", 3),
        ("", "1.0.0", 3),  # an empty version offers nothing
        ("0.9.0", "1.0.0", 0),  # older is offered too: a rollback
        ("1.0", "1.0.0", 0),  # a string comparison
    ],
)
async def test_check_compares_versions_as_text(
    run: Run, server: FakeProvidore, offered: str, running: str, status: int
) -> None:
    server.manifest = manifest(version=offered)
    result, out, err = await run("check", running=running)
    assert result == status
    assert out == ("" if status == 3 else f"{offered}\n")
    if status == 3:
        assert "up to date" in err


async def test_check_no_build_for_the_chip_family(run: Run) -> None:
    status, out, err = await run("check", chip="ESP32-S3")
    assert (status, out) == (1, "")
    _one_error_line(err, "the manifest has no build for ESP32-S3")


# --- download ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "served_from"),
    [
        ("firmware.ota.bin", f"{FOLDER}/firmware.ota.bin"),
        ("/firmware/absolute.ota.bin", "/firmware/absolute.ota.bin"),
        ("{base}/firmware/absolute.ota.bin", "/firmware/absolute.ota.bin"),
    ],
    ids=["relative", "absolute-path", "full-url"],
)
async def test_download_resolves_the_path_like_esphome(
    run: Run,
    server: FakeProvidore,
    base_url: str,
    tmp_path: Path,
    path: str,
    served_from: str,
) -> None:
    server.manifest = manifest(path=path.format(base=base_url))
    target = tmp_path / "firmware.bin"
    status, out, err = await run("download", "--out", str(target))
    assert (status, out) == (0, "1.2.0\n")
    assert err == (
        f"{PREFIX}firmware 1.2.0 written to {target} "
        f"({len(FIRMWARE)} bytes, md5 ok, sha256 ok)\n"
    )
    assert target.read_bytes() == FIRMWARE
    assert [path for path, _ in server.requests] == [
        f"{FOLDER}/manifest.json",
        served_from,
    ]
    _no_headers_of_ours(server.requests[1][1])


async def test_download_without_sha256(
    run: Run, server: FakeProvidore, tmp_path: Path
) -> None:
    server.manifest = manifest()
    del server.manifest["builds"][1]["ota"]["sha256"]
    status, _, err = await run("download", "--out", str(tmp_path / "f.bin"))
    assert status == 0
    assert err.endswith("bytes, md5 ok)\n")


async def test_download_same_version_fetches_nothing(
    run: Run, server: FakeProvidore, tmp_path: Path
) -> None:
    target = tmp_path / "firmware.bin"
    status, out, _ = await run("download", "--out", str(target), running="1.2.0")
    assert (status, out) == (3, "")
    assert not target.exists()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("ota", "message"),
    [
        ({"md5": "f" * 32}, f"the firmware's MD5 {MD5} is not the manifest's"),
        (
            {"md5": MD5.upper()},
            "ESPHome compares lowercase hex, and the manifest's is not",
        ),
        ({"md5": MD5[:31]}, "is not the manifest's"),
        ({"sha256": "0" * 64}, "SHA-256 does not match ota.sha256"),
    ],
    ids=["wrong-md5", "uppercase-md5", "short-md5", "wrong-sha256"],
)
async def test_download_refuses_a_wrong_digest_and_keeps_the_old_file(
    run: Run,
    server: FakeProvidore,
    tmp_path: Path,
    ota: dict[str, str],
    message: str,
) -> None:
    server.manifest = manifest(**ota)
    target = tmp_path / "firmware.bin"
    target.write_bytes(b"old firmware")
    status, out, err = await run("download", "--out", str(target))
    assert (status, out) == (1, "")
    _one_error_line(err, message)
    assert target.read_bytes() == b"old firmware"
    assert list(tmp_path.iterdir()) == [target]


async def test_md5_longer_than_32_digits_is_cut_like_esphome(
    run: Run, server: FakeProvidore, tmp_path: Path
) -> None:
    server.manifest = manifest(md5=MD5 + "ff")
    status, _, _ = await run("download", "--out", str(tmp_path / "f.bin"))
    assert status == 0


async def test_download_cut_off(
    run: Run, server: FakeProvidore, tmp_path: Path
) -> None:
    server.cut_firmware_after = 1000
    target = tmp_path / "firmware.bin"
    status, _, err = await run("download", "--out", str(target))
    assert status == 1
    _one_error_line(err, "the connection to http://", "/…/firmware.ota.bin broke")
    assert list(tmp_path.iterdir()) == []


async def test_manifest_cut_off(run: Run, server: FakeProvidore) -> None:
    server.cut_manifest_after = 10
    status, _, err = await run("check")
    assert status == 1
    _one_error_line(err, "/…/manifest.json broke")


async def test_oversized_manifest(run: Run, server: FakeProvidore) -> None:
    server.raw_manifest = json.dumps({**manifest(), "pad": "x" * 1024 * 1024}).encode()
    status, _, err = await run("check")
    assert status == 1
    _one_error_line(err, "the manifest is larger than 1 MiB")


async def test_answers_without_content_length_are_refused(
    run: Run, server: FakeProvidore, tmp_path: Path
) -> None:
    server.chunked_manifest = True
    status, _, err = await run("check")
    assert status == 1
    _one_error_line(
        err, "the manifest answer has no Content-Length, which ESPHome needs"
    )

    server.chunked_manifest, server.chunked_firmware = False, True
    status, _, err = await run("download", "--out", str(tmp_path / "f.bin"))
    assert status == 1
    _one_error_line(err, "the firmware answer has no Content-Length")
    assert list(tmp_path.iterdir()) == []


# --- basic auth -------------------------------------------------------------------


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    run: Run, server: FakeProvidore, base_url: str, tmp_path: Path
) -> None:
    server.credentials = BasicAuth(USER, PASSWORD)
    host = base_url.removeprefix("http://")
    quoted = PASSWORD.replace(":", "%3A").replace("@", "%40")
    source = f"http://{USER}:{quoted}@{host}{FOLDER}/manifest.json"
    target = tmp_path / "firmware.bin"
    status, _, _ = await run("download", "--out", str(target), source=source)
    assert status == 0
    assert target.read_bytes() == FIRMWARE
    sent = [headers.get("Authorization") for _, headers in server.requests]
    assert sent == [server.credentials.encode()] * 2

    status, _, err = await run("check")
    assert status == 1
    _one_error_line(err, "the manifest request to http://", "/…/manifest.json got 401")


# --- HTTPS -------------------------------------------------------------------------


@pytest.fixture
async def https_url(
    server: FakeProvidore, tmp_path: Path, aiohttp_client: Any, socket_enabled: None
) -> tuple[str, Path]:
    """Serve over HTTPS with a certificate from a private CA; return root URL and CA file."""
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_file, cert_file, key_file = (
        tmp_path / "ca.pem",
        tmp_path / "server.pem",
        tmp_path / "server.key",
    )
    ca_file.write_bytes(
        _certificate("Test CA", ca_key, ca_key, "Test CA", ca=True).public_bytes(
            serialization.Encoding.PEM
        )
    )
    cert_file.write_bytes(
        _certificate("127.0.0.1", server_key, ca_key, "Test CA", ca=False).public_bytes(
            serialization.Encoding.PEM
        )
    )
    key_file.write_bytes(key_pem(server_key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    test_server = TestServer(server.app())
    await test_server.start_server(ssl=context)
    client = await aiohttp_client(test_server)
    return str(client.make_url("")).rstrip("/"), ca_file


@pytest.mark.usefixtures("refused_handshakes_ignored")
async def test_https_needs_the_ca(
    run: Run, https_url: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca_file = https_url
    source = f"{url}{FOLDER}/manifest.json"
    status, _, err = await run("check", source=source)
    assert status == 1
    _one_error_line(err, "is not trusted: give its CA with --ca")
    target = tmp_path / "firmware.bin"
    status, _, _ = await run(
        "download", "--out", str(target), "--ca", str(ca_file), source=source
    )
    assert status == 0
    assert target.read_bytes() == FIRMWARE


# --- manifests ESPHome would not read ---------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "lacks a text name"),
        (json.dumps({**manifest(), "version": 2}).encode(), "lacks a text name"),
        (json.dumps({**manifest(), "name": None}).encode(), "lacks a text name"),
        (json.dumps({**manifest(), "builds": {}}).encode(), "lacks a text name"),
        (
            json.dumps(
                {**manifest(), "builds": [{"ota": {}}, *manifest()["builds"]]}
            ).encode(),
            "a build in the manifest has no chipFamily",
        ),
        (
            json.dumps(
                {
                    **manifest(),
                    "builds": [{"chipFamily": "ESP32-C3", "ota": {"path": "f"}}],
                }
            ).encode(),
            "no ota object with a text path and md5",
        ),
        (json.dumps(manifest(path="")).encode(), "gives no http(s) URL"),
        (json.dumps(manifest(path="fw-http.bin")).encode(), "gives no http(s) URL"),
    ],
)
async def test_manifests_esphome_would_not_read(
    run: Run, server: FakeProvidore, document: bytes, message: str
) -> None:
    server.raw_manifest = document
    status, _, err = await run("check")
    assert status == 1
    _one_error_line(err, message)


async def test_a_refused_manifest_request_hides_the_token(
    run: Run, server: FakeProvidore
) -> None:
    server.missing = True
    status, _, err = await run("check")
    assert status == 1
    _one_error_line(err, "/…/manifest.json got 404 Not Found")


async def test_unreachable_server(run: Run) -> None:
    status, _, err = await run(
        "check", source=f"http://127.0.0.1:9{FOLDER}/manifest.json"
    )
    assert status == 1
    _one_error_line(err, "cannot reach http://127.0.0.1:9/…/manifest.json")


@pytest.mark.parametrize(
    "source", ["ftp://example.com/manifest.json", "manifest.json", "https:///x"]
)
async def test_source_must_be_http(run: Run, source: str) -> None:
    status, _, err = await run("check", source=source)
    assert status == 1
    _one_error_line(err, "--source must be the manifest's http:// or https:// URL")


async def test_unwritable_target(run: Run, tmp_path: Path) -> None:
    status, _, err = await run("download", "--out", str(tmp_path / "missing" / "f.bin"))
    assert status == 1
    _one_error_line(err, "cannot write", "missing")


# --- ESPHome's URL rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "path", "expected"),
    [
        (
            "https://ha.local:8123/api/providore/esphome/t/manifest.json",
            "firmware.ota.bin",
            "https://ha.local:8123/api/providore/esphome/t/firmware.ota.bin",
        ),
        (
            "https://ha.local:8123/api/providore/esphome/t/manifest.json",
            "1.2.0/firmware.ota.bin",
            "https://ha.local:8123/api/providore/esphome/t/1.2.0/firmware.ota.bin",
        ),
        (
            "https://u:p@ha.local:8123/api/providore/esphome/t/manifest.json",
            "/firmware.bin",
            "https://u:p@ha.local:8123/firmware.bin",
        ),
        ("http://ha.local", "/firmware.bin", "http://ha.local/firmware.bin"),
        ("http://h", "/f.bin", "http://h/f.bin"),
        ("http://ha.local/manifest.json", "f.bin", "http://ha.local/f.bin"),
        # No special case for a query: the last "/" may be in it, as on the device.
        ("http://h/a/m.json?next=/x", "f.bin", "http://h/a/m.json?next=/f.bin"),
        ("http://h/a/m.json", "https://cdn/f.bin", "https://cdn/f.bin"),
        ("http://h/a/m.json", "fw-http.bin", "fw-http.bin"),
        ("http://h/a/m.json", "../f.bin", "http://h/a/../f.bin"),
        ("http://h/a/m.json", "", ""),
    ],
)
def test_resolve_firmware_url(source: str, path: str, expected: str) -> None:
    assert resolve_firmware_url(source, path) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://u:p@ha.local:8123{FOLDER}/manifest.json",
            "https://ha.local:8123/…/manifest.json",
        ),
        ("http://[::1]:8123/a/b", "http://[::1]:8123/…/b"),
        ("http://h/firmware.bin", "http://h/firmware.bin"),
        ("http://h", "http://h"),
        ("http://h:99999/x/y", "http://h:?/…/y"),
    ],
)
def test_display_url(url: str, shown: str) -> None:
    assert display_url(url) == shown


# --- simulate ---------------------------------------------------------------------


async def test_simulate_installs_what_is_offered_and_checks_again(
    run: Run, server: FakeProvidore
) -> None:
    status, out, err = await run(
        "simulate", "--name", "kitchen", "--rounds", "2", "--interval", "0.01"
    )

    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "kitchen started (esphome ESP32-C3, firmware 1.0.0)",
        "kitchen firmware 1.2.0 available",
        f"kitchen firmware 1.2.0 downloaded ({len(FIRMWARE)} bytes, md5 and sha256 ok)",
        "kitchen rebooted into 1.2.0",
        "kitchen firmware up to date",
        "kitchen round 1 done",
        "kitchen firmware up to date",
        "kitchen round 2 done",
    ]
    assert [path for path, _ in server.requests] == [
        f"{FOLDER}/manifest.json",
        f"{FOLDER}/firmware.ota.bin",
        f"{FOLDER}/manifest.json",
        f"{FOLDER}/manifest.json",
    ]
    for _, headers in server.requests:
        _no_headers_of_ours(headers)


async def test_simulate_reports_a_failed_install(
    run: Run, server: FakeProvidore
) -> None:
    server.manifest = manifest(md5="f" * 32)

    status, out, err = await run("simulate", "--name", "kitchen", "--rounds", "1")

    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == "kitchen started (esphome ESP32-C3, firmware 1.0.0)"
    assert lines[2].startswith("kitchen failed firmware: the firmware's MD5 ")
    assert lines[-1] == "kitchen round 1 failed"


async def test_simulate_needs_a_one_word_name(run: Run) -> None:
    status, out, err = await run("simulate", "--name", "kitchen sensor")

    assert (status, out) == (1, "")
    _one_error_line(err, "--name must be one word")
