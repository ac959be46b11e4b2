"""A real Mosquitto broker for the tests, on a free loopback port.

Skipped when mosquitto is not installed, except under CI, where it must be there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import getpass
import os
from pathlib import Path
import shutil
import socket
import subprocess
import time

import pytest

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
START_TIMEOUT = 15.0

# Starts a broker in the folder with these listener settings; returns its port.
type StartMosquitto = Callable[[Path, list[str]], int]


def require_mosquitto() -> str:
    """Return the broker binary; skip without it, except in CI where it must be there."""
    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (scripts/setup installs it)")
        pytest.skip("mosquitto is not installed: run scripts/setup as root to add it")
    return MOSQUITTO


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the broker accepts connections, or fail with its log."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mosquitto exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"mosquitto did not listen within {START_TIMEOUT} s: {log.read_text()}")


@contextmanager
def mosquitto_brokers() -> Iterator[StartMosquitto]:
    """Yield a function that starts Mosquitto with a listener on a free loopback port.

    Its log goes to mosquitto.log in the folder. Every broker started is killed at
    the end. The test needs sockets (the `socket_enabled` fixture).
    """
    binary = require_mosquitto()
    processes: list[subprocess.Popen[bytes]] = []

    def start(folder: Path, listener: list[str]) -> int:
        port = free_port()
        log = folder / "mosquitto.log"
        config = folder / "mosquitto.conf"
        lines = [
            f"user {getpass.getuser()}",
            "persistence false",
            f"log_dest file {log}",
            "log_type all",
            f"listener {port} 127.0.0.1",
            *listener,
            "",
        ]
        config.write_text("\n".join(lines))
        process = subprocess.Popen(  # noqa: S603
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        _wait_for_port(port, process, log)
        return port

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)
