"""What the browser tests need, and a Chromium that only reaches the Home Assistant under test.

Nothing here imports Playwright at module level, so that the suite still collects
where it is missing and the tests can say why they skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
import os
from pathlib import Path
import re
import shutil
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Debian's Chromium, never a browser downloaded by Playwright.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOT_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """Return the Chromium binary on the PATH, if any."""
    return shutil.which("chromium")


def missing_parts() -> str | None:
    """Say what the browser tests lack, or return None when they can run."""
    missing = []
    if find_spec("playwright") is None:
        missing.append("the playwright package (pip install -r requirements.txt)")
    if chromium_path() is None:
        missing.append("Debian's chromium (scripts/setup installs it as root)")
    return " and ".join(missing) or None


def require_browser() -> None:
    """Skip the calling test module without a browser; CI must have one and fails."""
    if (missing := missing_parts()) is None:
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"CI must run the browser test, but it lacks {missing}", pytrace=False
        )
    pytest.skip(f"browser test needs {missing}", allow_module_level=True)


@contextmanager
def chromium_page() -> Iterator[Page]:
    """Open a page in a fresh headless Chromium that can only reach 127.0.0.1."""
    from playwright.sync_api import expect, sync_playwright  # see the module docstring

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        try:
            # Home Assistant's service worker can reload the page on a click in
            # headless Chromium: the tests run without it.
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, service_workers="block"
            )
            context.set_default_timeout(TIMEOUT_MS)
            context.route(NOT_LOOPBACK, lambda route: route.abort())
            yield context.new_page()
        finally:
            browser.close()


class Screenshots:
    """Numbered screenshots of one test, for a person to look at."""

    def __init__(self, folder: Path) -> None:
        """Save into `folder`."""
        self.folder = folder
        self._count = 0

    def take(self, page: Page, name: str) -> Path:
        """Save what the page shows now as the next numbered PNG."""
        self._count += 1
        path = self.folder / f"{self._count:02d}-{name}.png"
        # Opening menus and dialogs are shown as they end up, not half faded in.
        page.screenshot(path=path, animations="disabled")
        return path
