"""The client's commands end to end, each over a real loopback HTTP connection.

`config` talks to the real integration through Home Assistant's HTTP stack. `check`,
`firmware` and `certificate` talk to the STAND-IN server in `standin_server.py` until
the integration serves those endpoints; then these tests move to the real ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from providore_client.certificates import accept_certificate, needs_renewal
from providore_client.cli import async_main
from providore_client.errors import ResponseRejected

from . import standin_server as standin
from .conftest import KEY_ID, SECRET_KEY, loaded_runtime
from .device import BASE

DOCUMENT: dict[str, Any] = {
    "interval": 60,
    "mqtt": {"host": "broker.local"},
    "name": "Gärten",
}
FIRMWARE = bytes(range(256)) * 40 + b"\xff\xfe end"
PREFIX = "providore-client: "

type Run = Callable[..., Awaitable[tuple[int, str, str]]]


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
        assert SECRET_KEY not in captured.out + captured.err
        return status, captured.out, captured.err

    return go


@pytest.fixture
async def integration_url(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> str:
    """Return the base URL of the real integration, served on a loopback port."""
    client = await hass_client_no_auth()
    return str(client.make_url(BASE))


@pytest.fixture
def server() -> standin.StandIn:
    """Return the stand-in server's state: one device with a document and a firmware."""
    return standin.StandIn(
        secrets={KEY_ID: SECRET_KEY}, documents={KEY_ID: DOCUMENT}, firmware=FIRMWARE
    )


@pytest.fixture
async def standin_url(
    server: standin.StandIn, aiohttp_client: Any, socket_enabled: None
) -> str:
    """Return the base URL of the stand-in server, served on a loopback port."""
    client = await aiohttp_client(server.app())
    return str(client.make_url(BASE))


def _one_error_line(err: str, *fragments: str) -> None:
    assert err.startswith(f"{PREFIX}error: ")
    assert err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


# --- config, against the real integration ---------------------------------------


async def test_config_from_the_integration(
    hass: HomeAssistant, integration_url: str, run: Run
) -> None:
    """The document comes out on stdout as JSON, and nothing else does."""
    await loaded_runtime(hass).async_set_config(KEY_ID, DOCUMENT)
    status, out, err = await run(
        integration_url, "config", "--firmware-version", "2.0.1"
    )
    assert status == 0
    assert json.loads(out) == DOCUMENT
    assert err == ""
    await hass.async_block_till_done()
    state = hass.states.get("update.garden_sensor_firmware")
    assert state is not None
    assert state.attributes["installed_version"] == "2.0.1"


async def test_config_none_from_the_integration(integration_url: str, run: Run) -> None:
    status, out, err = await run(integration_url, "config")
    assert (status, out) == (1, "")
    _one_error_line(
        err,
        f"404 from {integration_url}/config: wrong --server, "
        "or no configuration document for this device",
    )


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("config", "404 from {url}/config: wrong --server, or no configuration"),
        ("check", "404 Not Found from {url}/firmware/check (wrong --server?)"),
    ],
)
async def test_wrong_server_is_named(
    standin_url: str, run: Run, command: str, reason: str
) -> None:
    """A base URL that is not Providore's gets a 404 naming the URL, not the device."""
    wrong = standin_url + "-typo"
    status, out, err = await run(wrong, command)
    assert (status, out) == (1, "")
    _one_error_line(err, reason.format(url=wrong))


async def test_config_wrong_secret_refused_by_the_integration(
    integration_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await async_main(
        ["config", "--server", integration_url, "--device-id", KEY_ID,
         "--secret", "NotTheRightSecretKeyAtAll1234567"]
    )  # fmt: skip
    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(
        captured.err, "the server answered 401 Unauthorized: invalid signature"
    )


async def test_certificate_from_the_integration(
    integration_url: str, run: Run, tmp_path: Path
) -> None:
    """The integration reads the CSR the client sends as text/plain (for the original)."""
    cert_path = tmp_path / "device.pem"
    status, out, err = await run(
        integration_url, "certificate", "--key-path", str(tmp_path / "device.key"),
        "--cert-path", str(cert_path),
    )  # fmt: skip
    assert (status, out) == (0, "")
    assert "certificate issued" in err
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    issuer = certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert str(issuer[0].value).startswith("Providore CA")


# --- attacks on answers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (standin.TAMPERED_BODY, "signature does not match"),
        (standin.WRONG_SIGNATURE, "signature does not match"),
        (standin.EXPIRED, "the answer expired at"),
        (standin.FROM_THE_FUTURE, "created in the future"),
        (standin.UNSIGNED, "the answer is not signed"),
        (
            standin.SERVER_ERROR,
            "the server answered 500 Internal Server Error: boom second line",
        ),
    ],
)
async def test_config_attacks(
    server: standin.StandIn, standin_url: str, run: Run, attack: str, reason: str
) -> None:
    """A bad answer is one line on stderr and status 1; nothing reaches stdout."""
    server.attack = attack
    status, out, err = await run(standin_url, "config")
    assert (status, out) == (1, "")
    _one_error_line(err, reason)


