"""The demo's logic: its REST steps against a real Home Assistant, the devices file, events."""

from __future__ import annotations

import json
from pathlib import Path
import stat
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.core_config import CORE_CONFIG_SCHEMA
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import yaml

from custom_components.providore.const import DOMAIN
from custom_components.providore.esphome_image import (
    IMAGE_HEADER_SIZE,
    ChipFamily,
    ImageHeader,
    check_image_header,
)
from demo.devices_file import (
    DeviceEntry,
    EsphomeEntry,
    read_devices,
    read_esphome_devices,
    record_esphome_version,
    record_version,
    write_devices,
)
from demo.events import DeviceEvents
from demo.health import (
    FAILED_ENTRY_STATES,
    entry_problems,
    log_problems,
    repair_problems,
)
from demo.home_assistant import (
    DEVELOP_CONFIGURATION,
    ONBOARDING_STORE,
    free_port,
    prepare_temporary_config,
    skip_core_config_onboarding,
)
from demo.rest import (
    HomeAssistantRest,
    Login,
    RestError,
    answers,
    needs_onboarding,
    onboard,
    open_onboarding_steps,
)
from demo.scenario import (
    CONFIG_FLOW_PATH,
    DEMO_DEVICES,
    ESPHOME_DEVICE,
    FIRMWARE_SIZE,
    FIRMWARE_TYPE,
    FLEET_DOCUMENT,
    FLEET_SIZE,
    HUB_SETTINGS,
    NEW_VERSION,
    START_VERSION,
    SUBENTRY_FLOW_PATH,
    demo_esphome_firmware,
    demo_firmware,
    devices_file,
    esphome_devices_file,
    fleet_key_id,
    set_up_demo,
)
from demo.waiting import Deadline, DemoError, wait_until
from providore_client.simulator import load_devices

from .conftest import loaded_runtime

DEVICES = [
    DeviceEntry("garden-sensor", "garden-secret-0123456789", "demo-sensor", "1.0.0"),
    DeviceEntry("garage-door", "garage-secret-0123456789", "demo-sensor", "1.0.0"),
]


async def _serve_config_api_and_providore(hass: HomeAssistant) -> None:
    """Set up what the demo talks to, before the test client freezes the routes."""
    for domain in ("config", "api", "websocket_api", DOMAIN):
        assert await async_setup_component(hass, domain, {})


