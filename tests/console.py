"""A command's output while it runs in the test's own event loop (pytest's capture)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import re

import pytest


@dataclass
class Console:
    """The command's output so far, read from pytest's capture while it runs."""

    capsys: pytest.CaptureFixture[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def read(self) -> None:
        """Take what was written since the last read."""
        captured = self.capsys.readouterr()
        self.out += captured.out.splitlines()
        self.err += captured.err.splitlines()

    async def wait_for(self, pattern: str, *, stream: str = "out") -> re.Match[str]:
        """Wait up to 15 s for a line that matches pattern (searched in each line)."""
        async with asyncio.timeout(15):
            while True:
                self.read()
                lines = self.out if stream == "out" else self.err
                for line in lines:
                    if match := re.search(pattern, line):
                        return match
                await asyncio.sleep(0.02)
