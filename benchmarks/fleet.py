"""Benchmark: what Providore costs a real Home Assistant, with 1 and with many devices.

Run with `.venv/bin/python benchmarks/fleet.py` (10 to 15 minutes; `--quick` for a
small smoke run, `--rounds`, `--devices` to change the sizes). docs/development.md,
section Benchmarks, has the figures measured on the development machine (README.md,
section Performance, sums them up).

Every figure comes from real Home Assistant processes (`python -m homeassistant`
from this environment, started the way the demo starts them), each on a copy of one
onboarded configuration with Providore and the baseline integration of
`benchmarks/baseline_integration` (a trivial unauthenticated view and Home
Assistant's own static file path). The load comes from this process, on loopback,
over 8 keep-alive connections; Home Assistant's CPU time is read from
/proc/<pid>/stat before and after each batch. Each round measures, in turn:

1. a hub with 1 device: HA CPU per request and requests per second for signed
   `GET /config` against the trivial view; HA CPU per MiB for `GET /firmware` of a
   64 MiB build against the static path serving the same file;
2. a hub with the fleet (1,000 devices): its start-up time and settled RSS, then
   `GET /config` (rotating over every device) against the trivial view;
3. a hub with no device: its start-up time and RSS, devices added one by one
   through the subentry flow over REST, the fleet imported at once with
   `providore.import_devices`, and again devices added one by one: right after the
   import, and after a restart (on the settled hub, which the target is about).

Within a round the compared batches alternate (A B B A), and the report gives the
median and the spread over the rounds of each figure and of each ratio, against the
targets of issue 11. Missed targets are marked, not failed: the exit status is 0
whenever the measurement itself ran.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
import csv
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
import io
import json
import math
import os
from pathlib import Path
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.cli import until_signalled
from demo.home_assistant import (
    DEVELOP_CONFIGURATION,
    free_port,
    prepare_temporary_config,
    start_home_assistant,
    wait_until_running,
)
from demo.processes import stop_process
from demo.rest import HomeAssistantRest, Login, create_owner
from demo.waiting import Deadline, DemoError, wait_until
from providore_client.protocol import request_headers

DOMAIN = "providore"
BASELINE_INTEGRATION = (
    Path(__file__).resolve().parent / "baseline_integration" / "providore_benchmark"
)
TRIVIAL_PATH = "/api/providore_benchmark/trivial"
STATIC_PATH = "/providore_benchmark/static"
API = "/api/providore"
CA_PATH = f"{API}/certificates/ca.pem"
CONFIG_FLOW_PATH = "/api/config/config_entries/flow"
SUBENTRY_FLOW_PATH = "/api/config/config_entries/subentries/flow"

LOGIN = Login("benchmark", "benchmark-password")
# The hub's settings: an update waits a day for its reboot, so the assignment holds.
HUB_SETTINGS = {
    "max_clock_skew": 300,
    "max_request_lifetime": 900,
    "online_interval": 600,
    "update_timeout": 86400,
    "certificate_validity": 365,
}
FIRMWARE_TYPE = "bench-board"
RUNNING_VERSION = "1.0.0"
BUILD_VERSION = "2.0.0"
# Inside each config folder: the firmware file (also served by the static path), the CSV.
BENCH_FOLDER = "bench"
FIRMWARE_FILE = f"{BENCH_FOLDER}/firmware.bin"
IMPORT_FILE = f"{BENCH_FOLDER}/devices.csv"
BASELINE_CONFIGURATION = f"""
providore_benchmark:
  static_file: {FIRMWARE_FILE}
"""

CONNECTIONS = 8
MIB = 1024 * 1024
# A request's Expiry is at most this far after its Created-At (within the hub's
# max_request_lifetime); see signed_headers.
REQUEST_WINDOW = timedelta(seconds=300)
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
IMPORT_TIMEOUT = 600.0
STARTUP_POLL = 0.02
# RSS has settled when it moved less than this over RSS_SETTLED_SAMPLES samples.
RSS_TOLERANCE_MIB = 1.0
RSS_SETTLED_SAMPLES = 3
RSS_SAMPLE_INTERVAL = 1.0
RSS_SETTLE_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOG_TAIL = 30


class BenchmarkError(DemoError):
    """The measurement itself failed (not a missed target)."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each round does."""

    rounds: int
    devices: int
    # Requests per batch; each round sends two batches of each kind per hub.
    requests: int
    firmware_mib: int
    # Firmware downloads per batch (two batches per kind and round).
    downloads: int
    # Devices added through the subentry flow before and after the import.
    adds: int


FULL = Sizes(
    rounds=5, devices=1000, requests=5000, firmware_mib=64, downloads=16, adds=20
)
QUICK = Sizes(rounds=1, devices=20, requests=500, firmware_mib=16, downloads=4, adds=2)


