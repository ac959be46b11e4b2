"""Simulated devices: event lines, firmware updates with reboots, certificates, failures.

Firmware and certificates come from the STAND-IN server in `standin_server.py` until
the integration serves them; the configuration also comes from the real integration.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import re
import signal
import sys
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from providore_client.cli import async_main
from providore_client.errors import SettingsError
from providore_client.simulator import load_devices

from . import standin_server as standin
from .conftest import KEY_ID, SECRET_KEY, loaded_runtime
from .device import BASE

DEVICES = [
    {"id": "garden-1", "secret": "garden-1-secret-0123456789", "firmware_type": "esp32s2-sensor", "version": "1.0.0"},
    {"id": "garden-2", "secret": "garden-2-secret-0123456789", "version": "1.1.0"},
    {"id": "garden-3", "secret": "garden-3-secret-0123456789"},
]  # fmt: skip
FIRMWARE = b"\x00simulated firmware\xff" * 100
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
UPDATE_ENTITY = "update.garden_sensor_firmware"


@pytest.fixture
def server() -> standin.StandIn:
    """Return a stand-in that knows the three devices; two have a document."""
    return standin.StandIn(
        secrets={device["id"]: device["secret"] for device in DEVICES},
        documents={"garden-1": {"interval": 5}, "garden-2": {"interval": 6}},
        firmware=FIRMWARE,
    )


@pytest.fixture
async def standin_url(
    server: standin.StandIn, aiohttp_client: Any, socket_enabled: None
) -> str:
    """Return the base URL of the stand-in server, served on a loopback port."""
    client = await aiohttp_client(server.app())
    return str(client.make_url(BASE))


@pytest.fixture
def devices_file(tmp_path: Path) -> Path:
    """Write the three devices to a YAML file."""
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        + "".join(
            "  - "
            + "\n    ".join(f"{key}: '{value}'" for key, value in device.items())
            + "\n"
            for device in DEVICES
        )
    )
    return path


async def _simulate(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[str]]:
    """Run the simulator; return its status and event lines (stderr must be empty)."""
    status = await async_main(["simulate", *argv])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out.splitlines()


def _events(lines: list[str], device: str) -> list[str]:
    return [
        line.removeprefix(f"{device} ")
        for line in lines
        if line.startswith(f"{device} ")
    ]


def _match(events: list[str], patterns: list[str]) -> None:
    assert len(events) == len(patterns), events
    for event, pattern in zip(events, patterns, strict=True):
        assert re.fullmatch(pattern, event), (event, pattern)


async def test_three_devices_one_round(
    server: standin.StandIn,
    standin_url: str,
    devices_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each device fetches its config, updates and reboots when needed, gets a certificate."""
    status, lines = await _simulate(
        capsys, "--server", standin_url, "--devices-file", str(devices_file),
        "--devices", "3", "--once", "--firmware-version", "0.9.0",
    )  # fmt: skip
    assert status == 0  # a device without a document is not a failure
    _match(
        _events(lines, "garden-1"),
        [
            r"started \(esp32s2-sensor, firmware 1\.0\.0\)",
            "config fetched",
            r"firmware 1\.1\.0 available",
            rf"firmware 1\.1\.0 downloaded \({len(FIRMWARE)} bytes, sha256 ok\)",
            r"rebooted into 1\.1\.0",
            "config fetched",
            "firmware up to date",
            f"certificate issued, expires {TIME}",
            "round 1 done",
        ],
    )
    _match(
        _events(lines, "garden-2"),
        [
            r"started \(simulated, firmware 1\.1\.0\)",
            "config fetched",
            "firmware up to date",
            f"certificate issued, expires {TIME}",
            "round 1 done",
        ],
    )
    garden_3 = _events(lines, "garden-3")
    assert garden_3[1:3] == ["config missing", "firmware 1.1.0 available"]
    assert garden_3[-1] == "round 1 done"
    assert garden_3[0] == "started (simulated, firmware 0.9.0)"
    assert len(lines) == 9 + 5 + 9
    # After the reboot garden-1 reports the new version.
    reported = [
        (path, version) for _, path, version, _ in server.requests if path == "/config"
    ]
    assert ("/config", "1.0.0") in reported
    assert ("/config", "1.1.0") in reported


