"""`./scripts/demo --check`: the demo, headless, on a fresh temporary Home Assistant.

It sets up the demo, lets the simulated devices provision themselves, changes one
device's configuration with `providore.set_config` (which a push notice must bring to
the device within seconds, timed from the call to its "config fetched"), installs the
new firmware through `update.install` on one device and on the ESPHome device, then
rolls it out to the other eleven devices in waves with `providore.start_rollout`. It
passes only when every device has fetched its configuration and holds a certificate,
both updated ones run the new version, as seen both in the devices' events and over
Home Assistant's REST API, and the rollout completed with every device on the new
version; and when Home Assistant stayed clean: no failed config entry, no repair issue,
and, once it has stopped, no error or traceback in its log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
import shutil
import socket
import sys
import tempfile
import time

import aiohttp

from .events import DeviceEvents
from .health import entry_problems, log_problems, repair_problems
from .home_assistant import (
    free_port,
    prepare_temporary_config,
    skip_core_config_onboarding,
    start_home_assistant,
    wait_until_answering,
    wait_until_running,
)
from .processes import stop_process
from .rest import HomeAssistantRest, Login, onboard
from .scenario import (
    DEMO_DEVICES,
    DOMAIN,
    ESPHOME_DEVICE,
    NEW_VERSION,
    ROLLOUT,
    ROLLOUT_SENSOR,
    devices_file,
    esphome_devices_file,
    set_up_demo,
    start_demo_rollout,
)
from .simulator import Simulator
from .waiting import Deadline, DemoError, wait_until

CHECK_TIMEOUT = 110.0
CHECK_INTERVAL = 2.0
# A push notice must bring a change to a device within this many seconds.
PUSH_LIMIT = 5.0
HOME_ASSISTANT_STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 40
CHECK_LOGIN = Login("demo-check", "demo-check-password")

type Outcome = Callable[[], Awaitable[list[str]]]


async def run_check() -> int:
    """Run the check; return 0 when the demo works, 1 when something is missing."""
    started = time.monotonic()
    deadline = Deadline(CHECK_TIMEOUT)
    config_dir = Path(tempfile.mkdtemp(prefix="providore-demo-check-"))
    events: DeviceEvents | None = None
    try:
        async with AsyncExitStack() as stack:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            prepare_temporary_config(config_dir, url, port)
            skip_core_config_onboarding(config_dir)
            console = stack.enter_context((config_dir / "console.log").open("wb"))
            hass = await start_home_assistant(config_dir, console)
            stack.push_async_callback(stop_process, hass, HOME_ASSISTANT_STOP_TIMEOUT)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            _say(f"Home Assistant starting at {url} on {config_dir}")
            await wait_until_answering(session, url, hass, deadline)
            rest = HomeAssistantRest(
                session, url, await onboard(session, url, CHECK_LOGIN)
            )
            await wait_until_running(rest, deadline)
            notice_port = free_port(socket.SOCK_DGRAM)
            await set_up_demo(rest, config_dir, notice_port)
            _say(
                "demo set up: Providore, twelve devices, an ESPHome device, firmware "
                + NEW_VERSION
            )
            simulator = await Simulator.start(
                url,
                devices_file(config_dir),
                esphome_devices_file(config_dir),
                CHECK_INTERVAL,
                _say,
                notice_port,
            )
            stack.push_async_callback(simulator.stop)
            events = simulator.events
            await _drive_update(rest, events, deadline)
            await _drive_rollout(rest, events, deadline)
            problems = await entry_problems(rest) + await repair_problems(rest)
        # Home Assistant has stopped: its log is complete.
        problems += log_problems(_read_log(config_dir / "home-assistant.log"))
        if problems:
            raise _DetailedError("Home Assistant is not clean", problems, "problem")
    except (DemoError, aiohttp.ClientError, OSError) as err:
        _report_failure(err, events, config_dir)
        return 1
    else:
        _say(f"demo check passed in {time.monotonic() - started:.0f} s")
        return 0
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


async def _drive_update(
    rest: HomeAssistantRest, events: DeviceEvents, deadline: Deadline
) -> None:
    """Wait for the devices to provision, install the new firmware on two, see it run."""
    updated = DEMO_DEVICES[0]
    esphome = ESPHOME_DEVICE
    entities = [updated.update_entity, esphome.update_entity]

    async def provisioned() -> list[str]:
        return events.missing() + await _offer_missing(rest, entities)

    async def finished() -> list[str]:
        return (
            events.missing(updated.key_id, NEW_VERSION)
            + events.version_missing(esphome.simulator_name, NEW_VERSION)
            + await _rest_missing(rest, entities)
        )

    await _wait_for_nothing_missing(
        "every device to provision itself", provisioned, deadline
    )
    await _drive_push(rest, events, deadline)
    _say(
        f"installing {NEW_VERSION} on {updated.name} and {esphome.name} "
        "through update.install"
    )
    started = time.monotonic()
    await rest.call_service("update", "install", {"entity_id": entities})
    await _wait_for_nothing_missing(
        f"{updated.name} and {esphome.name} to run {NEW_VERSION}", finished, deadline
    )
    rebooted_at = events.devices[updated.key_id].rebooted_at or started
    _say(f"the update reached {updated.name} in {rebooted_at - started:.2f} s")


async def _drive_push(
    rest: HomeAssistantRest, events: DeviceEvents, deadline: Deadline
) -> None:
    """Change a device's configuration: a push notice must make it fetch it at once."""
    device = DEMO_DEVICES[1]
    progress = events.devices[device.key_id]
    started = time.monotonic()
    await rest.call_service(
        DOMAIN,
        "set_config",
        {"key_id": device.key_id, "config": device.config | {"brightness": 40}},
    )

    async def pushed() -> float | None:
        at = progress.config_pushed_at
        return at if at is not None and at >= started else None

    elapsed = (
        await wait_until(
            f"{device.name} to fetch its configuration on a push notice",
            pushed,
            deadline,
        )
        - started
    )
    _say(
        f"set_config reached {device.name} in {elapsed:.2f} s by a push notice"
        f" (time from the call to its 'config fetched')"
    )
    if elapsed > PUSH_LIMIT:
        raise DemoError(
            f"the push notice took {elapsed:.1f} s, more than {PUSH_LIMIT:g} s"
        )


