"""The reference client against the original Providore server, as the stand-in reproduces it.

The original reads a request body only when it is text/plain, names neither version nor
SHA-256 in its firmware answers, signs a body decoded as UTF-8, and gives every answer
an expiry equal to its created-at (docs/protocol.md, "Compatibility with the original
Providore server"). Where it is correct the client works with it; its expiry fault is
refused by default and accepted only with --accept-expiry-at-creation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from providore_client.certificates import build_csr
from providore_client.cli import async_main

from . import standin_server as standin
from .conftest import KEY_ID, SECRET_KEY
from .device import BASE, signed_headers

DOCUMENT = {"interval": 60, "mqtt": {"host": "broker.local"}}
# Valid UTF-8, so that the original's decoding leaves it as it is.
FIRMWARE = "firmware \u00e9t\u00e9 2.0\n".encode() * 500
# What a real build looks like: bytes that are not UTF-8.
BINARY_FIRMWARE = bytes(range(256)) * 40
ACCEPT = "--accept-expiry-at-creation"
FAULT = (
    "expired when it was made: a known fault of the original Providore server "
    "(accept it with --accept-expiry-at-creation)"
)
PREFIX = "providore-client: "

type Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def server() -> standin.StandIn:
    """Return a stand-in that behaves as the original server."""
    return standin.StandIn(
        secrets={KEY_ID: SECRET_KEY},
        documents={KEY_ID: DOCUMENT},
        firmware=FIRMWARE,
        original=True,
    )


@pytest.fixture
async def original_url(
    server: standin.StandIn, aiohttp_client: Any, socket_enabled: None
) -> str:
    """Return the base URL of the stand-in, served on a loopback port."""
    client = await aiohttp_client(server.app())
    return str(client.make_url(BASE))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Return a runner of the client in this event loop: (status, stdout, stderr)."""

    async def go(server: str, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = await async_main(
            [*argv, "--server", server, "--device-id", KEY_ID, "--secret", SECRET_KEY]
        )
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return status, captured.out, captured.err

    return go


def _certificate_flags(tmp_path: Path) -> list[str]:
    return [
        "--key-path",
        str(tmp_path / "device.key"),
        "--cert-path",
        str(tmp_path / "device.pem"),
    ]


# --- the stand-in reproduces the original ----------------------------------------


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 200),
        ("text/plain; charset=utf-8", 200),
        ("application/pkcs10", 401),
        ("application/octet-stream", 401),
    ],
)
async def test_original_reads_a_csr_only_as_text_plain(
    original_url: str, content_type: str, status: int
) -> None:
    csr = build_csr(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    headers = signed_headers("POST", "/certificates/request", body=csr)
    async with ClientSession() as session:
        response = await session.post(
            f"{original_url}/certificates/request",
            data=csr,
            headers={**headers, "Content-Type": content_type},
        )
        assert response.status == status
        if status == 200:
            assert response.headers["created-at"] == response.headers["expiry"]
            assert not response.headers["expiry"].endswith("Z")


# --- strict by default -------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["config"], id="config"),
        pytest.param(["firmware", "--out", "{tmp}/firmware.bin"], id="firmware"),
        pytest.param(["certificate", "--key-path", "{tmp}/device.key", "--cert-path", "{tmp}/device.pem"], id="certificate"),
    ],
)  # fmt: skip
async def test_expiry_at_creation_is_refused_by_default(
    original_url: str, run: Run, tmp_path: Path, command: list[str]
) -> None:
    """One line that names the fault and the way out; nothing used, nothing written."""
    argv = [part.format(tmp=tmp_path) for part in command]
    status, out, err = await run(original_url, *argv)
    assert (status, out) == (1, "")
    last = err.splitlines()[-1]
    assert last.startswith(
        f"{PREFIX}error: the answer's expiry equals its created-at ("
    )
    assert last.endswith(FAULT)
    assert not (tmp_path / "firmware.bin").exists()
    assert not (tmp_path / "firmware.bin.part").exists()
    assert not (tmp_path / "device.pem").exists()


# --- with --accept-expiry-at-creation ------------------------------------------------


async def test_config(original_url: str, run: Run) -> None:
    status, out, err = await run(original_url, "config", ACCEPT)
    assert (status, err) == (0, "")
    assert json.loads(out) == DOCUMENT