async def test_failures_are_events_and_status(
    server: standin.StandIn,
    standin_url: str,
    devices_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.attack = standin.WRONG_SIGNATURE
    status, lines = await _simulate(
        capsys, "--server", standin_url, "--devices-file", str(devices_file),
        "--devices", "1", "--once",
    )  # fmt: skip
    assert status == 1
    assert lines == [
        "garden-1 started (esp32s2-sensor, firmware 1.0.0)",
        "garden-1 failed config: the answer's signature does not match",
        "garden-1 firmware 1.1.0 available",
        "garden-1 failed firmware: the answer's signature does not match",
        "garden-1 failed certificate: the answer's signature does not match",
        "garden-1 round 1 failed",
    ]


async def test_firmware_of_another_version_is_refused(
    server: standin.StandIn,
    standin_url: str,
    devices_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A download whose X-Firmware-Version is not the one asked for is never rebooted into."""
    server.attack = standin.WRONG_VERSION
    status, lines = await _simulate(
        capsys, "--server", standin_url, "--devices-file", str(devices_file),
        "--devices", "1", "--once",
    )  # fmt: skip
    assert status == 1
    _match(
        _events(lines, "garden-1"),
        [
            r"started \(esp32s2-sensor, firmware 1\.0\.0\)",
            "config fetched",
            r"firmware 1\.1\.0 available",
            r"failed firmware: the server sent firmware 1\.1\.0-other, "
            r"not the requested 1\.1\.0",
            f"certificate issued, expires {TIME}",
            "round 1 failed",
        ],
    )
    assert {version for _, _, version, _ in server.requests} == {"1.0.0"}


async def test_rounds_keep_the_certificate(
    server: standin.StandIn,
    standin_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One device from the flags; its second round keeps the certificate it got."""
    server.secrets[KEY_ID] = SECRET_KEY
    server.documents[KEY_ID] = {"a": 1}
    status, lines = await _simulate(
        capsys, "--server", standin_url, "--device-id", KEY_ID, "--secret", SECRET_KEY,
        "--firmware-version", "1.1.0", "--rounds", "2", "--interval", "0.01",
    )  # fmt: skip
    assert status == 0
    events = _events(lines, KEY_ID)
    _match(
        events,
        [
            r"started \(simulated, firmware 1\.1\.0\)",
            "config fetched",
            "firmware up to date",
            f"certificate issued, expires ({TIME})",
            "round 1 done",
            "config fetched",
            "firmware up to date",
            f"certificate valid until {TIME}",
            "round 2 done",
        ],
    )
    assert events[3].removeprefix("certificate issued, expires ") == events[
        7
    ].removeprefix("certificate valid until ")
    posts = [request for request in server.requests if request[0] == "POST"]
    assert len(posts) == 1


async def test_renewal_every_round_when_due(
    server: standin.StandIn,
    standin_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A certificate that expires within --renew-days is renewed in the next round."""
    server.secrets[KEY_ID] = SECRET_KEY
    server.documents[KEY_ID] = {}
    server.certificate_days = 5
    status, lines = await _simulate(
        capsys, "--server", standin_url, "--device-id", KEY_ID, "--secret", SECRET_KEY,
        "--rounds", "2", "--interval", "0.01", "--renew-days", "7",
    )  # fmt: skip
    assert status == 0
    issued = [line for line in lines if "certificate issued" in line]
    assert len(issued) == 2


async def test_simulated_device_against_the_integration(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A whole round against the real integration: config, update, reboot, certificate."""
    await loaded_runtime(hass).async_set_config(KEY_ID, {"interval": 1})
    build = Path(hass.config.path("demo.bin"))
    await hass.async_add_executor_job(build.write_bytes, b"\xe9" + bytes(300_000))
    await hass.services.async_call(
        "providore",
        "upload_firmware",
        {"firmware_type": "esp32s2-sensor", "version": "3.1.0", "path": "demo.bin"},
        blocking=True,
    )
    client = await hass_client_no_auth()
    # The device reports 3.0.0 once, so that Install has something to replace.
    status, lines = await _simulate(
        capsys, "--server", str(client.make_url(BASE)), "--device-id", KEY_ID,
        "--secret", SECRET_KEY, "--firmware-version", "3.0.0", "--once",
    )  # fmt: skip
    assert status == 0
    assert f"{KEY_ID} firmware up to date" in lines
    await hass.services.async_call(
        "update", "install", {"entity_id": UPDATE_ENTITY}, blocking=True
    )

    status, lines = await _simulate(
        capsys, "--server", str(client.make_url(BASE)), "--device-id", KEY_ID,
        "--secret", SECRET_KEY, "--firmware-version", "3.0.0", "--once",
    )  # fmt: skip
    assert status == 0
    assert lines[:5] == [
        f"{KEY_ID} started (simulated, firmware 3.0.0)",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} firmware 3.1.0 available",
        f"{KEY_ID} firmware 3.1.0 downloaded (300001 bytes, sha256 ok)",
        f"{KEY_ID} rebooted into 3.1.0",
    ]
    assert any(line.startswith(f"{KEY_ID} certificate issued") for line in lines)
    await hass.async_block_till_done()
    update = hass.states.get(UPDATE_ENTITY)
    assert update is not None
    assert update.state == "off"
    assert update.attributes["installed_version"] == "3.1.0"
    certificate = hass.states.get("sensor.garden_sensor_certificate")
    assert certificate is not None
    assert certificate.state == "valid"


async def test_too_few_devices(
    devices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await async_main(
        ["simulate", "--server", "http://127.0.0.1:9/api/providore",
         "--devices-file", str(devices_file), "--devices", "4"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert (status, captured.out) == (1, "")
    assert captured.err == (
        "providore-client: error: --devices 4 needs 4 devices, each with its own key, "
        "but only 3 are given (use --devices-file)\n"
    )


def test_json_devices_file(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(DEVICES))
    specs = load_devices(path, "0.0.1")
    assert [spec.device_id for spec in specs] == ["garden-1", "garden-2", "garden-3"]
    assert [spec.version for spec in specs] == ["1.0.0", "1.1.0", "0.0.1"]
    assert specs[0].firmware_type == "esp32s2-sensor"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{}", "must list at least one device"),
        ("[]", "must list at least one device"),
        ("- id: a\n", "needs an id and a secret"),
        ("- 12\n", "needs an id and a secret"),
        (
            "- {id: a, secret: abcdefghijklmnop, colour: red}\n",
            "unknown device fields colour",
        ),
        ("- {id: a, secret: abcdefghijklmnop, version: 1.10}\n", "must be text"),
        ("- {id: 'bad id', secret: abcdefghijklmnop}\n", "device id must be"),
        (
            "- {id: a, secret: abcdefghijklmnop, version: '1.0 beta'}\n",
            "firmware version must be 1 to 64 printable ASCII",
        ),
        (
            "- {id: a, secret: abcdefghijklmnop}\n- {id: a, secret: abcdefghijklmnop}\n",
            "twice",
        ),
        ("- [unclosed\n", "neither valid YAML nor JSON"),
    ],
)
def test_bad_devices_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_devices(path, "1.0.0")


def test_missing_devices_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_devices(tmp_path / "nope.yaml", "1.0.0")


async def test_script_waits_on_events_then_interrupts(
    server: standin.StandIn, standin_url: str, devices_file: Path
) -> None:
    """As a script would: run the command, wait for a round's line, stop it with Ctrl+C."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "providore_client", "simulate", "--server", standin_url,
        "--devices-file", str(devices_file), "--devices", "2", "--interval", "3600",
        cwd=Path(__file__).parents[1],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    while not {"garden-1 round 1 done", "garden-2 round 1 done"} <= set(seen):
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, seen
        seen.append(line.decode().rstrip("\n"))
    assert "garden-1 rebooted into 1.1.0" in seen
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 130
    assert err == b""