async def _drive_rollout(
    rest: HomeAssistantRest, events: DeviceEvents, deadline: Deadline
) -> None:
    """Roll the new firmware out to the others in waves; see every device run it."""
    _say(
        f"rolling {NEW_VERSION} out to the other devices "
        f"(waves {ROLLOUT['waves']}, then the rest) with providore.start_rollout"
    )
    await start_demo_rollout(rest)

    async def finished() -> list[str]:
        state = await rest.state(ROLLOUT_SENSOR)
        shown = None if state is None else state["state"]
        if shown == "aborted":
            raise _DetailedError(
                "the rollout stopped by itself",
                [str(state["attributes"]) if state else "-"],
                "rollout",
            )
        missing = events.not_running(NEW_VERSION)
        if shown != "completed":
            missing.append(f"{ROLLOUT_SENSOR} is {shown}, not completed")
        return missing

    await _wait_for_nothing_missing("the rollout to complete", finished, deadline)


async def _wait_for_nothing_missing(
    what: str, outcome: Outcome, deadline: Deadline
) -> None:
    async def complete() -> bool:
        return not await outcome()

    try:
        await wait_until(what, complete, deadline)
    except DemoError as err:
        raise _DetailedError(str(err), await outcome(), "missing") from None


async def _offer_missing(rest: HomeAssistantRest, entities: list[str]) -> list[str]:
    """Return what keeps the update entities from offering the new firmware."""
    missing = []
    for entity_id in entities:
        state = await rest.state(entity_id)
        latest = None if state is None else state["attributes"].get("latest_version")
        if latest != NEW_VERSION:
            missing.append(f"{entity_id} offers {latest}, not {NEW_VERSION}")
    return missing


async def _rest_missing(rest: HomeAssistantRest, updated: list[str]) -> list[str]:
    """Return what Home Assistant's REST API does not show yet."""
    missing = []
    for entity_id in updated:
        state = await rest.state(entity_id)
        attributes = {} if state is None else state["attributes"]
        if (installed := attributes.get("installed_version")) != NEW_VERSION:
            missing.append(f"{entity_id} shows {installed}, not {NEW_VERSION}")
    for device in DEMO_DEVICES:
        sensor = await rest.state(device.certificate_sensor)
        if (shown := None if sensor is None else sensor["state"]) != "valid":
            missing.append(f"{device.certificate_sensor} is {shown}, not valid")
    return missing


class _DetailedError(DemoError):
    """The check failed for these reasons (what is missing, or what went wrong)."""

    def __init__(self, message: str, details: list[str], label: str) -> None:
        super().__init__(message)
        self.details = details
        self.label = label


def _report_failure(
    err: Exception, events: DeviceEvents | None, config_dir: Path
) -> None:
    """Say what was missing, the devices' last failures, and the tail of the log."""
    _say(f"demo check FAILED: {err or type(err).__name__}")
    if isinstance(err, _DetailedError):
        for item in err.details:
            _say(f"  {err.label}: {item}")
    for failure in events.last_failures() if events is not None else []:
        _say(f"  {failure}")
    log = config_dir / "home-assistant.log"
    if not log.exists():
        log = config_dir / "console.log"
    lines = _read_log(log).splitlines()
    _say(f"--- last {LOG_TAIL_LINES} lines of {log.name} ---")
    for line in lines[-LOG_TAIL_LINES:]:
        _say(line)


def _read_log(path: Path) -> str:
    """Return a log file's text; empty when it does not exist."""
    if not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
