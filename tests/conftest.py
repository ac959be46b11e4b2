"""Fixtures shared by the Providore tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import logging
from pathlib import Path
import re
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

# Imported before Home Assistant starts: the test harness ships a custom_components
# package of its own that would otherwise shadow ours.
from custom_components.providore.const import (
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    CONF_MAX_CLOCK_SKEW,
    CONF_MAX_REQUEST_LIFETIME,
    CONF_ONLINE_INTERVAL,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.runtime import (
    ProvidoreRuntime,
    async_get_loaded_runtime,
)

# The key of the protocol's test vectors.
KEY_ID = "d8fa0180"
SECRET_KEY = "Zq3v9XkP2mRt7LwY4nHc8JdF6sGb1TaE"
FIRMWARE_TYPE = "esp32s2-sensor"
DEVICE_NAME = "Garden sensor"


# How Home Assistant reports a custom integration's deprecated or wrong use of its API:
# helpers.frame ("Detected that custom integration 'providore' ...") and helpers.deprecation
# ("X was used from providore, this is a deprecated constant ..."). Each is a later breakage.
DEPRECATION_REPORT = re.compile(
    rf"custom integration '{DOMAIN}'|from {DOMAIN}, this is a deprecated"
)


class DeprecationReports(logging.Handler):
    """Collects Home Assistant's log reports about Providore's use of its API."""

    def __init__(self) -> None:
        """Start with no reports."""
        super().__init__()
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record when it reports on Providore."""
        message = record.getMessage()
        if DEPRECATION_REPORT.search(message):
            self.reports.append(message)


@pytest.fixture(autouse=True)
def deprecation_reports() -> Iterator[DeprecationReports]:
    """Fail every test during which Home Assistant reported a deprecated use by Providore."""
    handler = DeprecationReports()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    if handler.reports:
        pytest.fail(
            "Home Assistant reported Providore's use of its API:\n"
            + "\n".join(handler.reports)
        )


@pytest.fixture(autouse=True)
def zeroconf_mocked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give Home Assistant a mock zeroconf (Providore depends on it): no multicast.

    A test marked `real_zeroconf` gets the real one, in a network namespace of its
    own. Either way Home Assistant may not make python-zeroconf hand its own shared
    instance to every later `Zeroconf()` of the test process (the reference client's).
    """
    with patch("homeassistant.components.zeroconf.install_multiple_zeroconf_catcher"):
        if request.node.get_closest_marker("real_zeroconf"):
            yield
            return
        aiozc = request.getfixturevalue("mock_async_zeroconf")

        async def announced(*_args: object, **_kwargs: object) -> asyncio.Future[None]:
            """Return the broadcast python-zeroconf runs for a (un)registration: done."""
            broadcast = asyncio.get_running_loop().create_future()
            broadcast.set_result(None)
            return broadcast

        aiozc.async_register_service.side_effect = announced
        aiozc.async_unregister_service.side_effect = announced
        with patch(
            "custom_components.providore.device_browser.AsyncServiceBrowser",
            autospec=True,
        ):
            yield


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    enable_custom_integrations: None,
) -> None:
    """Load Providore from custom_components in every test."""


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give each test a config folder of its own, apart from its tmp_path.

    The harness's default one is shared by every test run on the machine.
    """
    directory = tmp_path_factory.mktemp("config")
    hass.config.config_dir = str(directory)
    return directory


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create the entities that are disabled by default as enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
def mock_config_entry() -> MockConfigEntry:
    """Return a hub entry with one device."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Providore",
        unique_id=DOMAIN,
        data={},
        options={
            CONF_MAX_CLOCK_SKEW: 300,
            CONF_MAX_REQUEST_LIFETIME: 900,
            CONF_ONLINE_INTERVAL: 600,
        },
        subentries_data=[
            ConfigSubentryData(
                data={CONF_KEY_ID: KEY_ID, CONF_FIRMWARE_TYPE: FIRMWARE_TYPE},
                subentry_type=SUBENTRY_TYPE_DEVICE,
                title=DEVICE_NAME,
                unique_id=KEY_ID,
            )
        ],
    )


@pytest.fixture
def stored_secrets(hass_storage: dict[str, Any]) -> dict[str, str]:
    """Put the device's secret key into Providore's secret store."""
    secrets = {KEY_ID: SECRET_KEY}
    hass_storage[f"{DOMAIN}.secrets"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.secrets",
        "data": secrets,
    }
    return secrets


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    stored_secrets: dict[str, str],
) -> MockConfigEntry:
    """Set up Providore with its one device."""
    return await _async_set_up(hass, mock_config_entry)


@pytest.fixture
async def entry_without_secret(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """Set up the hub while its device's secret key is missing from storage."""
    return await _async_set_up(hass, mock_config_entry)


async def _async_set_up(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def loaded_runtime(hass: HomeAssistant) -> ProvidoreRuntime:
    """Return the runtime of the loaded hub (the test fails without one)."""
    runtime = async_get_loaded_runtime(hass)
    assert runtime is not None, "Providore is not loaded"
    return runtime
