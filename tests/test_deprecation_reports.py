"""The suite fails when Home Assistant reports a deprecated use by Providore."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.frame import report_usage
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.providore.const import DOMAIN

from .conftest import DeprecationReports


async def test_a_report_about_providore_is_caught(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    deprecation_reports: DeprecationReports,
) -> None:
    report_usage("calls an API that is going away", integration_domain=DOMAIN)

    assert len(deprecation_reports.reports) == 1
    assert (
        f"Detected that custom integration '{DOMAIN}' calls an API that is going away"
        in deprecation_reports.reports[0]
    )
    # Seen: let this test pass.
    deprecation_reports.reports.clear()


async def test_reports_about_other_integrations_are_not_ours(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    deprecation_reports: DeprecationReports,
    caplog: pytest.LogCaptureFixture,
) -> None:
    report_usage("calls an API that is going away", integration_domain="http")

    assert "Detected that integration 'http' calls an API that is going away" in (
        caplog.text
    )
    assert deprecation_reports.reports == []