# --- devices and their requests ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchDevice:
    """A device of the benchmark: its key, and the document /config serves it."""

    name: str
    key_id: str
    secret: str

    @classmethod
    def numbered(cls, prefix: str, number: int) -> BenchDevice:
        """Return device `number` of a series, with a random secret."""
        return cls(
            name=f"{prefix.capitalize()} {number:04d}",
            key_id=f"{prefix}{number:04d}",
            secret=secrets.token_urlsafe(24),
        )

    @property
    def document(self) -> dict[str, Any]:
        """Return the configuration document of the device."""
        return {
            "interval": 30,
            "mqtt": {"host": "broker.local", "topic": f"home/{self.key_id}"},
        }


def fleet(prefix: str, count: int) -> list[BenchDevice]:
    """Return `count` devices named after `prefix`."""
    return [BenchDevice.numbered(prefix, number) for number in range(count)]


# A device's requests in one batch differ by their Expiry second: this many in a row,
# then the next Created-At second.
WINDOW_STEPS = 240


def signed_headers(
    device: BenchDevice, path: str, now: datetime, index: int = 0
) -> dict[str, str]:
    """Return the authentication headers of a device's request `index` of a GET at `now`.

    Devices sign Created-At and Expiry in whole seconds (so a fleet's requests share
    them): request `index` is created `index // WINDOW_STEPS` seconds after `now` and
    expires `index % WINDOW_STEPS` seconds before the end of its window. No two of a
    device's requests carry the same signature, and none is older than the one before
    it, so Providore records each one.
    """
    return request_headers(
        key_id=device.key_id,
        secret=device.secret,
        method="GET",
        path=path,
        firmware_version=RUNNING_VERSION,
        now=now.replace(microsecond=0) + timedelta(seconds=index // WINDOW_STEPS),
        lifetime=REQUEST_WINDOW - timedelta(seconds=index % WINDOW_STEPS),
    )


def rotating_requests(
    devices: Sequence[BenchDevice], path: str, count: int
) -> list[dict[str, str]]:
    """Return `count` signed requests made now, taking the devices in turn."""
    now = datetime.now(UTC)
    return [
        signed_headers(
            devices[number % len(devices)], path, now, number // len(devices)
        )
        for number in range(count)
    ]


# --- configuration folders ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """An onboarded configuration with the hub entry, copied for every instance."""

    config_dir: Path
    token: str
    entry_id: str


def write_configuration(config_dir: Path, port: int) -> str:
    """Write configuration.yaml for a start on `port`; return the base URL.

    The development configuration, quieter (Providore's debug lines would cost CPU in
    the measurement), with the baselines' integration.
    """
    url = f"http://127.0.0.1:{port}"
    configuration = yaml.safe_load(DEVELOP_CONFIGURATION.read_text(encoding="utf-8"))
    configuration["homeassistant"] |= {
        "name": "Providore benchmark",
        "internal_url": url,
    }
    configuration["http"] |= {"server_host": "127.0.0.1", "server_port": port}
    configuration["logger"] = {"default": "warning"}
    text = yaml.safe_dump(configuration, sort_keys=False)
    (config_dir / "configuration.yaml").write_text(
        text + BASELINE_CONFIGURATION, encoding="utf-8"
    )
    return url


def copy_configuration(template: Template, config_dir: Path) -> None:
    """Copy the template's configuration folder (links kept) to `config_dir`."""
    shutil.copytree(template.config_dir, config_dir, symlinks=True)


def _write_store(config_dir: Path, key: str, data: Mapping[str, Any]) -> None:
    """Write a Home Assistant store file (version 1), readable only by its owner."""
    path = config_dir / ".storage" / key
    path.write_text(
        json.dumps({"version": 1, "minor_version": 1, "key": key, "data": data}),
        encoding="utf-8",
    )
    path.chmod(0o600)


def seed_devices(config_dir: Path, devices: Sequence[BenchDevice]) -> None:
    """Add devices to a stopped instance: subentries, secrets and documents.

    What the subentry flow and `providore.set_config` would have stored, written
    directly, so that a large fleet costs no set-up time.
    """
    entries_path = config_dir / ".storage" / "core.config_entries"
    entries = json.loads(entries_path.read_text(encoding="utf-8"))
    hub = next(e for e in entries["data"]["entries"] if e["domain"] == DOMAIN)
    hub["subentries"].extend(
        {
            "data": {
                "key_id": device.key_id,
                "firmware_type": FIRMWARE_TYPE,
                "certificate_usage": "client",
            },
            "subentry_id": secrets.token_hex(13),
            "subentry_type": "device",
            "title": device.name,
            "unique_id": device.key_id,
        }
        for device in devices
    )
    entries_path.write_text(json.dumps(entries), encoding="utf-8")
    _write_store(
        config_dir,
        f"{DOMAIN}.secrets",
        {device.key_id: device.secret for device in devices},
    )
    _write_store(
        config_dir,
        f"{DOMAIN}.documents",
        {device.key_id: {"default": device.document} for device in devices},
    )


# --- Home Assistant processes ---------------------------------------------------------


@dataclass(slots=True)
class HomeAssistantProcess:
    """A running Home Assistant, what it cost to start, and how to ask it things."""

    process: asyncio.subprocess.Process
    url: str
    session: aiohttp.ClientSession
    rest: HomeAssistantRest
    token: str
    # Seconds from starting the process until the device API answered.
    started_in: float

    def cpu_seconds(self) -> tuple[float, float]:
        """Return the CPU time the process used so far: (user + system, user)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text(encoding="ascii")
        fields = stat.rpartition(")")[2].split()
        # utime and stime are fields 14 and 15; the split starts at field 3.
        user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
        return user + system, user

    def rss_mib(self) -> float:
        """Return the resident set size of the process."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchmarkError("no VmRSS in /proc status")

    async def settled_rss_mib(self) -> float:
        """Return the RSS once it stops moving (after start-up work has ended)."""
        samples = [self.rss_mib()]
        deadline = time.monotonic() + RSS_SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            await asyncio.sleep(RSS_SAMPLE_INTERVAL)
            samples.append(self.rss_mib())
            recent = samples[-RSS_SETTLED_SAMPLES:]
            if (
                len(recent) == RSS_SETTLED_SAMPLES
                and max(recent) - min(recent) < RSS_TOLERANCE_MIB
            ):
                break
        return samples[-1]


@asynccontextmanager
async def _started(
    config_dir: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, aiohttp.ClientSession]]:
    """Start Home Assistant on `config_dir` and stop it when the block ends.

    Yields the process, its base URL and a session of 8 keep-alive connections; when
    the block fails, the end of Home Assistant's log says what happened.
    """
    url = write_configuration(config_dir, free_port())
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    log = config_dir / "console.log"
    async with aiohttp.ClientSession(connector=connector) as session:
        with log.open("ab") as console:
            process = await start_home_assistant(config_dir, console)
            try:
                yield process, url, session
            except BaseException:
                lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
                _say("\n".join(["Home Assistant's last lines:", *lines[-LOG_TAIL:]]))
                raise
            finally:
                await stop_process(process, STOP_TIMEOUT)


