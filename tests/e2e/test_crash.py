"""Nothing acknowledged is lost: a real Home Assistant killed with SIGKILL right after it answered.

Home Assistant runs as a child process on a minimal configuration (HTTP, the REST
API, config flows, onboarding) with this checkout's integration. The tests add
Providore and devices over the REST API, kill Home Assistant's whole process group
with SIGKILL at chosen moments (as a power cut would), start it again on the same
folder and check what it kept:

- a POST answered before the kill is refused as a replay after the restart, and the
  certificate it issued is still the device's;
- a device the Add device flow confirmed before the kill either exists with its key
  (its signed requests are served) or is gone together with its key (dropped at
  start, with a warning in the log): never one without the other. Home Assistant
  itself writes the new subentry about a second after the flow answers, so a device
  confirmed just before a kill may be gone; Providore saves the key before the flow
  answers and drops a key without a device at start.

After every restart the hub loads (no store is unreadable) and every Providore file
is valid JSON. Without a Home Assistant that starts here the tests are skipped,
except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import time
from typing import Any

import pytest

from demo.home_assistant import INTEGRATION, free_port
from demo.scenario import CONFIG_FLOW_PATH, HUB_SETTINGS, SUBENTRY_FLOW_PATH

from ..device import signed_headers
from ..pki import ec_key, make_csr
from .home_assistant import (
    HomeAssistantApi,
    Response,
    RestError,
    create_owner,
    kill,
    request,
    start_process,
    stop,
    wait_for,
    wait_until_serving,
)
from .simulated_device import SimulatedDevice

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CONFIGURATION = """\
homeassistant:
  name: Providore crash test
  country: DE
  currency: EUR
  unit_system: metric
  time_zone: UTC
  internal_url: {url}
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
"""
# Seconds between the flow's answer and the kill.
KILL_DELAYS = (0.0, 0.2, 0.5, 1.0, 1.5)
DROPPED = "Dropping the keys and data of 1 device(s) without a subentry: {key_id}"
REQUEST_PATH = "/certificates/request"


@dataclass(slots=True)
class RestartableHomeAssistant:
    """Home Assistant on a config folder, with Providore, that can be killed and restarted."""

    config_dir: Path
    url: str
    process: subprocess.Popen[bytes]
    api: HomeAssistantApi
    entry_id: str = ""

    @property
    def base_url(self) -> str:
        """Return the device API's base URL."""
        return f"{self.url}/api/providore"

    def stored(self, name: str) -> Any:
        """Return a store's data as Home Assistant wrote it (None when there is none)."""
        path = self.config_dir / ".storage" / name
        return json.loads(path.read_text())["data"] if path.exists() else None

    def wait_until_stored(self, what: str, probe: Callable[[], bool]) -> None:
        """Wait until Home Assistant wrote something to disk (it saves after a delay)."""
        wait_for(what, lambda: probe() or None, timeout=15)

    def add_hub(self) -> None:
        """Add Providore with the demo's settings; wait until it is loaded and saved."""
        form = self.api.post(CONFIG_FLOW_PATH, {"handler": "providore"})
        result = self.api.post(f"{CONFIG_FLOW_PATH}/{form['flow_id']}", HUB_SETTINGS)
        assert result["type"] == "create_entry", result
        self.entry_id = result["result"]["entry_id"]
        self.wait_until_loaded()
        self.wait_until_stored("the hub entry", lambda: self.subentries() is not None)

    def add_device(self, key_id: str) -> SimulatedDevice:
        """Add a device with the Add device flow; return it once the flow confirmed it."""
        secret = f"crash-test-secret-{key_id}".ljust(32, "x")[:32]
        menu = self.api.post(SUBENTRY_FLOW_PATH, {"handler": [self.entry_id, "device"]})
        flow_path = f"{SUBENTRY_FLOW_PATH}/{menu['flow_id']}"
        self.api.post(flow_path, {"next_step_id": "existing_key"})
        result = self.api.post(
            flow_path,
            {"name": f"Device {key_id}", "key_id": key_id, "secret_key": secret},
        )
        assert result["type"] == "create_entry", result
        return SimulatedDevice(key_id, secret, self.base_url)

    def subentries(self) -> list[str] | None:
        """Return the key ids of the hub's devices on disk (None before the hub is)."""
        entries = (self.stored("core.config_entries") or {}).get("entries", [])
        for entry in entries:
            if entry["entry_id"] == self.entry_id:
                return [sub["unique_id"] for sub in entry.get("subentries", [])]
        return None

    def secrets(self) -> dict[str, str]:
        """Return Providore's saved secret keys."""
        return self.stored("providore.secrets") or {}

    def kill_and_start_again(self) -> None:
        """Kill Home Assistant with SIGKILL, start it again, wait until the hub is loaded."""
        kill(self.process)
        self.process = start_process(self.config_dir)
        wait_until_serving(self.url, self.process)
        self.wait_until_loaded()

    def wait_until_loaded(self) -> None:
        """Wait until the hub is set up; fail at once when its setup failed."""

        def loaded() -> bool:
            try:
                entries = self.api.config_entries("providore")
            except RestError:  # the config API is not registered yet
                return False
            states = [entry["state"] for entry in entries]
            assert states in ([], ["loaded"], ["not_loaded"], ["setup_in_progress"]), (
                f"the hub did not load: {states}\n{self.log()[-3000:]}"
            )
            return states == ["loaded"]

        wait_for("the hub to load", loaded, timeout=30)

    def log(self) -> str:
        """Return what Home Assistant logged since its last start."""
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_stores_readable(self) -> None:
        """Every Providore store and the replay log parse (a torn line is tolerated last)."""
        for path in (self.config_dir / ".storage").glob("providore.*"):
            json.loads(path.read_text())
        replay_log = self.config_dir / "providore" / "replay.jsonl"
        if replay_log.exists():
            lines = replay_log.read_bytes().splitlines()
            for line in lines[:-1]:
                json.loads(line)


