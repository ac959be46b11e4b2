"""The fleet benchmark's own parts, against the real integration.

`benchmarks/fleet.py` starts several Home Assistant processes and takes from a minute
(`--quick`) to a quarter of an hour, so the suite does not run it; these tests keep
its seeding, signing and report from drifting away from the integration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from benchmarks.fleet import (
    DOMAIN,
    FULL,
    HUB_SETTINGS,
    QUICK,
    WINDOW_STEPS,
    BenchDevice,
    fleet,
    parse_sizes,
    report,
    rotating_requests,
    rows,
    seed_devices,
    with_ratios,
)

from .conftest import loaded_runtime

DEVICES = fleet("seeded", 3)


def _device(key_id: str) -> BenchDevice:
    return next(device for device in DEVICES if device.key_id == key_id)


def _stopped_instance(config_dir: Path) -> None:
    """Write the config entries of a stopped instance with an empty hub."""
    storage = config_dir / ".storage"
    storage.mkdir()
    entries = {"entries": [{"domain": DOMAIN, "entry_id": "hub", "subentries": []}]}
    (storage / "core.config_entries").write_text(
        json.dumps({"version": 1, "minor_version": 5, "data": entries})
    )


def _stored(config_dir: Path, key: str) -> dict[str, Any]:
    store: dict[str, Any] = json.loads((config_dir / ".storage" / key).read_text())
    return store


async def test_seeded_devices_answer_every_signed_request(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    hass_storage: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Seeded subentries, secrets and documents load; each request is new and recorded."""
    _stopped_instance(tmp_path)
    seed_devices(tmp_path, DEVICES)
    (hub,) = _stored(tmp_path, "core.config_entries")["data"]["entries"]
    for key in (f"{DOMAIN}.secrets", f"{DOMAIN}.documents"):
        store = _stored(tmp_path, key)
        assert (tmp_path / ".storage" / key).stat().st_mode & 0o777 == 0o600
        hass_storage[key] = store
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        options=HUB_SETTINGS,
        subentries_data=[
            ConfigSubentryData(
                data=subentry["data"],
                subentry_id=subentry["subentry_id"],
                subentry_type=subentry["subentry_type"],
                title=subentry["title"],
                unique_id=subentry["unique_id"],
            )
            for subentry in hub["subentries"]
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    client = await hass_client_no_auth()

    runtime = loaded_runtime(hass)
    # Across the fleet, then one device past a step of its Created-At second.
    batches = (
        rotating_requests(DEVICES, "/config", 3 * len(DEVICES)),
        rotating_requests(DEVICES[:1], "/config", WINDOW_STEPS + 2),
    )
    for requests in batches:
        for headers in requests:
            key_id = headers["Authorization"].split('"')[1]
            response = await client.get("/api/providore/config", headers=headers)
            assert response.status == 200, await response.text()
            assert await response.json() == _device(key_id).document
            # Recorded: the request is the device's newest.
            assert runtime.state(key_id).request_signature in headers["Authorization"]
        signatures = [headers["Authorization"] for headers in requests]
        assert len(set(signatures)) == len(requests)
        # Whole seconds, as devices sign them: YYYY-MM-DDTHH:MM:SSZ.
        assert {
            len(headers[name])
            for headers in requests
            for name in ("Created-At", "Expiry")
        } == {20}


def _round(**changes: float) -> dict[str, float]:
    """Return one round's figures: every target met, but for `changes`."""
    figures = dict.fromkeys(
        (
            "trivial_rps_1",
            "config_rps_1",
            "trivial_rps_n",
            "config_rps_n",
            "static_mibps",
            "firmware_mibps",
            "import_answered_s",
        ),
        1.0,
    ) | {
        "trivial_us_1": 100.0,
        "config_us_1": 120.0,
        "trivial_us_n": 100.0,
        "config_us_n": 120.0,
        "static_ms_mib": 0.2,
        "firmware_ms_mib": 0.25,
        "static_user_ms_mib": 0.05,
        "firmware_user_ms_mib": 0.06,
        "first_download_ms": 60.0,
        "download_ms": 16.0,
        "startup_0": 4.0,
        "startup_n": 4.5,
        "rss_0": 170.0,
        "rss_n": 200.0,
        "add_ms_0": 20.0,
        "add_ms_n_busy": 60.0,
        "add_ms_n": 30.0,
        "import_s": 10.0,
    }
    return with_ratios(figures | changes)


def test_report_judges_the_median_of_the_rounds() -> None:
    """A target is met or missed by the median; a CPU time below the clock's tick is n/a."""
    rounds = [
        _round(config_us_1=200.0, static_user_ms_mib=0.0),
        _round(config_us_1=130.0, static_user_ms_mib=0.0),
        _round(config_us_1=110.0, static_user_ms_mib=0.0, rss_n=300.0),
    ]
    assert math.isnan(rounds[0]["firmware_vs_static_user"])

    lines = report(FULL, rounds).splitlines()

    def line(label: str) -> str:
        (found,) = [text for text in lines if text.startswith(label)]
        return found

    config_ratio = line("signed /config / trivial, 1 device")
    assert "1.30 x" in config_ratio
    assert "1.10 - 2.00" in config_ratio
    assert config_ratio.endswith("<= 1.25 x: MISSED")
    assert line("signed /config / trivial, 1,000 devices").endswith(": met")
    assert line("settled RSS, 1,000 devices minus none").endswith("< 50 MiB: met")
    assert line("GET /firmware / static path, user CPU").split()[-1] == "n/a"
    assert len([text for text in lines if text.endswith((": met", ": MISSED"))]) == len(
        [row for row in rows(FULL) if row.limit is not None]
    )


def test_sizes_from_the_command_line() -> None:
    """--quick shrinks every size; --rounds and --devices override either preset."""
    assert parse_sizes([]) == FULL
    assert parse_sizes(["--quick"]) == QUICK
    sizes = parse_sizes(["--quick", "--rounds", "3", "--devices", "50"])
    assert (sizes.rounds, sizes.devices, sizes.requests) == (3, 50, QUICK.requests)