async def test_certificate(
    server: standin.StandIn, original_url: str, run: Run, tmp_path: Path
) -> None:
    """The CSR goes as text/plain, so the original can read and sign it."""
    status, out, err = await run(
        original_url, "certificate", ACCEPT, *_certificate_flags(tmp_path)
    )
    assert (status, out) == (0, "")
    assert "certificate issued" in err
    certificate = x509.load_pem_x509_certificate((tmp_path / "device.pem").read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [name.value for name in names] == [KEY_ID]
    assert [request[:2] for request in server.requests] == [
        ("POST", "/certificates/request")
    ]


async def test_check_then_firmware(
    server: standin.StandIn, original_url: str, run: Run, tmp_path: Path
) -> None:
    """No X-Firmware-Version or X-Firmware-SHA256: the signature over the file decides."""
    status, out, _ = await run(original_url, "check", "--firmware-version", "1.0.0")
    assert (status, out) == (0, "1.1.0\n")

    target = tmp_path / "firmware.bin"
    status, out, err = await run(original_url, "firmware", "--out", str(target), ACCEPT)
    assert (status, out) == (0, "")
    assert err == (
        f"{PREFIX}firmware written to {target} ({len(FIRMWARE)} bytes, signature ok, "
        "no SHA-256 given); the server did not name its version\n"
    )
    assert target.read_bytes() == FIRMWARE


async def test_firmware_resumed(
    server: standin.StandIn, original_url: str, run: Run, tmp_path: Path
) -> None:
    """A 206 carries the whole file's signature, as the protocol wants; so does the original."""
    target = tmp_path / "firmware.bin"
    server.cut_after = 3000
    status, _, _ = await run(original_url, "firmware", "--out", str(target), ACCEPT)
    assert status == 1
    server.cut_after = None
    status, _, err = await run(original_url, "firmware", "--out", str(target), ACCEPT)
    assert status == 0
    assert "resumed at byte 3000" in err
    assert target.read_bytes() == FIRMWARE


async def test_binary_firmware_cannot_be_verified(
    server: standin.StandIn, original_url: str, run: Run, tmp_path: Path
) -> None:
    """The original signs a UTF-8 decoding of the file: a real build never verifies."""
    server.firmware = BINARY_FIRMWARE
    target = tmp_path / "firmware.bin"
    status, out, err = await run(original_url, "firmware", "--out", str(target), ACCEPT)
    assert (status, out) == (1, "")
    assert err == f"{PREFIX}error: the answer's signature does not match\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (standin.EXPIRED, "the answer expired at"),
        (standin.FROM_THE_FUTURE, "created in the future"),
        (standin.WRONG_SIGNATURE, "signature does not match"),
        (standin.TAMPERED_BODY, "signature does not match"),
    ],
)
async def test_accepting_the_fault_checks_everything_else(
    server: standin.StandIn, original_url: str, run: Run, attack: str, reason: str
) -> None:
    """The flag gives the original's answers the 15 minutes a correct server gives, no more."""
    server.attack = attack
    status, out, err = await run(original_url, "config", ACCEPT)
    assert (status, out) == (1, "")
    assert err.startswith(f"{PREFIX}error: ")
    assert reason in err


async def test_simulated_device(
    server: standin.StandIn, original_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole round: the device reboots into the version it asked for."""
    status = await async_main(
        ["simulate", "--server", original_url, "--device-id", KEY_ID,
         "--secret", SECRET_KEY, "--firmware-version", "1.0.0", "--once", ACCEPT]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[:6] == [
        f"{KEY_ID} started (simulated, firmware 1.0.0)",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} firmware 1.1.0 available",
        f"{KEY_ID} firmware 1.1.0 downloaded ({len(FIRMWARE)} bytes, signature ok, no SHA-256 given)",
        f"{KEY_ID} rebooted into 1.1.0",
        f"{KEY_ID} config fetched",
    ]
    assert lines[-2].startswith(f"{KEY_ID} certificate issued, expires ")
    assert lines[-1] == f"{KEY_ID} round 1 done"
    assert server.requests[-1][:3] == ("POST", "/certificates/request", "1.1.0")