@pytest.fixture
def restartable(
    socket_enabled: None, tmp_path: Path
) -> Iterator[RestartableHomeAssistant]:
    """Start Home Assistant on a folder of tmp_path, create its owner, add Providore."""
    config_dir = tmp_path / "config"
    (config_dir / "custom_components").mkdir(parents=True)
    (config_dir / "custom_components" / "providore").symlink_to(INTEGRATION)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (config_dir / "configuration.yaml").write_text(
        CONFIGURATION.format(url=url, port=port)
    )
    running = RestartableHomeAssistant(
        config_dir, url, start_process(config_dir), HomeAssistantApi(url, "")
    )
    try:
        try:
            wait_until_serving(url, running.process)
        except (RuntimeError, TimeoutError) as err:
            console = (config_dir / "console.log").read_text(errors="replace")
            reason = f"Home Assistant does not start here ({err}): {console[-1000:]}"
            if os.environ.get("CI"):
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        running.api = HomeAssistantApi(url, create_owner(url))
        # The owner's token must outlive the first kill: its store is saved after a delay.
        running.wait_until_stored(
            "the owner's token",
            lambda: bool((running.stored("auth") or {}).get("refresh_tokens")),
        )
        running.add_hub()
        yield running
    finally:
        stop(running.process)


def test_an_answered_post_is_refused_after_a_kill(
    restartable: RestartableHomeAssistant,
) -> None:
    """A certificate request answered just before SIGKILL cannot be replayed after it."""
    device = restartable.add_device("crash-post")
    restartable.wait_until_stored(
        "the device", lambda: "crash-post" in (restartable.subentries() or [])
    )
    csr = make_csr(ec_key(), device.key_id)
    headers = signed_headers(
        "POST", REQUEST_PATH, body=csr, key_id=device.key_id, secret=device.secret_key
    )

    def send() -> Response:
        return request(
            f"{device.base_url}{REQUEST_PATH}", method="POST", headers=headers, body=csr
        )

    issued = send()
    assert issued.status == 200, issued.body
    restartable.kill_and_start_again()

    replayed = send()
    assert replayed.status == 401, replayed.body
    assert replayed.json() == {"message": "request already used"}
    current = device.call("GET", "/certificate")
    assert current.status == 200, current.body
    assert current.body == issued.body, "the certificate answered before the kill"
    restartable.check_stores_readable()


def test_a_device_confirmed_before_a_kill_is_whole_or_gone(
    restartable: RestartableHomeAssistant,
) -> None:
    """Killed 0 to 1.5 s after Add device answered: the device with its key, or neither."""
    outcomes: dict[float | str, str] = {}
    delays: list[float | str] = [*KILL_DELAYS, "after it was saved"]
    for number, delay in enumerate(delays):
        key_id = f"crash-{number}"
        device = restartable.add_device(key_id)
        if isinstance(delay, float):
            time.sleep(delay)
        else:
            restartable.wait_until_stored(
                key_id,
                lambda key_id=key_id: key_id in (restartable.subentries() or []),
            )
        assert key_id in restartable.secrets(), "the key is saved before the answer"
        restartable.kill_and_start_again()
        outcomes[delay] = _whole_or_gone(restartable, device)
        restartable.check_stores_readable()
    assert outcomes["after it was saved"] == "kept", outcomes


def _whole_or_gone(
    restartable: RestartableHomeAssistant, device: SimulatedDevice
) -> str:
    """Check that the device came back with its key, or went with it; say which."""
    key_id = device.key_id
    has_subentry = key_id in (restartable.subentries() or [])
    answer = device.call("GET", "/firmware/check")
    if has_subentry:
        assert restartable.secrets().get(key_id) == device.secret_key, (
            f"{key_id} came back without its key"
        )
        assert answer.status == 204, answer.body
        return "kept"
    assert key_id not in restartable.secrets(), f"{key_id}'s key outlived it"
    assert answer.status == 401, answer.body
    dropped = DROPPED.format(key_id=key_id)
    wait_for(f"the warning {dropped!r}", lambda: dropped in restartable.log())
    return "dropped"