# --- check ----------------------------------------------------------------------


async def test_check_finds_an_update(
    server: standin.StandIn, standin_url: str, run: Run
) -> None:
    status, out, err = await run(standin_url, "check", "--firmware-version", "1.0.0")
    assert (status, out) == (0, "1.1.0\n")
    assert err == f"{PREFIX}firmware 1.1.0 is assigned (running 1.0.0)\n"
    assert server.requests == [("GET", "/firmware/check", "1.0.0", None)]


async def test_check_up_to_date(standin_url: str, run: Run) -> None:
    status, out, err = await run(standin_url, "check", "--firmware-version", "1.1.0")
    assert (status, out) == (3, "")
    assert err == f"{PREFIX}up to date (running 1.1.0)\n"


async def test_check_server_error(
    server: standin.StandIn, standin_url: str, run: Run
) -> None:
    server.attack = standin.SERVER_ERROR
    status, out, err = await run(standin_url, "check")
    assert (status, out) == (1, "")
    _one_error_line(err, "500")


# --- firmware -------------------------------------------------------------------


async def test_firmware_download(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    target = tmp_path / "firmware.bin"
    status, out, err = await run(standin_url, "firmware", "--out", str(target))
    assert (status, out) == (0, "1.1.0\n")
    assert err == (
        f"{PREFIX}firmware 1.1.0 written to {target} ({len(FIRMWARE)} bytes, sha256 ok)\n"
    )
    assert target.read_bytes() == FIRMWARE
    assert sorted(tmp_path.iterdir()) == [target]
    assert server.requests == [("GET", "/firmware", "0.0.0", None)]


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (standin.TAMPERED_BODY, "signature does not match"),
        (standin.WRONG_SIGNATURE, "signature does not match"),
        (standin.EXPIRED, "expired"),
        (standin.UNSIGNED, "not signed"),
        (standin.WRONG_SHA256, "SHA-256 does not match"),
        (standin.SERVER_ERROR, "500"),
    ],
)
async def test_firmware_attacks_leave_the_old_file(
    server: standin.StandIn,
    standin_url: str,
    run: Run,
    tmp_path: Path,
    attack: str,
    reason: str,
) -> None:
    """Nothing unverified replaces the target, and no partial file stays behind."""
    target = tmp_path / "firmware.bin"
    target.write_bytes(b"old firmware")
    server.attack = attack
    status, out, err = await run(standin_url, "firmware", "--out", str(target))
    assert (status, out) == (1, "")
    _one_error_line(err, reason)
    assert target.read_bytes() == b"old firmware"
    assert sorted(tmp_path.iterdir()) == [target]


