"""The real ESPHome tools (esphome, esptool) from .venv-esphome, made by `scripts/setup --esphome`."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

import pytest

ESPHOME_VENV = Path(__file__).parents[1] / ".venv-esphome"
TIMEOUT = 120


def esphome_tool(name: str) -> Path:
    """Return a program of .venv-esphome; skip without it, except in CI where it must be there."""
    program = ESPHOME_VENV / "bin" / name
    if not program.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{program} is missing (scripts/setup --esphome creates it)")
        pytest.skip(f"{program} is missing: run scripts/setup --esphome")
    return program


def run_tool(name: str, *args: str | Path, cwd: Path | None = None) -> str:
    """Run a program of .venv-esphome; return its output, or fail the test with it."""
    result = subprocess.run(  # noqa: S603 (our own venv's program, fixed arguments)
        [esphome_tool(name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{name} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout + result.stderr