@asynccontextmanager
async def home_assistant(
    config_dir: Path, token: str
) -> AsyncIterator[HomeAssistantProcess]:
    """Run Home Assistant on `config_dir` until the block ends.

    It is ready once Providore's device API answers (the hub entry is loaded, every
    entity of its devices added) and Home Assistant reports it is running.
    """
    started = time.monotonic()
    async with _started(config_dir) as (process, url, session):
        await _wait_for_device_api(session, url, process)
        instance = HomeAssistantProcess(
            process=process,
            url=url,
            session=session,
            rest=HomeAssistantRest(session, url, token),
            token=token,
            started_in=time.monotonic() - started,
        )
        await wait_until_running(instance.rest, Deadline(START_TIMEOUT))
        yield instance


async def _wait_for_device_api(
    session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    """Wait until the device API answers: the CA certificate is served once loaded."""

    async def answering() -> bool:
        if process.returncode is not None:
            raise BenchmarkError(f"Home Assistant exited with {process.returncode}")
        try:
            async with session.get(f"{url}{CA_PATH}") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    deadline = time.monotonic() + START_TIMEOUT
    while not await answering():
        if time.monotonic() > deadline:
            raise BenchmarkError("Home Assistant's device API did not answer")
        await asyncio.sleep(STARTUP_POLL)


async def _socket_command(
    session: aiohttp.ClientSession, url: str, token: str, command: dict[str, Any]
) -> Any:
    """Send one command over Home Assistant's websocket API; return its result."""
    async with session.ws_connect(f"{url}/api/websocket") as socket:
        await _socket_login(socket, token)
        await socket.send_json({"id": 1, **command})
        answer = await socket.receive_json()
    if not answer.get("success"):
        raise BenchmarkError(f"{command['type']} failed: {answer}")
    return answer["result"]


async def _socket_login(socket: aiohttp.ClientWebSocketResponse, token: str) -> None:
    await socket.receive_json()  # auth_required
    await socket.send_json({"type": "auth", "access_token": token})
    if (answer := await socket.receive_json()).get("type") != "auth_ok":
        raise BenchmarkError(f"websocket login refused: {answer}")


class EntityWatch:
    """Counts the entities Home Assistant adds (their first state), as its websocket says.

    For a few devices at a time: thousands of events at once overwhelm the websocket
    API, which then drops the client.
    """

    def __init__(self) -> None:
        """Start at zero."""
        self.added = 0
        self._changed = asyncio.Event()

    @classmethod
    @asynccontextmanager
    async def following(
        cls, instance: HomeAssistantProcess
    ) -> AsyncIterator[EntityWatch]:
        """Count the entities added while the block runs."""
        async with instance.session.ws_connect(
            f"{instance.url}/api/websocket"
        ) as socket:
            await _socket_login(socket, instance.token)
            await socket.send_json(
                {"id": 1, "type": "subscribe_events", "event_type": "state_changed"}
            )
            if not (await socket.receive_json()).get("success"):
                raise BenchmarkError("cannot follow state changes")
            watch = cls()
            follower = asyncio.create_task(watch._follow(socket))
            try:
                yield watch
            finally:
                follower.cancel()

    async def _follow(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for message in socket:
            data = message.json()
            if (
                data.get("type") == "event"
                and data["event"]["data"]["old_state"] is None
            ):
                self.added += 1
                self._changed.set()

    async def wait_for(self, count: int) -> None:
        """Wait until `count` entities were added in all."""
        while self.added < count:
            self._changed.clear()
            await self._changed.wait()


# --- preparation ----------------------------------------------------------------------


async def prepare_template(config_dir: Path) -> Template:
    """Onboard a new instance, add the hub, and keep a long-lived token for the rest."""
    config_dir.mkdir()
    # For the link to Providore; each start writes configuration.yaml again.
    prepare_temporary_config(config_dir, "http://127.0.0.1", 0, "Providore benchmark")
    (config_dir / "custom_components" / "providore_benchmark").symlink_to(
        BASELINE_INTEGRATION
    )
    (config_dir / BENCH_FOLDER).mkdir()
    async with _started(config_dir) as (process, url, session):
        await _wait_for_onboarding(session, url, process)
        # Only the owner: the other onboarding steps add integrations of their own.
        access = await create_owner(session, url, LOGIN)
        rest = HomeAssistantRest(session, url, access)
        await wait_until_running(rest, Deadline(START_TIMEOUT))
        entry = await rest.finish_flow(
            CONFIG_FLOW_PATH, {"handler": DOMAIN}, HUB_SETTINGS
        )
        token: str = await _socket_command(
            session,
            url,
            access,
            {
                "type": "auth/long_lived_access_token",
                "client_name": "Providore benchmark",
                "lifespan": 7,
            },
        )
    return Template(config_dir, token, entry["result"]["entry_id"])


async def _wait_for_onboarding(
    session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    """Wait until a new instance's HTTP server answers (Providore is not set up yet)."""

    async def answering() -> bool:
        if process.returncode is not None:
            raise BenchmarkError(f"Home Assistant exited with {process.returncode}")
        try:
            async with session.get(f"{url}/api/onboarding") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until("Home Assistant to answer", answering, Deadline(START_TIMEOUT))


def write_firmware(config_dir: Path, size_mib: int) -> None:
    """Write a random firmware file of `size_mib` MiB into the config folder."""
    with (config_dir / FIRMWARE_FILE).open("wb") as file:
        for _ in range(size_mib):
            file.write(os.urandom(MIB))


async def prepare_small_hub(
    template: Template,
    config_dir: Path,
    device: BenchDevice,
    sizes: Sizes,
) -> int:
    """Make the hub with one device and an assigned build; return entities per device.

    The device downloads the build once: later downloads follow no progress, as in
    every round.
    """
    copy_configuration(template, config_dir)
    seed_devices(config_dir, [device])
    await asyncio.to_thread(write_firmware, config_dir, sizes.firmware_mib)
    async with home_assistant(config_dir, template.token) as instance:
        await instance.rest.call_service(
            DOMAIN,
            "upload_firmware",
            {
                "firmware_type": FIRMWARE_TYPE,
                "version": BUILD_VERSION,
                "path": FIRMWARE_FILE,
            },
        )
        entities: list[str] = json.loads(
            await _render(
                instance, "{{ integration_entities('providore') | list | tojson }}"
            )
        )
        update = next(entity for entity in entities if entity.startswith("update."))
        await instance.rest.call_service("update", "install", {"entity_id": update})
        await send_downloads(
            instance,
            f"{API}/firmware",
            [signed_headers(device, "/firmware", datetime.now(UTC))],
            sizes.firmware_mib,
        )
    return len(entities)


async def prepare_fleet_hub(
    template: Template, config_dir: Path, devices: Sequence[BenchDevice]
) -> None:
    """Make the hub with the fleet, and start it once to fill Home Assistant's registries.

    The starts measured later are then ordinary restarts, not first starts.
    """
    copy_configuration(template, config_dir)
    seed_devices(config_dir, devices)
    async with home_assistant(config_dir, template.token):
        pass


def write_device_list(config_dir: Path, devices: Sequence[BenchDevice]) -> None:
    """Write the CSV `providore.import_devices` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("name", "key_id", "secret_key", "firmware_type"))
    writer.writerows(
        (device.name, device.key_id, device.secret, FIRMWARE_TYPE) for device in devices
    )
    (config_dir / IMPORT_FILE).write_text(out.getvalue(), encoding="utf-8")


async def _render(instance: HomeAssistantProcess, template: str) -> str:
    """Render a template in Home Assistant (the answer is text, not JSON)."""
    async with instance.session.post(
        f"{instance.url}/api/template",
        json={"template": template},
        headers={"Authorization": f"Bearer {instance.token}"},
    ) as response:
        if response.status != 200:
            raise BenchmarkError(f"POST /api/template answered {response.status}")
        return await response.text()


# --- measurements ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """What a batch cost Home Assistant (CPU and user CPU seconds), units done, wall time."""

    cpu: float
    user: float
    units: float
    wall: float

    def __add__(self, other: Load) -> Load:
        """Return the cost of both batches together."""
        return Load(
            self.cpu + other.cpu,
            self.user + other.user,
            self.units + other.units,
            self.wall + other.wall,
        )

    @property
    def cpu_per_unit(self) -> float:
        """Return Home Assistant's CPU seconds (user and system) per unit."""
        return self.cpu / self.units

    @property
    def user_per_unit(self) -> float:
        """Return Home Assistant's user CPU seconds per unit (its Python work)."""
        return self.user / self.units

    @property
    def rate(self) -> float:
        """Return units per wall-clock second."""
        return self.units / self.wall


async def _measured(
    instance: HomeAssistantProcess, units: float, work: Callable[[], Awaitable[None]]
) -> Load:
    """Run `work` and return what it cost Home Assistant."""
    (cpu, user), started = instance.cpu_seconds(), time.perf_counter()
    await work()
    wall = time.perf_counter() - started
    cpu_after, user_after = instance.cpu_seconds()
    return Load(cpu_after - cpu, user_after - user, units, wall)


async def send_requests(
    instance: HomeAssistantProcess, path: str, requests: Sequence[Mapping[str, str]]
) -> Load:
    """GET `path` once per header set over 8 keep-alive connections; every answer is 200."""
    pending = iter(requests)
    statuses: Counter[int] = Counter()
    url = f"{instance.url}{path}"

    async def connection() -> None:
        for headers in pending:
            async with instance.session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1

    async def work() -> None:
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))

    load = await _measured(instance, len(requests), work)
    if statuses != Counter({200: len(requests)}):
        raise BenchmarkError(f"GET {path} answered {dict(statuses)}")
    return load


async def send_downloads(
    instance: HomeAssistantProcess,
    path: str,
    requests: Sequence[Mapping[str, str]],
    size_mib: int,
) -> Load:
    """Download a file once per header set, one after the other; units are MiB."""
    url = f"{instance.url}{path}"

    async def work() -> None:
        for headers in requests:
            async with instance.session.get(url, headers=headers) as response:
                received = 0
                while chunk := await response.content.readany():
                    received += len(chunk)
            if response.status != 200 or received != size_mib * MIB:
                raise BenchmarkError(f"GET {path}: {response.status}, {received} bytes")

    return await _measured(instance, len(requests) * size_mib, work)


async def alternate(
    first: Callable[[], Awaitable[Load]], second: Callable[[], Awaitable[Load]]
) -> tuple[Load, Load]:
    """Run two kinds of batch as A B B A; return each kind's total."""
    a1 = await first()
    b1 = await second()
    b2 = await second()
    a2 = await first()
    return a1 + a2, b1 + b2


async def measure_one_device(
    template: Template,
    config_dir: Path,
    device: BenchDevice,
    sizes: Sizes,
) -> dict[str, float]:
    """Signed /config against the trivial view, /firmware against the static path."""
    config_path, firmware_path = f"{API}/config", f"{API}/firmware"
    async with home_assistant(config_dir, template.token) as instance:
        # The first download after a start signs the whole file; later ones reuse it.
        first = await send_downloads(
            instance,
            firmware_path,
            [signed_headers(device, "/firmware", datetime.now(UTC))],
            sizes.firmware_mib,
        )
        await send_requests(instance, TRIVIAL_PATH, [{}] * sizes.requests)
        await send_requests(
            instance,
            config_path,
            rotating_requests([device], "/config", sizes.requests),
        )
        trivial, config = await alternate(
            lambda: send_requests(instance, TRIVIAL_PATH, [{}] * sizes.requests),
            lambda: send_requests(
                instance,
                config_path,
                rotating_requests([device], "/config", sizes.requests),
            ),
        )
        static, firmware = await alternate(
            lambda: send_downloads(
                instance, STATIC_PATH, [{}] * sizes.downloads, sizes.firmware_mib
            ),
            lambda: send_downloads(
                instance,
                firmware_path,
                [
                    signed_headers(device, "/firmware", datetime.now(UTC))
                    for _ in range(sizes.downloads)
                ],
                sizes.firmware_mib,
            ),
        )
    return {
        "trivial_us_1": trivial.cpu_per_unit * 1e6,
        "config_us_1": config.cpu_per_unit * 1e6,
        "trivial_rps_1": trivial.rate,
        "config_rps_1": config.rate,
        "static_ms_mib": static.cpu_per_unit * 1e3,
        "firmware_ms_mib": firmware.cpu_per_unit * 1e3,
        "static_user_ms_mib": static.user_per_unit * 1e3,
        "firmware_user_ms_mib": firmware.user_per_unit * 1e3,
        "static_mibps": static.rate,
        "firmware_mibps": firmware.rate,
        "first_download_ms": first.cpu * 1e3,
        "download_ms": firmware.cpu_per_unit * sizes.firmware_mib * 1e3,
    }


async def measure_fleet(
    template: Template,
    config_dir: Path,
    devices: Sequence[BenchDevice],
    sizes: Sizes,
) -> dict[str, float]:
    """Start-up and RSS of the hub with the fleet; /config across the fleet."""
    config_path = f"{API}/config"
    async with home_assistant(config_dir, template.token) as instance:
        figures = {
            "startup_n": instance.started_in,
            "rss_n": await instance.settled_rss_mib(),
        }
        # Every device once: its key is prepared on its first request.
        await send_requests(
            instance, config_path, rotating_requests(devices, "/config", len(devices))
        )
        await send_requests(instance, TRIVIAL_PATH, [{}] * sizes.requests)
        trivial, config = await alternate(
            lambda: send_requests(instance, TRIVIAL_PATH, [{}] * sizes.requests),
            lambda: send_requests(
                instance,
                config_path,
                rotating_requests(devices, "/config", sizes.requests),
            ),
        )
    return figures | {
        "trivial_us_n": trivial.cpu_per_unit * 1e6,
        "config_us_n": config.cpu_per_unit * 1e6,
        "trivial_rps_n": trivial.rate,
        "config_rps_n": config.rate,
    }


async def add_devices(
    instance: HomeAssistantProcess,
    entry_id: str,
    devices: Sequence[BenchDevice],
    entities_per_device: int,
) -> float:
    """Add devices one by one through the subentry flow; return ms per add.

    An add ends when every entity of the new device has its first state.
    """
    async with EntityWatch.following(instance) as watch:
        started = time.perf_counter()
        for device in devices:
            expected = watch.added + entities_per_device
            await instance.rest.finish_flow(
                SUBENTRY_FLOW_PATH,
                {"handler": [entry_id, "device"]},
                {
                    "name": device.name,
                    "key_id": device.key_id,
                    "secret_key": device.secret,
                    "firmware_type": FIRMWARE_TYPE,
                },
                menu_choice="existing_key",
            )
            async with asyncio.timeout(START_TIMEOUT):
                await watch.wait_for(expected)
        return (time.perf_counter() - started) / len(devices) * 1e3


async def entity_count(instance: HomeAssistantProcess) -> int:
    """Return how many entities Providore has added."""
    return int(
        await _render(instance, "{{ integration_entities('providore') | count }}")
    )


async def import_devices(
    instance: HomeAssistantProcess, count: int, entities_per_device: int
) -> tuple[float, float]:
    """Import the device list; return the seconds until the action answered.

    And the seconds until every entity of every imported device was added (polled:
    the websocket API drops a client that thousands of events overwhelm).
    """
    expected = await entity_count(instance) + count * entities_per_device
    started = time.perf_counter()
    answer = await instance.rest.service_response(
        DOMAIN, "import_devices", {"path": IMPORT_FILE}
    )
    answered = time.perf_counter() - started
    if len(answer["devices"]) != count:
        raise BenchmarkError(f"imported {len(answer['devices'])} of {count} devices")

    async def every_entity_added() -> bool:
        return await entity_count(instance) >= expected

    await wait_until(
        "the imported devices' entities", every_entity_added, Deadline(IMPORT_TIMEOUT)
    )
    return answered, time.perf_counter() - started


async def measure_enrolment(
    template: Template, config_dir: Path, sizes: Sizes, entities_per_device: int
) -> dict[str, float]:
    """Start-up and RSS of an empty hub; adds, the import, adds with the fleet there.

    Adds with the fleet are measured twice: right after the import, while Home
    Assistant still records and saves what it did, and after a restart, on a settled
    hub, as a user adds a device to the fleet they have.
    """
    copy_configuration(template, config_dir)
    write_device_list(config_dir, fleet("imported", sizes.devices))
    try:
        async with home_assistant(config_dir, template.token) as instance:
            figures = {
                "startup_0": instance.started_in,
                "rss_0": await instance.settled_rss_mib(),
            }
            figures["add_ms_0"] = await add_devices(
                instance,
                template.entry_id,
                fleet("early", sizes.adds),
                entities_per_device,
            )
            answered, complete = await import_devices(
                instance, sizes.devices, entities_per_device
            )
            figures["add_ms_n_busy"] = await add_devices(
                instance,
                template.entry_id,
                fleet("busy", sizes.adds),
                entities_per_device,
            )
        async with home_assistant(config_dir, template.token) as instance:
            await instance.settled_rss_mib()
            figures["add_ms_n"] = await add_devices(
                instance,
                template.entry_id,
                fleet("late", sizes.adds),
                entities_per_device,
            )
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    return figures | {"import_answered_s": answered, "import_s": complete}


# --- the run and its report -------------------------------------------------------------


def _say(message: str) -> None:
    """Report progress (on stderr: stdout holds only the report)."""
    print(f"[fleet] {message}", file=sys.stderr, flush=True)


async def run(sizes: Sizes) -> list[dict[str, float]]:
    """Prepare the instances, then measure every round; return each round's figures."""
    workdir = Path(tempfile.mkdtemp(prefix="providore-fleet-"))
    try:
        _say(f"preparing in {workdir}")
        template = await prepare_template(workdir / "template")
        device = BenchDevice.numbered("single", 0)
        entities_per_device = await prepare_small_hub(
            template, workdir / "one", device, sizes
        )
        devices = fleet("fleet", sizes.devices)
        await prepare_fleet_hub(template, workdir / "fleet", devices)
        rounds: list[dict[str, float]] = []
        for number in range(1, sizes.rounds + 1):
            _say(f"round {number} of {sizes.rounds}")
            figures = await measure_one_device(template, workdir / "one", device, sizes)
            figures |= await measure_fleet(template, workdir / "fleet", devices, sizes)
            figures |= await measure_enrolment(
                template, workdir / f"empty-{number}", sizes, entities_per_device
            )
            rounds.append(with_ratios(figures))
            _say("  ".join(f"{key} {value:.4g}" for key, value in rounds[-1].items()))
        return rounds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def with_ratios(figures: dict[str, float]) -> dict[str, float]:
    """Add the round's ratios and differences to its figures."""
    return figures | {
        "config_vs_trivial_1": _ratio(figures["config_us_1"], figures["trivial_us_1"]),
        "config_vs_trivial_n": _ratio(figures["config_us_n"], figures["trivial_us_n"]),
        "config_n_vs_1": _ratio(figures["config_us_n"], figures["config_us_1"]),
        "firmware_vs_static": _ratio(
            figures["firmware_ms_mib"], figures["static_ms_mib"]
        ),
        "firmware_vs_static_user": _ratio(
            figures["firmware_user_ms_mib"], figures["static_user_ms_mib"]
        ),
        "signing_ms": figures["first_download_ms"] - figures["download_ms"],
        "startup_delta": figures["startup_n"] - figures["startup_0"],
        "rss_delta": figures["rss_n"] - figures["rss_0"],
    }


def _ratio(numerator: float, denominator: float) -> float:
    """Return the ratio; NaN when the CPU time was below the clock's resolution."""
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True, slots=True)
class Row:
    """A line of the report: one figure of every round, with its unit and target."""

    key: str
    label: str
    unit: str
    digits: int
    # The median must stay below this (or at it, when `inclusive`); None: no target.
    limit: float | None = None
    inclusive: bool = True


