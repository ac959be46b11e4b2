"""The client's command line: parsing, settings precedence, usage errors, the installed command."""

from __future__ import annotations

import asyncio
from pathlib import Path
import socket
import sys

import pytest

from providore_client.cli import async_main, build_parser
from providore_client.errors import SettingsError
from providore_client.settings import Settings, read_config_file, resolve_settings

from .conftest import KEY_ID, SECRET_KEY

REPOSITORY = Path(__file__).parents[1]
SERVER = "http://127.0.0.1:9/api/providore"
ALL_VARIABLES = (
    "PROVIDORE_SERVER",
    "PROVIDORE_DEVICE_ID",
    "PROVIDORE_SECRET",
    "PROVIDORE_FIRMWARE_VERSION",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own PROVIDORE_* variables out of the tests."""
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _settings(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    args = build_parser().parse_args(argv)
    return resolve_settings(vars(args), environ or {}, getattr(args, "config", None))


def test_flags_before_and_after_the_command() -> None:
    before = _settings(["--server", SERVER, "--device-id", KEY_ID, "config"])
    after = _settings(["config", "--server", SERVER, "--device-id", KEY_ID])
    mixed = _settings(["--server", SERVER, "config", "--device-id", KEY_ID])
    assert before == after == mixed
    assert before.server == SERVER
    assert before.device_id == KEY_ID
    assert before.firmware_version == "0.0.0"


def test_precedence_flag_environment_file(tmp_path: Path) -> None:
    config = tmp_path / "client.yaml"
    config.write_text(
        "server: http://from-file/api/providore\n"
        "device_id: file-id\n"
        "secret: file-secret-0123456789\n"
        "firmware_version: 0.1.0\n"
        "cert_path: certs/device.pem\n"
        "key_path: /abs/device.key\n"
        "ca:\n"
    )
    environ = {
        "PROVIDORE_DEVICE_ID": "env-id",
        "PROVIDORE_SECRET": "env-secret-0123456789",
        "PROVIDORE_FIRMWARE_VERSION": "",
    }
    settings = _settings(
        ["check", "--config", str(config), "--secret", "flag-secret-0123456789"],
        environ,
    )
    assert settings == Settings(
        server="http://from-file/api/providore",
        device_id="env-id",
        secret="flag-secret-0123456789",
        firmware_version="0.1.0",
        ca=None,
        cert_path=tmp_path / "certs" / "device.pem",
        key_path=Path("/abs/device.key"),
    )
    flagged = _settings(
        [
            "--firmware-version",
            "9",
            "check",
            "--config",
            str(config),
            "--cert-path",
            "x.pem",
        ],
        {"PROVIDORE_FIRMWARE_VERSION": "2.0.0", "PROVIDORE_SERVER": "http://env/api"},
    )
    assert flagged.firmware_version == "9"
    assert flagged.server == "http://env/api"
    assert flagged.cert_path == Path("x.pem")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("server: [1, 2]\n", "server must be text: quote it"),
        # YAML would read these as the numbers 1.1 and 31: refused, never changed.
        ("firmware_version: 1.10\n", "firmware_version must be text: quote it"),
        ("device_id: 0x1F\n", "device_id must be text: quote it"),
        ("secret: true\n", "secret must be text: quote it"),
        ("- a\n- b\n", "must hold a mapping"),
        ("serveur: http://x\n", "unknown settings serveur"),
        ("server: 'http://x\n", "not valid YAML"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "client.yaml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=message):
        read_config_file(config)


def test_quoted_numbers_stay_as_written(tmp_path: Path) -> None:
    config = tmp_path / "client.yaml"
    config.write_text("firmware_version: '1.10'\ndevice_id: \"0x1F\"\n")
    assert read_config_file(config) == {"firmware_version": "1.10", "device_id": "0x1F"}


def test_accept_expiry_at_creation_is_off_unless_asked(tmp_path: Path) -> None:
    assert not _settings(["config"]).accept_expiry_at_creation
    assert _settings(
        ["--accept-expiry-at-creation", "config"]
    ).accept_expiry_at_creation
    assert _settings(
        ["config", "--accept-expiry-at-creation"]
    ).accept_expiry_at_creation
    config = tmp_path / "client.yaml"
    for written, expected in (("true", True), ("false", False), ("", False)):
        config.write_text(f"accept_expiry_at_creation: {written}\n")
        settings = _settings(["config", "--config", str(config)])
        assert settings.accept_expiry_at_creation is expected
    assert _settings(
        ["config", "--config", str(config), "--accept-expiry-at-creation"]
    ).accept_expiry_at_creation


@pytest.mark.parametrize("written", ["'yes'", "1", "'true'"])
def test_accept_expiry_at_creation_must_be_a_boolean(
    tmp_path: Path, written: str
) -> None:
    config = tmp_path / "client.yaml"
    config.write_text(f"accept_expiry_at_creation: {written}\n")
    with pytest.raises(SettingsError, match="must be true or false"):
        read_config_file(config)


@pytest.mark.parametrize("version", ["", "1.0 beta", "1.0\u00e9", "x" * 65])
async def test_firmware_version_the_server_would_refuse(
    capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """A version the protocol forbids is a settings error, before any request is made."""
    argv = ["config", "--server", SERVER, "--device-id", KEY_ID, "--secret", SECRET_KEY]
    assert await async_main([*argv, "--firmware-version", version]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "providore-client: error: the firmware version must be 1 to 64 printable ASCII "
        "characters without spaces\n"
    )


def test_check_help_says_the_answer_is_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the protocol does not sign this answer (302)" in help_text
    assert "only a hint" in help_text


def test_empty_and_missing_config_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}
    with pytest.raises(SettingsError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(), "no server"),
        (Settings(server="ftp://host/api"), "http:// or https://"),
        (Settings(server="http:///api"), "http:// or https://"),
        (Settings(server="http://h/api?x=1"), "query"),
        (Settings(server="http://user:pw@h/api"), "must not have a user or password"),
    ],
)
def test_bad_server(settings: Settings, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings.base_url()


def test_server_trailing_slash() -> None:
    assert Settings(server="https://h:8123/api/providore/").base_url() == (
        "https://h:8123/api/providore"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(secret=SECRET_KEY), "no device id"),
        (Settings(device_id=KEY_ID), "no secret"),
        (Settings(device_id="bad id", secret=SECRET_KEY), "device id must be"),
        (Settings(device_id=KEY_ID, secret="short"), "secret must be"),
    ],
)
def test_bad_credentials(settings: Settings, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings.credentials()


def test_missing_path() -> None:
    with pytest.raises(SettingsError, match="no --key-path"):
        Settings().path("key_path")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["firmware"], id="firmware-without-out"),
        pytest.param(["certificate", "--renew-days", "-1"], id="negative-days"),
        pytest.param(["certificate", "--renew-days", "soon"], id="words-days"),
        pytest.param(["simulate", "--devices", "0"], id="zero-devices"),
        pytest.param(["simulate", "--interval", "0"], id="zero-interval"),
        pytest.param(["simulate", "--interval", "often"], id="words-interval"),
        pytest.param(["simulate", "--once", "--rounds", "2"], id="once-and-rounds"),
    ],
)
async def test_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        await async_main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: providore-client" in captured.err


async def test_environment_is_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROVIDORE_SERVER", SERVER)
    monkeypatch.setenv("PROVIDORE_DEVICE_ID", KEY_ID)
    assert await async_main(["config"]) == 1
    assert capsys.readouterr().err.startswith("providore-client: error: no secret")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _run(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPOSITORY,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_module_unreachable_server_is_one_line(socket_enabled: None) -> None:
    """`python -m providore_client` against a closed port: status 1, one line, no traceback."""
    server = f"http://127.0.0.1:{_closed_port()}/api/providore"
    status, out, err = await _run(
        sys.executable, "-m", "providore_client", "config",
        "--server", server, "--device-id", KEY_ID, "--secret", SECRET_KEY,
    )  # fmt: skip
    assert status == 1
    assert out == ""
    assert err.startswith(f"providore-client: error: cannot reach {server}/config: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert SECRET_KEY not in err


async def test_installed_command() -> None:
    """scripts/setup installs the providore-client console command into the venv."""
    command = Path(sys.executable).parent / "providore-client"
    status, out, _ = await _run(str(command), "--version")
    assert status == 0
    assert out.startswith("providore-client ")
