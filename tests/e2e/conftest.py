"""Fixtures of the browser end-to-end tests: Home Assistant, Chromium and screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import shutil
from typing import TYPE_CHECKING

import pytest

from .browser import Screenshots, chromium_page
from .home_assistant import RunningHomeAssistant, running_home_assistant

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOTS = Path(__file__).parent / "screenshots"
_screenshot_folders: list[Path] = []
_failed = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the suite's fixture: these tests start their own Home Assistant, not `hass`."""


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """Return an emptied folder tests/e2e/screenshots/<test name>, named in the summary."""
    folder = SCREENSHOTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _screenshot_folders.append(folder)
    return Screenshots(folder)


@pytest.fixture
def home_assistant(
    socket_enabled: None, screenshots: Screenshots
) -> Iterator[RunningHomeAssistant]:
    """Run an onboarded Home Assistant on 127.0.0.1; its logs end up beside the screenshots."""
    with running_home_assistant(logs_to=screenshots.folder) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Remember whether a test's body failed, for the fixtures' teardown."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture
def page(
    request: pytest.FixtureRequest,
    home_assistant: RunningHomeAssistant,
    screenshots: Screenshots,
) -> Iterator[Page]:
    """Open a Chromium page; console errors that name Providore fail the test.

    When the test fails, what the page showed last is saved as a screenshot too.
    """
    with chromium_page() as browser_page:
        errors: list[str] = []
        browser_page.on(
            "console",
            lambda message: errors.append(message.text)
            if message.type == "error" and "providore" in message.text.lower()
            else None,
        )
        yield browser_page
        if request.node.stash.get(_failed, False):
            screenshots.take(browser_page, "failure")
        assert not errors, f"the frontend logged errors about Providore: {errors}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the folders that hold this run's screenshots."""
    for folder in _screenshot_folders:
        terminalreporter.write_line(f"End-to-end screenshots: {folder}")