def _url(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_set_up_demo_over_rest(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, hass_access_token: str
) -> None:
    """The scenario adds the hub, three devices, documents and a build; keys match."""
    await _serve_config_api_and_providore(hass)
    client = await hass_client()
    rest = HomeAssistantRest(client.session, _url(client), hass_access_token)
    config_dir = Path(hass.config.config_dir)

    devices = await set_up_demo(rest, config_dir, 4999)
    await hass.async_block_till_done()

    entry = hass.config_entries.async_entries(DOMAIN)[0]
    # Push notices by UDP to where the simulated devices listen.
    settings = loaded_runtime(hass).settings
    assert (settings.notify_udp, settings.notify_udp_port) == (True, 4999)
    assert not settings.notify_mqtt
    fleet_names = [f"Fleet sensor {number}" for number in range(1, FLEET_SIZE + 1)]
    assert sorted(s.title for s in entry.subentries.values()) == sorted(
        [*(d.name for d in DEMO_DEVICES), *fleet_names, ESPHOME_DEVICE.name]
    )
    runtime = loaded_runtime(hass)
    for demo_device, simulated in zip(DEMO_DEVICES, devices, strict=False):
        assert simulated.id == demo_device.key_id
        assert runtime.config_document(simulated.id, None) == demo_device.config
        assert hass.states.get(demo_device.update_entity) is not None
        assert hass.states.get(demo_device.certificate_sensor) is not None
    assert len(devices) == len(DEMO_DEVICES) + FLEET_SIZE
    for number, simulated in enumerate(devices[len(DEMO_DEVICES) :], start=1):
        assert simulated.id == fleet_key_id(number)
        assert runtime.config_document(simulated.id, None) == FLEET_DOCUMENT
    for simulated in devices:
        assert runtime.secret(simulated.id) == simulated.secret
        assert runtime.devices[simulated.id].firmware_type == FIRMWARE_TYPE
    # The device list with its keys does not stay in the config folder.
    assert not (config_dir / "providore-demo" / "fleet.csv").exists()
    build = runtime.firmware.catalog.latest(FIRMWARE_TYPE)
    assert build is not None
    assert (build.version, build.size) == (NEW_VERSION, FIRMWARE_SIZE)
    saved = read_devices(devices_file(config_dir))
    assert saved == devices
    assert {d.version for d in saved} == {START_VERSION}
    # The ESPHome device: its build was checked for its chip, its URL holds its token.
    (esphome,) = read_esphome_devices(esphome_devices_file(config_dir))
    key_id = runtime.esphome.device_for_token(esphome.source.split("/")[-2])
    assert key_id is not None
    assert (esphome.name, esphome.chip_family, esphome.version) == (
        ESPHOME_DEVICE.simulator_name,
        "ESP32-C3",
        START_VERSION,
    )
    (esphome_build,) = runtime.builds(ESPHOME_DEVICE.firmware_type)
    assert esphome_build.version == NEW_VERSION
    assert esphome_build.chip_family == "ESP32-C3"
    assert hass.states.get(ESPHOME_DEVICE.update_entity) is not None
    mode = stat.S_IMODE(esphome_devices_file(config_dir).stat().st_mode)
    assert mode == 0o600


async def test_rest_errors_name_the_call(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, hass_access_token: str
) -> None:
    """An error status becomes a RestError that says which call failed and why."""
    await _serve_config_api_and_providore(hass)
    client = await hass_client()
    rest = HomeAssistantRest(client.session, _url(client), hass_access_token)

    with pytest.raises(RestError, match="POST /api/services/providore/set_config"):
        await rest.call_service(DOMAIN, "set_config", {"key_id": "x"})
    await rest.finish_flow(CONFIG_FLOW_PATH, {"handler": DOMAIN}, HUB_SETTINGS)
    with pytest.raises(RestError, match="did not show a form: .*single_instance"):
        await rest.finish_flow(CONFIG_FLOW_PATH, {"handler": DOMAIN}, HUB_SETTINGS)
    entry_id = hass.config_entries.async_entries(DOMAIN)[0].entry_id
    with pytest.raises(RestError, match="did not show a form: .*menu"):
        await rest.finish_flow(
            SUBENTRY_FLOW_PATH, {"handler": [entry_id, "device"]}, {"name": "Broken"}
        )
    with pytest.raises(RestError, match="did not show a menu: .*single_instance"):
        await rest.finish_flow(
            CONFIG_FLOW_PATH, {"handler": DOMAIN}, HUB_SETTINGS, menu_choice="new_key"
        )
    with pytest.raises(RestError, match="did not create an entry: .*invalid_key_id"):
        await rest.finish_flow(
            SUBENTRY_FLOW_PATH,
            {"handler": [entry_id, "device"]},
            {"name": "Broken", "key_id": "no spaces allowed"},
            menu_choice="new_key",
        )
    assert await rest.state("update.nothing_here") is None


@pytest.mark.usefixtures("local_auth")
async def test_onboarding_skips_the_core_config_step(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The demo's onboarding store is what Home Assistant reads as "core config done".

    The owner is created, every other step finished, and no integration is set up: the
    core configuration step would have started google_translate, met, radio_browser and
    shopping_list flows.
    """
    skip_core_config_onboarding(tmp_path)
    store = tmp_path / ONBOARDING_STORE
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    hass_storage["onboarding"] = json.loads(store.read_text(encoding="utf-8"))
    assert await async_setup_component(hass, "onboarding", {})
    assert await async_setup_component(hass, "api", {})
    client = await hass_client_no_auth()
    url = _url(client)
    assert await answers(client.session, url)
    assert await needs_onboarding(client.session, url)
    assert await open_onboarding_steps(client.session, url) == [
        "user",
        "analytics",
        "integration",
    ]

    token = await onboard(client.session, url, Login("dev", "providore-dev"))
    await hass.async_block_till_done()

    rest = HomeAssistantRest(client.session, url, token)
    assert (await rest.get("/api/")).get("message") == "API running."
    assert await open_onboarding_steps(client.session, url) == []
    assert not await needs_onboarding(client.session, url)
    users = [u for u in await hass.auth.async_get_users() if not u.system_generated]
    assert [(u.name, u.is_owner) for u in users] == [("Developer", True)]
    assert hass.config_entries.async_entries() == []
    assert hass.config_entries.flow.async_progress() == []


def test_skip_core_config_onboarding_leaves_existing_data(tmp_path: Path) -> None:
    """An instance that has onboarding data (say, onboarded by hand) keeps it."""
    store = tmp_path / ONBOARDING_STORE
    store.parent.mkdir()
    store.write_text('{"data": {"done": ["user"]}}', encoding="utf-8")

    skip_core_config_onboarding(tmp_path)

    assert store.read_text(encoding="utf-8") == '{"data": {"done": ["user"]}}'


def test_check_runs_the_develop_configuration(tmp_path: Path) -> None:
    """The check's instance is ./scripts/develop's, with its own name, URL and address.

    Its core configuration is valid and names a country (no "country not configured"
    repair), so onboarding's core configuration step has nothing left to ask.
    """
    develop = yaml.safe_load(DEVELOP_CONFIGURATION.read_text(encoding="utf-8"))
    prepare_temporary_config(tmp_path, "http://127.0.0.1:8999", 8999, "Checked")

    written = yaml.safe_load((tmp_path / "configuration.yaml").read_text("utf-8"))
    core = CORE_CONFIG_SCHEMA(written["homeassistant"])
    assert (core["name"], core["internal_url"]) == ("Checked", "http://127.0.0.1:8999")
    assert core["country"] == develop["homeassistant"]["country"] == "DE"
    assert written["http"] == {"server_port": 8999, "server_host": "127.0.0.1"}
    rest = {k: v for k, v in written.items() if k not in ("homeassistant", "http")}
    assert rest == {
        k: v for k, v in develop.items() if k not in ("homeassistant", "http")
    }
    assert (tmp_path / "custom_components" / "providore" / "manifest.json").exists()
    # Zeroconf on loopback only: nothing is sent on the machine's network.
    network = tmp_path / ".storage" / "core.network"
    assert json.loads(network.read_text())["data"] == {"configured_adapters": ["lo"]}
    assert stat.S_IMODE(network.stat().st_mode) == 0o600


def test_log_problems_are_errors_and_tracebacks() -> None:
    """ERROR and CRITICAL lines and tracebacks count; other levels and text do not."""
    log = """\
2025-04-30 12:00:00.001 WARNING (MainThread) [homeassistant.loader] We found a custom integration
2025-04-30 12:00:00.002 INFO (MainThread) [homeassistant.bootstrap] An ERROR in the text
2025-04-30 12:00:00.003 ERROR (MainThread) [homeassistant.config_entries] Error setting up entry
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ModuleNotFoundError: No module named 'gtts'
2025-04-30 12:00:00.004 CRITICAL (MainThread) [homeassistant.core] Shutting down
2025-04-30 12:00:00.005 DEBUG (MainThread) [custom_components.providore] Traceback (most recent call last):
"""
    assert log_problems(log) == [
        "log line 3: 2025-04-30 12:00:00.003 ERROR (MainThread) "
        "[homeassistant.config_entries] Error setting up entry",
        "log line 4: Traceback (most recent call last):",
        "log line 7: 2025-04-30 12:00:00.004 CRITICAL (MainThread) "
        "[homeassistant.core] Shutting down",
    ]
    assert log_problems("\n".join(log.splitlines()[:2])) == []


async def test_failed_entries_and_repairs_are_problems(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, hass_access_token: str
) -> None:
    """A config entry that failed and a repair issue are named; healthy ones are not."""
    assert FAILED_ENTRY_STATES.issubset(state.value for state in ConfigEntryState)
    await _serve_config_api_and_providore(hass)
    for domain in ("websocket_api", "repairs"):
        assert await async_setup_component(hass, domain, {})
    MockConfigEntry(
        domain="sun", title="Fine", state=ConfigEntryState.NOT_LOADED
    ).add_to_hass(hass)
    client = await hass_client()
    rest = HomeAssistantRest(client.session, _url(client), hass_access_token)
    assert await entry_problems(rest) == []
    assert await repair_problems(rest) == []

    MockConfigEntry(
        domain="google_translate", title="Speech", state=ConfigEntryState.SETUP_ERROR
    ).add_to_hass(hass)
    MockConfigEntry(
        domain="met", title="Home", state=ConfigEntryState.SETUP_RETRY
    ).add_to_hass(hass)
    ir.async_create_issue(
        hass,
        "homeassistant",
        "country_not_configured",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="country_not_configured",
    )

    assert await entry_problems(rest) == [
        "config entry 'Speech' (google_translate) is setup_error",
        "config entry 'Home' (met) is setup_retry",
    ]
    assert await repair_problems(rest) == [
        "repair issue homeassistant.country_not_configured"
    ]


@pytest.mark.usefixtures("socket_enabled")
async def test_answers_is_false_without_a_server() -> None:
    """Nobody listening is 'not answering yet', not an error."""
    async with ClientSession() as session:
        assert not await answers(session, f"http://127.0.0.1:{free_port()}")


def test_demo_firmware_is_deterministic() -> None:
    """The build has its size, a readable header, and the same bytes every time."""
    build = demo_firmware()
    assert len(build) == FIRMWARE_SIZE
    assert build.startswith(
        f"Providore demo firmware {FIRMWARE_TYPE} {NEW_VERSION}".encode()
    )
    assert build == demo_firmware()


def test_devices_file_is_private_and_read_by_the_client(tmp_path: Path) -> None:
    """The file is 0600, round-trips, and is what `providore-client simulate` reads."""
    path = tmp_path / "demo" / "devices.yaml"
    write_devices(path, DEVICES)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_devices(path) == DEVICES
    specs = load_devices(path, "0.0.0")
    assert [(s.device_id, s.secret, s.version, s.firmware_type) for s in specs] == [
        (d.id, d.secret, d.version, d.firmware_type) for d in DEVICES
    ]
    assert [p.name for p in path.parent.iterdir()] == ["devices.yaml"]


def test_record_version_changes_one_device(tmp_path: Path) -> None:
    """A reboot is remembered for that device only, so a restart reports it."""
    path = tmp_path / "devices.yaml"
    write_devices(path, DEVICES)

    record_version(path, "garage-door", "1.1.0")

    assert [d.version for d in read_devices(path)] == ["1.0.0", "1.1.0"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_events_track_progress() -> None:
    """Event lines fill in each device's progress; missing names what is left."""
    events = DeviceEvents(["garden-sensor", "garage-door"])
    assert events.missing("garden-sensor", "1.1.0") == [
        "garden-sensor has not fetched its configuration",
        "garden-sensor has no certificate",
        "garden-sensor runs nothing yet, not 1.1.0",
        "garage-door has not fetched its configuration",
        "garage-door has no certificate",
    ]
    lines = [
        "garden-sensor started (demo-sensor, firmware 1.0.0)",
        "garage-door started (demo-sensor, firmware 1.0.0)",
        "garden-sensor config fetched",
        "garage-door config missing",
        "garage-door failed certificate: the server answered 503",
        "garden-sensor certificate issued, expires 2027-11-28T19:46:07Z",
        "someone-else config fetched",
        "garage-door certificate valid until 2027-11-28T19:46:07Z",
    ]
    assert [events.feed(line) for line in lines] == [None] * len(lines)
    assert events.missing() == ["garage-door has not fetched its configuration"]
    assert "garden-sensor runs 1.0.0, not 1.1.0" in events.missing(
        "garden-sensor", "1.1.0"
    )
    assert events.last_failures() == [
        "garage-door last failed certificate: the server answered 503"
    ]

    assert events.feed("garden-sensor rebooted into 1.1.0\n") == (
        "garden-sensor",
        "1.1.0",
    )
    events.feed("garage-door config fetched")
    assert events.missing("garden-sensor", "1.1.0") == []
    assert events.not_running("1.1.0") == ["garage-door runs 1.0.0, not 1.1.0"]


def test_esphome_devices_are_tracked_without_configuration(tmp_path: Path) -> None:
    """An ESPHome device only has to start (and run the new version once updated)."""
    events = DeviceEvents(["garden-sensor"], ("porch-light",))
    events.feed("garden-sensor config fetched")
    events.feed("garden-sensor certificate valid until 2027-11-28T19:46:07Z")
    assert events.missing() == ["porch-light has not started"]

    events.feed("porch-light started (esphome ESP32-C3, firmware 1.0.0)")
    assert events.missing() == []
    assert events.version_missing("porch-light", "1.1.0") == [
        "porch-light runs 1.0.0, not 1.1.0"
    ]
    assert events.feed("porch-light rebooted into 1.1.0") == ("porch-light", "1.1.0")
    assert events.version_missing("porch-light", "1.1.0") == []

    path = tmp_path / "esphome.yaml"
    assert read_esphome_devices(path) == []
    entry = EsphomeEntry(
        "porch-light",
        "http://ha/api/providore/esphome/t/manifest.json",
        "ESP32-C3",
        "1.0.0",
    )
    write_devices(path, [entry])
    record_esphome_version(path, "porch-light", "1.1.0")
    assert read_esphome_devices(path) == [
        EsphomeEntry(entry.name, entry.source, entry.chip_family, "1.1.0")
    ]


def test_the_esphome_demo_build_is_an_esp32_c3_application() -> None:
    header = demo_esphome_firmware()[:IMAGE_HEADER_SIZE]
    assert check_image_header(header, ChipFamily.ESP32_C3) == ImageHeader(
        ChipFamily.ESP32_C3
    )
    assert len(demo_esphome_firmware()) == FIRMWARE_SIZE


async def test_wait_until_returns_the_result_or_fails_at_the_deadline() -> None:
    """A probe is polled until it gives something; past the deadline the wait says what."""
    answers_given = iter([None, 0, "ready"])

    async def probe() -> str | int | None:
        return next(answers_given)

    assert await wait_until("readiness", probe, Deadline(5)) == "ready"

    async def never() -> None:
        return None

    with pytest.raises(DemoError, match="timed out waiting for nothing"):
        await wait_until("nothing", never, Deadline(0.3))


def test_events_time_what_a_push_notice_brings() -> None:
    """A config fetch counts as pushed only while the device handles a notice."""
    ticks = iter([10.0, 20.0])
    events = DeviceEvents(["garden-sensor"], clock=lambda: next(ticks))
    progress = events.devices["garden-sensor"]
    events.feed("garden-sensor config fetched")
    assert progress.config_pushed_at is None
    for line in (
        "garden-sensor notice 1732912345678 from udp 127.0.0.1:41234: config",
        "garden-sensor config fetched",
        "garden-sensor notice 1732912345678 done",
        "garden-sensor config fetched",
    ):
        events.feed(line)
    assert progress.config_pushed_at == 10.0
    assert events.feed("garden-sensor rebooted into 1.1.0") == (
        "garden-sensor",
        "1.1.0",
    )
    assert progress.rebooted_at == 20.0
