"""A private network namespace with a veth pair, for real multicast and broadcast.

Home Assistant's zeroconf and python-zeroconf ignore loopback, and tests must never
send multicast on the machine's own interfaces. The test thread moves into a new
network namespace with two linked interfaces, SERVER_ADDRESS and CLIENT_ADDRESS;
sockets made there stay there, and the thread goes back to the original namespace
at the end, when the new one vanishes with its last socket.

Needs root (CAP_SYS_ADMIN) and `ip`; without them the test is skipped, except under
CI, where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
import shutil
import subprocess
from unittest.mock import patch

import ifaddr
from ifaddr._posix import get_adapters as real_adapters
import pytest
import pytest_socket

SERVER_ADDRESS = "192.0.2.10"
CLIENT_ADDRESS = "192.0.2.11"
_SETUP = (
    "link set lo up",
    "link add v0 type veth peer name v1",
    f"addr add {SERVER_ADDRESS}/24 dev v0",
    f"addr add {CLIENT_ADDRESS}/24 dev v1",
    "link set v0 up",
    "link set v1 up",
    # Multicast on all interfaces needs a route, as on a real network.
    "route add default via 192.0.2.1 dev v0 onlink",
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"no private network namespace: {reason}")
    pytest.skip(f"no private network namespace: {reason}")


@contextmanager
def private_network() -> Iterator[None]:
    """Run the body in a fresh network namespace; connections may go to its addresses."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if not os.path.exists(ip):  # noqa: PTH110
        _unavailable("the ip command is missing (Debian package iproute2)")
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        os.unshare(os.CLONE_NEWNET)
    except OSError as err:
        os.close(original)
        _unavailable(f"unshare: {err.strerror} (the tests must run as root)")
    try:
        for command in _SETUP:
            result = subprocess.run(  # noqa: S603
                [ip, *command.split()], capture_output=True, text=True, check=False
            )
            if result.returncode:
                _unavailable(f"ip {command}: {result.stderr.strip()}")
        pytest_socket.socket_allow_hosts(["127.0.0.1", SERVER_ADDRESS, CLIENT_ADDRESS])
        # The test harness gives ifaddr a fake adapter list (10.10.10.10) for Home
        # Assistant's network helpers; zeroconf must see the namespace's interfaces.
        with patch.object(ifaddr, "get_adapters", real_adapters):
            yield
    finally:
        pytest_socket.socket_allow_hosts(["127.0.0.1"])
        os.setns(original, os.CLONE_NEWNET)
        os.close(original)