async def test_firmware_cut_off_then_resumed(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    """A broken download keeps its bytes; the next run asks for the rest and verifies all."""
    target = tmp_path / "firmware.bin"
    partial = tmp_path / "firmware.bin.part"
    server.cut_after = 4000
    status, out, err = await run(standin_url, "firmware", "--out", str(target))
    assert (status, out) == (1, "")
    _one_error_line(
        err, f"4000 bytes kept in {partial}: run the command again to resume"
    )
    assert not target.exists()
    assert partial.read_bytes() == FIRMWARE[:4000]

    server.cut_after = None
    status, out, err = await run(standin_url, "firmware", "--out", str(target))
    assert (status, out) == (0, "1.1.0\n")
    assert "resumed at byte 4000" in err
    assert target.read_bytes() == FIRMWARE
    assert not partial.exists()
    assert [request[3] for request in server.requests] == [None, "bytes=4000-"]


async def test_firmware_resume_answered_with_the_whole_file(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    """A server that ignores Range answers 200: the download starts over."""
    target = tmp_path / "firmware.bin"
    (tmp_path / "firmware.bin.part").write_bytes(b"junk" * 100)
    server.honour_range = False
    status, _, err = await run(standin_url, "firmware", "--out", str(target))
    assert status == 0
    assert "resumed" not in err
    assert target.read_bytes() == FIRMWARE


@pytest.mark.parametrize(
    ("partial_content", "first_range"),
    [
        pytest.param(b"junk" * 100, "bytes=400-", id="stale-bytes"),
        pytest.param(FIRMWARE + b"more", f"bytes={len(FIRMWARE) + 4}-", id="too-long"),
    ],
)
async def test_firmware_bad_partial_is_discarded(
    server: standin.StandIn,
    standin_url: str,
    run: Run,
    tmp_path: Path,
    partial_content: bytes,
    first_range: str,
) -> None:
    """A resumed file that does not verify (or cannot be resumed) is fetched anew."""
    target = tmp_path / "firmware.bin"
    (tmp_path / "firmware.bin.part").write_bytes(partial_content)
    status, _, _ = await run(standin_url, "firmware", "--out", str(target))
    assert status == 0
    assert target.read_bytes() == FIRMWARE
    assert [request[3] for request in server.requests] == [first_range, None]
    assert sorted(tmp_path.iterdir()) == [target]


async def test_firmware_resume_attacked_twice(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    """A resume whose fresh retry fails too ends in an error, with nothing kept."""
    target = tmp_path / "firmware.bin"
    (tmp_path / "firmware.bin.part").write_bytes(FIRMWARE[:100])
    server.attack = standin.WRONG_SHA256
    status, _, err = await run(standin_url, "firmware", "--out", str(target))
    assert status == 1
    _one_error_line(err, "SHA-256 does not match")
    assert list(tmp_path.iterdir()) == []


async def test_firmware_none_assigned(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    server.firmware = None
    status, _, err = await run(
        standin_url, "firmware", "--out", str(tmp_path / "f.bin")
    )
    assert status == 1
    _one_error_line(
        err,
        f"404 Not Found from {standin_url}/firmware (wrong --server?): "
        "no firmware for this device",
    )


async def test_firmware_unwritable_target(
    standin_url: str, run: Run, tmp_path: Path
) -> None:
    target = tmp_path / "missing-folder" / "firmware.bin"
    status, _, err = await run(standin_url, "firmware", "--out", str(target))
    assert status == 1
    _one_error_line(err, "No such file or directory", str(target))


# --- certificate ----------------------------------------------------------------


def _paths(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    key_path, cert_path = tmp_path / "device.key", tmp_path / "device.pem"
    return (
        key_path,
        cert_path,
        ["--key-path", str(key_path), "--cert-path", str(cert_path)],
    )


def _load(cert_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def _public(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def test_certificate_first_time(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    """Without a key, one is made (0600); the certificate names the device and the key."""
    key_path, cert_path, flags = _paths(tmp_path)
    status, out, err = await run(standin_url, "certificate", *flags)
    assert (status, out) == (0, "")
    certificate = _load(cert_path)
    expires = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert err == (
        f"{PREFIX}created a new EC P-256 key in {key_path}\n"
        f"{PREFIX}certificate issued, expires {expires}, written to {cert_path}\n"
    )
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert cert_path.stat().st_mode & 0o777 == 0o644
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert _public(certificate.public_key()) == _public(key.public_key())
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [name.value for name in common_names] == [KEY_ID]
    assert [request[:2] for request in server.requests] == [
        ("POST", "/certificates/request")
    ]


@pytest.mark.parametrize(
    ("days_left", "renewed"),
    [
        pytest.param(29, True, id="expires-within-30-days"),
        pytest.param(31, False, id="expires-after-30-days"),
    ],
)
async def test_certificate_renewal_both_sides(
    server: standin.StandIn,
    standin_url: str,
    run: Run,
    tmp_path: Path,
    days_left: int,
    renewed: bool,
) -> None:
    """Renew only a certificate that expires within --renew-days (the original had it backwards)."""
    key_path, cert_path, flags = _paths(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    old = server.issue(key.public_key(), KEY_ID, timedelta(days=days_left))
    cert_path.write_bytes(old)

    status, _, err = await run(standin_url, "certificate", "--renew-days", "30", *flags)
    assert status == 0
    assert (cert_path.read_bytes() != old) is renewed
    assert bool(server.requests) is renewed
    if renewed:
        assert "certificate issued" in err
        assert _load(cert_path).not_valid_after_utc > datetime.now(UTC) + timedelta(
            days=300
        )
    else:
        assert "more than 30 days: not renewed" in err
    assert _public(_load(cert_path).public_key()) == _public(key.public_key())


async def test_certificate_for_another_key_is_replaced(
    server: standin.StandIn, standin_url: str, run: Run, tmp_path: Path
) -> None:
    """A certificate that does not match the key (here: a new key) is renewed at once."""
    key_path, cert_path, flags = _paths(tmp_path)
    other = ec.generate_private_key(ec.SECP256R1())
    cert_path.write_bytes(server.issue(other.public_key(), KEY_ID, timedelta(days=300)))
    status, _, err = await run(standin_url, "certificate", *flags)
    assert status == 0
    assert "created a new EC P-256 key" in err
    assert "certificate issued" in err
    assert _public(_load(cert_path).public_key()) != _public(other.public_key())


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (standin.TAMPERED_BODY, "signature does not match"),
        (standin.WRONG_SIGNATURE, "signature does not match"),
        (standin.EXPIRED, "expired"),
        (standin.SERVER_ERROR, "500"),
    ],
)
async def test_certificate_attacks_write_nothing(
    server: standin.StandIn,
    standin_url: str,
    run: Run,
    tmp_path: Path,
    attack: str,
    reason: str,
) -> None:
    key_path, cert_path, flags = _paths(tmp_path)
    server.attack = attack
    status, out, err = await run(standin_url, "certificate", *flags)
    assert (status, out) == (1, "")
    assert err.count("\n") == 2
    assert err.splitlines()[-1].startswith(f"{PREFIX}error: ")
    assert reason in err
    assert not cert_path.exists()
    assert key_path.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a key", "is not an unencrypted PEM private key"),
        (b"", "is not an unencrypted PEM private key"),
    ],
)
async def test_certificate_bad_key_file(
    standin_url: str, run: Run, tmp_path: Path, content: bytes, reason: str
) -> None:
    key_path, cert_path, flags = _paths(tmp_path)
    key_path.write_bytes(content)
    status, _, err = await run(standin_url, "certificate", *flags)
    assert status == 1
    _one_error_line(err, reason)
    assert key_path.read_bytes() == content


async def test_certificate_bad_certificate_file(
    standin_url: str, run: Run, tmp_path: Path
) -> None:
    _, cert_path, flags = _paths(tmp_path)
    cert_path.write_text("garbage")
    status, _, err = await run(standin_url, "certificate", *flags)
    assert status == 1
    assert "is not a PEM certificate" in err


async def test_certificate_unwritable_key_names_the_path(
    standin_url: str, run: Run, tmp_path: Path
) -> None:
    """A write error names the user's file, not the temporary file beside it."""
    key_path = tmp_path / "missing-folder" / "device.key"
    status, out, err = await run(
        standin_url, "certificate", "--key-path", str(key_path),
        "--cert-path", str(tmp_path / "device.pem"),
    )  # fmt: skip
    assert (status, out) == (1, "")
    _one_error_line(err, f"cannot write {key_path}: No such file or directory")
    assert ".device.key." not in err


async def test_certificate_needs_paths(standin_url: str, run: Run) -> None:
    status, _, err = await run(standin_url, "certificate")
    assert status == 1
    _one_error_line(err, "no --key-path")


def test_needs_renewal_boundaries(server: standin.StandIn) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = x509.load_pem_x509_certificate(
        server.issue(key.public_key(), KEY_ID, timedelta(days=10))
    )
    end = certificate.not_valid_after_utc
    within = timedelta(days=5)
    assert needs_renewal(None, key, end, within)
    assert needs_renewal(certificate, key, end - within, within)
    assert not needs_renewal(
        certificate, key, end - within - timedelta(seconds=1), within
    )
    other = ec.generate_private_key(ec.SECP256R1())
    assert needs_renewal(certificate, other, end - timedelta(days=9), within)


def test_issued_certificate_is_checked(server: standin.StandIn) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    good = server.issue(key.public_key(), KEY_ID, timedelta(days=1))
    assert hashlib.sha256(good).digest()
    accept_certificate(good, key, KEY_ID)
    with pytest.raises(ResponseRejected, match="another key"):
        accept_certificate(
            server.issue(other.public_key(), KEY_ID, timedelta(days=1)), key, KEY_ID
        )
    with pytest.raises(ResponseRejected, match="another device"):
        accept_certificate(
            server.issue(key.public_key(), "someone", timedelta(days=1)), key, KEY_ID
        )
    with pytest.raises(ResponseRejected, match="not a PEM certificate"):
        accept_certificate(b"-----BEGIN CERTIFICATE-----\nxx\n", key, KEY_ID)