def rows(sizes: Sizes) -> list[Row]:
    """Return the report's lines: the figures, then the ratios against their targets."""
    n = f"{sizes.devices:,} devices"
    per_mib, user_per_mib = "HA CPU per MiB", "HA user CPU per MiB"
    return [
        Row("trivial_us_1", "HA CPU per request, trivial view, 1 device", "us", 0),
        Row("config_us_1", "HA CPU per request, signed /config, 1 device", "us", 0),
        Row("trivial_us_n", f"HA CPU per request, trivial view, {n}", "us", 0),
        Row("config_us_n", f"HA CPU per request, signed /config, {n}", "us", 0),
        Row("trivial_rps_1", "requests per second, trivial view, 1 device", "/s", 0),
        Row("config_rps_1", "requests per second, signed /config, 1 device", "/s", 0),
        Row("trivial_rps_n", f"requests per second, trivial view, {n}", "/s", 0),
        Row("config_rps_n", f"requests per second, signed /config, {n}", "/s", 0),
        Row("static_ms_mib", f"{per_mib}, static path", "ms", 3),
        Row("firmware_ms_mib", f"{per_mib}, GET /firmware", "ms", 3),
        Row("static_user_ms_mib", f"{user_per_mib}, static path", "ms", 3),
        Row("firmware_user_ms_mib", f"{user_per_mib}, GET /firmware", "ms", 3),
        Row("static_mibps", "download rate, static path", "MiB/s", 0),
        Row("firmware_mibps", "download rate, GET /firmware", "MiB/s", 0),
        Row("signing_ms", "extra HA CPU, first /firmware after a start", "ms", 0),
        Row("startup_0", "start-up, no device", "s", 2),
        Row("startup_n", f"start-up, {n}", "s", 2),
        Row("rss_0", "settled RSS, no device", "MiB", 0),
        Row("rss_n", f"settled RSS, {n}", "MiB", 0),
        Row("add_ms_n_busy", f"add a device, {n}, right after the import", "ms", 0),
        Row("import_answered_s", f"import {n}: until the action answers", "s", 2),
        # No target: the share of user space, steadier than kernel time on loopback.
        Row("firmware_vs_static_user", "GET /firmware / static path, user CPU", "x", 2),
        Row("config_vs_trivial_1", "signed /config / trivial, 1 device", "x", 2, 1.25),
        Row("config_vs_trivial_n", f"signed /config / trivial, {n}", "x", 2, 1.25),
        # "The same with 1,000 devices as with 1": the same within 10 %.
        Row("config_n_vs_1", f"signed /config, {n} / 1 device", "x", 2, 1.10),
        Row("firmware_vs_static", "GET /firmware / static path, CPU", "x", 2, 1.5),
        Row("add_ms_0", "add a device (subentry flow), empty hub", "ms", 0, 100, False),
        Row("add_ms_n", f"add a device (subentry flow), {n}", "ms", 0, 100, False),
        Row("import_s", f"import {n}: until every entity exists", "s", 1, 60, False),
        Row("startup_delta", f"start-up, {n} minus none", "s", 2, 1, False),
        Row("rss_delta", f"settled RSS, {n} minus none", "MiB", 0, 50, False),
    ]


def report(sizes: Sizes, rounds: Sequence[Mapping[str, float]]) -> str:
    """Return the table of medians and spreads, each target marked met or missed."""
    lines = [
        f"Providore fleet benchmark: {len(rounds)} round(s), {sizes.devices:,} devices, "
        f"{sizes.firmware_mib} MiB firmware, {CONNECTIONS} connections, "
        f"{os.cpu_count()} CPUs",
        "",
        f"{'figure':<50} {'median':>14} {'min - max':>17}  target",
    ]
    for row in rows(sizes):
        values = [v for figures in rounds if not math.isnan(v := figures[row.key])]
        if not values:
            lines.append(f"{row.label:<50} {'n/a':>14}")
            continue
        median = statistics.median(values)
        spread = f"{min(values):.{row.digits}f} - {max(values):.{row.digits}f}"
        target = ""
        if row.limit is not None:
            met = median <= row.limit if row.inclusive else median < row.limit
            target = (
                f"{'<=' if row.inclusive else '<'} {row.limit:g} {row.unit}: "
                f"{'met' if met else 'MISSED'}"
            )
        lines.append(
            f"{row.label:<50} {f'{median:.{row.digits}f} {row.unit}':>14}"
            f" {spread:>17}  {target}"
        )
    return "\n".join(lines)


def parse_sizes(argv: Sequence[str] | None = None) -> Sizes:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="rounds to run (default 5; 1 quick)")
    parser.add_argument(
        "--devices", type=int, help="fleet size (default 1000; 20 quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of every step"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = replace(sizes, rounds=args.rounds)
    if args.devices is not None:
        sizes = replace(sizes, devices=args.devices)
    if sizes.rounds < 1 or sizes.devices < 1:
        parser.error("--rounds and --devices must be at least 1")
    return sizes


async def measure_and_report(sizes: Sizes) -> int:
    """Run every round and print the report; 1 only when the measurement failed."""
    try:
        rounds = await run(sizes)
    except (DemoError, aiohttp.ClientError, OSError, TimeoutError) as err:
        _say(f"the measurement failed: {err}")
        return 1
    print(report(sizes, rounds))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Measure; a signal stops every Home Assistant started and exits with 130."""
    return asyncio.run(until_signalled(measure_and_report(parse_sizes(argv))))


if __name__ == "__main__":
    sys.exit(main())
