"""`providore-client listen` and `simulate --listen`: real UDP datagrams and a real Mosquitto.

Notices are built with the integration's notice module, as the server will send them;
the pulls go to the STAND-IN server (real HTTP on loopback).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import ipaddress
import json
import os
from pathlib import Path
import re
import shutil
import socket
import ssl
import tracemalloc
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from custom_components.providore.certificate_authority import (
    CertificateAuthority,
    CertificateUsage,
    certificate_pem,
)
from custom_components.providore.notice import Change, build_notice, notice_topic
from providore_client.api import ProvidoreClient, open_session
from providore_client.certificates import Refresh, refresh_certificate
from providore_client.cli import async_main
from providore_client.errors import ConnectionFailed, SettingsError
from providore_client.listener import (
    MqttBroker,
    MqttNotices,
    NoticeInbox,
    NoticeRouter,
    WarningLimiter,
    mqtt_tls_context,
    open_udp,
    pulls_for,
)
from providore_client.notice import Change as ClientChange, Notice

from . import standin_server as standin
from .conftest import KEY_ID, SECRET_KEY
from .console import Console
from .device import BASE
from .mosquitto import StartMosquitto, free_port, mosquitto_brokers
from .pki import ec_key, key_pem

FIRMWARE = b"\x00pushed firmware\xff" * 64
OTHER_SECRET = "AnotherSecretKeyOf32Characters!!"
CREDENTIALS = ["--device-id", KEY_ID, "--secret", SECRET_KEY]
UDP_SOURCE = re.compile(r"udp 127\.0\.0\.1:\d+")


def notice(
    counter: int,
    *changes: str,
    key_id: str = KEY_ID,
    secret: str = SECRET_KEY,
    age: float = 0,
) -> bytes:
    """Return a notice as the server builds it, made `age` seconds ago."""
    return build_notice(
        key_id=key_id,
        secret_key=secret,
        changes=[Change(change) for change in changes],
        counter=counter,
        now=datetime.now(UTC) - timedelta(seconds=age),
    )


def send_udp(port: int, *datagrams: bytes) -> None:
    """Send each datagram to 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, ("127.0.0.1", port))


@pytest.fixture
def console(capsys: pytest.CaptureFixture[str]) -> Console:
    """Return the output reader."""
    return Console(capsys)


@pytest.fixture
def server() -> standin.StandIn:
    """Return a stand-in that knows the device, with a document and a firmware."""
    return standin.StandIn(
        secrets={KEY_ID: SECRET_KEY},
        documents={KEY_ID: {"interval": 5}},
        firmware=FIRMWARE,
    )


@pytest.fixture
async def standin_url(
    server: standin.StandIn, aiohttp_client: Any, socket_enabled: None
) -> str:
    """Return the base URL of the stand-in server, served on a loopback port."""
    client = await aiohttp_client(server.app())
    return str(client.make_url(BASE))


async def _start_listen(console: Console, *argv: str) -> tuple[asyncio.Task[int], int]:
    """Start `listen` on a free UDP port of 127.0.0.1; return its task and the port."""
    task = asyncio.create_task(
        async_main(["listen", "--udp-address", "127.0.0.1", "--udp-port", "0", *argv])
    )
    match = await console.wait_for(rf"^{KEY_ID} listening on udp 127\.0\.0\.1:(\d+)")
    return task, int(match[1])


async def _stop(task: asyncio.Task[int]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _requests(server: standin.StandIn) -> list[str]:
    return [f"{method} {path}" for method, path, _version, _range in server.requests]


async def test_listen_pulls_what_udp_notices_name(
    standin_url: str, server: standin.StandIn, console: Console, tmp_path: Path
) -> None:
    config_out, firmware_out = tmp_path / "config.json", tmp_path / "firmware.bin"
    task, port = await _start_listen(
        console,
        "--server",
        standin_url,
        *CREDENTIALS,
        "--firmware-version",
        "1.0.0",
        "--config-out",
        str(config_out),
        "--firmware-out",
        str(firmware_out),
        "--key-path",
        str(tmp_path / "device.key"),
        "--cert-path",
        str(tmp_path / "device.pem"),
        "--count",
        "3",
    )
    send_udp(port, notice(1, "config"))
    await console.wait_for("notice 1 done")
    send_udp(port, notice(2, "firmware", "certificate"))
    await console.wait_for("notice 2 done")
    send_udp(port, notice(3, "all"))
    assert await asyncio.wait_for(task, 15) == 0
    console.read()

    expires = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    expected = [
        "listening on udp *",
        "notice 1 from udp *: config",
        f"config fetched, written to {config_out}",
        "notice 1 done",
        "notice 2 from udp *: certificate,firmware",
        f"firmware 1.1.0 written to {firmware_out} ({len(FIRMWARE)} bytes, sha256 ok)",
        f"certificate issued, expires {expires}",
        "notice 2 done",
        "notice 3 from udp *: all",
        f"config fetched, written to {config_out}",
        f"firmware 1.1.0 already written to {firmware_out}",
        f"certificate valid until {expires}",
        "notice 3 done",
    ]
    lines = [UDP_SOURCE.sub("udp *", line) for line in console.out]
    assert len(lines) == len(expected)
    for line, wanted in zip(lines, expected, strict=True):
        assert re.fullmatch(re.escape(f"{KEY_ID} ") + _pattern(wanted), line), line
    assert console.err == []
    assert json.loads(config_out.read_text()) == {"interval": 5}
    assert config_out.stat().st_mode & 0o777 == 0o600
    assert firmware_out.read_bytes() == FIRMWARE
    assert (tmp_path / "device.pem").read_bytes() == server.certificates[KEY_ID]
    assert _requests(server) == [
        "GET /config",
        "GET /firmware/check",
        "GET /firmware",
        "GET /certificate",
        "POST /certificates/request",
        "GET /config",
        "GET /firmware/check",
        "GET /certificate",
    ]


def _pattern(expected: str) -> str:
    """Escape an expected line, keeping the timestamp pattern in it."""
    time_pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    parts = expected.split(time_pattern)
    return time_pattern.join(re.escape(part) for part in parts)


async def test_listen_ignores_bad_notices_and_keeps_running(
    standin_url: str, server: standin.StandIn, console: Console
) -> None:
    server.firmware = None
    task, port = await _start_listen(
        console, "--server", standin_url, *CREDENTIALS, "--count", "2"
    )
    send_udp(port, notice(5, "config"))
    await console.wait_for("notice 5 done")
    send_udp(
        port,
        notice(5, "config"),
        notice(4, "config"),
        notice(9, "config", age=120),
        notice(10, "config", age=-600),
        notice(11, "config", secret=OTHER_SECRET),
        notice(12, "config", key_id="other-device"),
        b"garbage",
        b"providore-notice-v1\n" + b"x" * 600,
        notice(13, "config").replace(b"\nconfig\n", b"\nconfig,reboot\n"),
    )
    await console.wait_for("config,reboot|unknown", stream="err")
    send_udp(port, notice(6, "firmware"))
    assert await asyncio.wait_for(task, 15) == 0
    console.read()

    reasons = [
        "counter 5 is not above 5, the last one accepted",
        "counter 4 is not above 5, the last one accepted",
        r"expired 6\d s ago \(is this clock right\?\)",
        r"made (599|600) s in the future \(is this clock right\?\)",
        "the signature does not match",
        "for device other-device",
        "not a providore-notice-v1",
        "620 bytes, more than 512",
        "an unknown or empty change",
    ]
    assert len(console.err) == len(reasons)
    for line, reason in zip(console.err, reasons, strict=True):
        assert re.fullmatch(
            r"providore-client: ignored a notice from udp 127\.0\.0\.1:\d+: " + reason,
            line,
        ), line
    assert [UDP_SOURCE.sub("udp *", line) for line in console.out][1:] == [
        f"{KEY_ID} notice 5 from udp *: config",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} notice 5 done",
        f"{KEY_ID} notice 6 from udp *: firmware",
        f"{KEY_ID} firmware up to date",
        f"{KEY_ID} notice 6 done",
    ]
    assert _requests(server) == ["GET /config", "GET /firmware/check"]


async def test_failed_pull_is_reported_and_listening_goes_on(
    standin_url: str, server: standin.StandIn, console: Console, tmp_path: Path
) -> None:
    config_out = tmp_path / "missing-folder" / "config.json"
    task, port = await _start_listen(
        console,
        "--server",
        standin_url,
        *CREDENTIALS,
        "--config-out",
        str(config_out),
        # A folder where the key should be: reading it fails.
        "--key-path",
        str(tmp_path),
        "--cert-path",
        str(tmp_path / "device.pem"),
        "--count",
        "3",
    )
    server.attack = standin.WRONG_SIGNATURE
    send_udp(port, notice(1, "config"))
    await console.wait_for("notice 1 failed")
    server.attack = None
    send_udp(port, notice(2, "config"))
    await console.wait_for("notice 2 failed")
    send_udp(port, notice(3, "certificate"))
    assert await asyncio.wait_for(task, 15) == 1
    console.read()
    lines = [
        UDP_SOURCE.sub("udp *", line.removeprefix(f"{KEY_ID} "))
        for line in console.out[1:]
    ]
    assert lines == [
        "notice 1 from udp *: config",
        "failed config: the answer's signature does not match",
        "notice 1 failed",
        "notice 2 from udp *: config",
        f"failed config: cannot write {config_out}: No such file or directory",
        "notice 2 failed",
        "notice 3 from udp *: certificate",
        f"failed certificate: Is a directory: {tmp_path}",
        "notice 3 failed",
    ]


async def test_a_flood_of_garbage_does_not_grow_memory(socket_enabled: None) -> None:
    pulls: list[int] = []
    pulled_one = asyncio.Event()

    async def pull(notice: Notice, source: str) -> None:
        pulls.append(notice.counter)
        pulled_one.set()

    lines: list[str] = []
    # A clock that stands still: however slowly a loaded machine sends the flood,
    # it all falls into one window of the limiter.
    limiter = WarningLimiter(lines.append, clock=lambda: 0.0)
    inbox = NoticeInbox(KEY_ID, SECRET_KEY, pull, lambda: datetime.now(UTC))
    router = NoticeRouter([inbox], limiter)
    transport = await open_udp(router, "127.0.0.1", 0)
    port = transport.get_extra_info("sockname")[1]
    # Garbage, forgeries, and well-formed notices for ever new devices.
    kinds: list[Callable[[int], bytes]] = [
        lambda i: os.urandom(i % 700),
        lambda i: notice(i + 1, "config", secret=OTHER_SECRET),
        lambda i: notice(i + 1, "config", key_id=f"device-{i}", secret=OTHER_SECRET),
    ]
    payloads = [kinds[i % 3](i) for i in range(3000)]

    async def flood() -> None:
        # The loop reads one datagram per turn: hand it a turn per datagram.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in payloads:
                sender.sendto(payload, ("127.0.0.1", port))
                await asyncio.sleep(0)
        await asyncio.sleep(0.1)

    tracemalloc.start()
    try:
        await flood()
        baseline = tracemalloc.get_traced_memory()[0]
        for _round in range(5):
            await flood()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes more after 15000 bad notices"
    assert len(lines) == 20
    assert limiter.suppressed > 10_000
    assert pulls == []
    send_udp(port, notice(1, "config"))
    await asyncio.wait_for(pulled_one.wait(), 5)
    assert pulls == [1]
    transport.close()
    await router.close()


async def test_notices_during_a_pull_make_one_more_pull() -> None:
    gate = asyncio.Event()
    second = asyncio.Event()
    pulls: list[tuple[int, frozenset[ClientChange]]] = []

    async def pull(notice: Notice, source: str) -> None:
        pulls.append((notice.counter, notice.changes))
        if len(pulls) == 2:
            second.set()
        await gate.wait()

    inbox = NoticeInbox(KEY_ID, SECRET_KEY, pull, lambda: datetime.now(UTC))
    inbox.offer(notice(1, "config"), "test")
    await asyncio.sleep(0)
    for counter in range(2, 501):
        inbox.offer(notice(counter, "firmware" if counter % 2 else "certificate"), "t")
    gate.set()
    await asyncio.wait_for(second.wait(), 5)
    await asyncio.sleep(0.05)
    assert pulls == [
        (1, {ClientChange.CONFIG}),
        (500, {ClientChange.FIRMWARE, ClientChange.CERTIFICATE}),
    ]
    assert inbox.last_counter == 500
    # A pull under way is cancelled on close.
    gate.clear()
    inbox.offer(notice(501, "config"), "test")
    await asyncio.sleep(0)
    await inbox.close()
    assert len(pulls) == 3


def test_warning_limiter_counts_what_it_holds_back() -> None:
    now = [0.0]
    lines: list[str] = []
    limiter = WarningLimiter(lines.append, burst=2, window=10, clock=lambda: now[0])
    for number in range(5):
        limiter(f"line {number}")
    now[0] = 10
    limiter("line 5")
    assert lines == [
        "line 0",
        "line 1",
        "3 more notices were ignored in 10 s",
        "line 5",
    ]
    now[0] = 25
    limiter("line 6")
    assert lines[-1] == "line 6"


def test_what_each_change_pulls() -> None:
    everything = [ClientChange.CONFIG, ClientChange.FIRMWARE, ClientChange.CERTIFICATE]
    assert pulls_for(frozenset({ClientChange.ALL})) == everything
    assert pulls_for(frozenset({ClientChange.CHECK, ClientChange.CONFIG})) == everything
    assert pulls_for(frozenset({ClientChange.CERTIFICATE, ClientChange.CONFIG})) == [
        ClientChange.CONFIG,
        ClientChange.CERTIFICATE,
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.lan", "mqtt://broker.lan:1883"),
        ("mqtts://broker.lan", "mqtts://broker.lan:8883"),
        ("mqtt://device@10.0.0.2:1884/", "mqtt://10.0.0.2:1884"),
        ("mqtts://[2001:db8::1]:8884", "mqtts://[2001:db8::1]:8884"),
    ],
)
def test_broker_urls(url: str, expected: str) -> None:
    assert str(MqttBroker.from_url(url)) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker.lan", "must be mqtt://host"),
        ("mqtt://", "must be mqtt://host"),
        ("mqtt://user:secret@broker.lan", "PROVIDORE_MQTT_PASSWORD"),
        ("mqtt://broker.lan/topic", "path"),
        ("mqtt://broker.lan:99999", "not a broker URL"),
    ],
)
def test_broker_url_errors(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        MqttBroker.from_url(url)
    assert "secret" not in str(caught.value)


def test_tls_files_must_load(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot load the broker's TLS files"):
        mqtt_tls_context(tmp_path / "missing.pem", None, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-udp"], "nothing to listen on: give --mqtt, or leave out --no-udp"),
        (["--mqtt", "mqtt://127.0.0.1", "--mqtt-ca", "ca.pem"], "--mqtt-ca needs an mqtts:// broker"),
        (["--mqtt", "ftp://127.0.0.1"], "the broker must be mqtt://host[:port] or mqtts://host[:port], not 'ftp://127.0.0.1'"),
    ],
)  # fmt: skip
async def test_listen_refuses_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await async_main(["listen", "--server", "http://x", *CREDENTIALS, *argv])
    assert status == 1
    assert capsys.readouterr().err == f"providore-client: error: {message}\n"


async def test_listen_says_when_the_port_is_taken(
    standin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        argv = ["listen", "--server", standin_url, *CREDENTIALS]
        status = await async_main(
            [*argv, "--udp-address", "127.0.0.1", "--udp-port", str(port)]
        )
    assert status == 1
    assert capsys.readouterr().err == (
        f"providore-client: error: cannot listen on udp 127.0.0.1:{port}: "
        "Address already in use\n"
    )
    with pytest.raises(ConnectionFailed):
        await open_udp(NoticeRouter([], print), "192.0.2.200", 0)


async def test_listen_port_must_be_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        await async_main(["listen", "--udp-port", "70000"])
    assert caught.value.code == 2
    assert "must be a port, 0 to 65535" in capsys.readouterr().err


# MQTT ---------------------------------------------------------------------------


@pytest.fixture
def start_mosquitto(socket_enabled: None) -> Iterator[StartMosquitto]:
    """Return a function that starts Mosquitto; every broker stops with the test."""
    with mosquitto_brokers() as start:
        yield start


def publish(
    port: int, topic: str, payload: bytes, tls: ssl.SSLContext | None = None
) -> None:
    """Publish as the server does: QoS 1, retained (blocking: run it in a thread)."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="homeassistant")
    if tls is not None:
        client.tls_set_context(tls)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_listen_over_mqtt_with_a_retained_notice(
    standin_url: str,
    server: standin.StandIn,
    console: Console,
    start_mosquitto: StartMosquitto,
    tmp_path: Path,
) -> None:
    port = start_mosquitto(tmp_path, ["allow_anonymous true"])
    topic = notice_topic(KEY_ID)
    # Published before the device listens: the broker keeps it for the device.
    await asyncio.to_thread(publish, port, topic, notice(1, "config"))
    argv = ["--server", standin_url, *CREDENTIALS, "--no-udp", "--count", "2"]
    task = asyncio.create_task(
        async_main(["listen", *argv, "--mqtt", f"mqtt://127.0.0.1:{port}"])
    )
    await console.wait_for("notice 1 done")
    for payload in (
        b"garbage",
        notice(7, "config", key_id="other-device"),
        notice(2, "firmware", secret=OTHER_SECRET),
        notice(2, "firmware"),
    ):
        await asyncio.to_thread(publish, port, topic, payload)
    assert await asyncio.wait_for(task, 15) == 0
    console.read()
    source = f"mqtt {topic}"
    assert console.out == [
        f"{KEY_ID} listening on mqtt://127.0.0.1:{port}",
        f"{KEY_ID} notice 1 from {source}: config",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} notice 1 done",
        f"{KEY_ID} notice 2 from {source}: firmware",
        f"{KEY_ID} firmware 1.1.0 available",
        f"{KEY_ID} notice 2 done",
    ]
    ignored = f"providore-client: ignored a notice from {source}: "
    assert console.err == [
        f"providore-client: mqtt: connected to mqtt://127.0.0.1:{port}, subscribed to {topic}",
        ignored + "not a providore-notice-v1",
        ignored + f"for device other-device on the topic of {KEY_ID}",
        ignored + "the signature does not match",
    ]


async def test_listen_keeps_trying_an_absent_broker(
    standin_url: str, console: Console
) -> None:
    port = free_port()
    argv = ["--server", standin_url, *CREDENTIALS, "--no-udp"]
    task = asyncio.create_task(
        async_main(["listen", *argv, "--mqtt", f"mqtt://127.0.0.1:{port}"])
    )
    await console.wait_for(
        rf"mqtt: cannot connect to mqtt://127\.0\.0\.1:{port}: .*refused; "
        "trying again in 1 s",
        stream="err",
    )
    await _stop(task)


@dataclass(frozen=True)
class Pki:
    """A CA, a broker certificate for 127.0.0.1, and client certificates, in files."""

    ca: Path
    device_cert: Path
    device_key: Path
    publisher: ssl.SSLContext


def _issue(
    authority: CertificateAuthority,
    folder: Path,
    name: str,
    usage: CertificateUsage,
) -> tuple[Path, Path]:
    key = ec_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    if usage is CertificateUsage.SERVER:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    certificate = authority.issue(
        builder.sign(key, hashes.SHA256()),
        usage=usage,
        now=datetime.now(UTC),
        validity=timedelta(days=1),
        crl_url=None,
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_text(certificate_pem(certificate))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """Make the certificates of a TLS broker that requires client certificates."""
    authority = CertificateAuthority.create("Providore", datetime.now(UTC))
    ca = tmp_path / "ca.pem"
    ca.write_text(authority.certificate_pem)
    _issue(authority, tmp_path, "broker", CertificateUsage.SERVER)
    device_cert, device_key = _issue(
        authority, tmp_path, KEY_ID, CertificateUsage.CLIENT
    )
    publisher_cert, publisher_key = _issue(
        authority, tmp_path, "homeassistant", CertificateUsage.CLIENT
    )
    publisher = ssl.create_default_context(cafile=str(ca))
    publisher.load_cert_chain(publisher_cert, publisher_key)
    return Pki(ca, device_cert, device_key, publisher)


async def test_listen_over_mqtt_with_tls_and_a_client_certificate(
    standin_url: str,
    console: Console,
    start_mosquitto: StartMosquitto,
    pki: Pki,
    tmp_path: Path,
) -> None:
    port = start_mosquitto(
        tmp_path,
        [
            f"cafile {pki.ca}",
            f"certfile {tmp_path / 'broker.pem'}",
            f"keyfile {tmp_path / 'broker.key'}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
        ],
    )
    topic = notice_topic(KEY_ID)
    await asyncio.to_thread(publish, port, topic, notice(1, "config"), pki.publisher)
    broker = f"mqtts://127.0.0.1:{port}"
    argv = ["--server", standin_url, *CREDENTIALS, "--no-udp", "--count", "1"]
    tls = ["--mqtt-ca", str(pki.ca), "--cert-path", str(pki.device_cert)]
    status = await async_main(
        ["listen", *argv, "--mqtt", broker, *tls, "--key-path", str(pki.device_key)]
    )
    console.read()
    assert status == 0
    assert console.out[1:] == [
        f"{KEY_ID} notice 1 from mqtt {topic}: config",
        f"{KEY_ID} config fetched",
        f"{KEY_ID} notice 1 done",
    ]
    assert console.err == [
        f"providore-client: mqtt: connected to {broker}, subscribed to {topic}"
    ]
    # The broker took the device's certificate for its identity.
    log = (tmp_path / "mosquitto.log").read_text()
    assert re.search(rf"as providore-client-\w+ \(p5, c1, k60, u'{KEY_ID}'\)", log)


async def test_tls_broker_refuses_a_device_without_a_certificate(
    standin_url: str,
    console: Console,
    start_mosquitto: StartMosquitto,
    pki: Pki,
    tmp_path: Path,
) -> None:
    port = start_mosquitto(
        tmp_path,
        [
            f"cafile {pki.ca}",
            f"certfile {tmp_path / 'broker.pem'}",
            f"keyfile {tmp_path / 'broker.key'}",
            "require_certificate true",
            "use_identity_as_username true",
        ],
    )
    broker = f"mqtts://127.0.0.1:{port}"
    argv = ["--server", standin_url, *CREDENTIALS, "--no-udp", "--mqtt", broker]
    # --cert-path names a certificate the device does not have yet.
    missing = ["--cert-path", str(tmp_path / "none.pem"), "--key-path", "none.key"]
    task = asyncio.create_task(
        async_main(["listen", *argv, "--mqtt-ca", str(pki.ca), *missing])
    )
    await console.wait_for(
        rf"mqtt: (cannot connect to|lost the connection to) {re.escape(broker)}",
        stream="err",
    )
    await _stop(task)
    assert console.out == [f"{KEY_ID} listening on {broker}"]


# The simulator ------------------------------------------------------------------

DEVICES = {"garden-1": "garden-1-secret-0123456789", "garden-2": "garden-2-secret-0123456789"}  # fmt: skip


async def test_simulator_listens_between_rounds(
    standin_url: str, server: standin.StandIn, console: Console, tmp_path: Path
) -> None:
    server.secrets = dict(DEVICES)
    server.documents = {"garden-1": {"interval": 5}}
    server.firmware = None
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n"
        + "".join(f"  - {{id: {d}, secret: {s}, version: '1.0.0'}}\n" for d, s in DEVICES.items())
    )  # fmt: skip
    task = asyncio.create_task(
        async_main(
            [
                "simulate",
                "--server",
                standin_url,
                "--devices-file",
                str(devices),
                "--interval",
                "3600",
                "--listen",
                "--udp-address",
                "127.0.0.1",
                "--udp-port",
                "0",
            ]
        )
    )
    match = await console.wait_for(r"^garden-1 listening on udp 127\.0\.0\.1:(\d+)$")
    port = int(match[1])
    await console.wait_for("^garden-1 round 1 done")
    await console.wait_for("^garden-2 round 1 done")
    console.out.clear()

    server.firmware = FIRMWARE
    send_udp(port, notice(1, "firmware", key_id="garden-1", secret=DEVICES["garden-1"]))
    await console.wait_for("^garden-1 notice 1 done")
    # The server's record of garden-2's certificate is gone (revoked): it asks anew.
    del server.certificates["garden-2"]
    send_udp(
        port,
        notice(1, "certificate", key_id="garden-2", secret=DEVICES["garden-2"]),
        notice(1, "config", key_id="garden-3", secret=DEVICES["garden-2"]),
    )
    await console.wait_for("^garden-2 notice 1 done")
    await console.wait_for("for device garden-3", stream="err")
    await _stop(task)
    console.read()
    lines = [UDP_SOURCE.sub("udp *", line) for line in console.out]
    assert lines[:5] == [
        "garden-1 notice 1 from udp *: firmware",
        "garden-1 firmware 1.1.0 available",
        f"garden-1 firmware 1.1.0 downloaded ({len(FIRMWARE)} bytes, sha256 ok)",
        "garden-1 rebooted into 1.1.0",
        "garden-1 notice 1 done",
    ]
    assert lines[5] == "garden-2 notice 1 from udp *: certificate"
    assert re.fullmatch(r"garden-2 certificate issued, expires \S+Z", lines[6])
    assert lines[7:] == ["garden-2 notice 1 done"]
    assert [UDP_SOURCE.sub("udp *", line) for line in console.err] == [
        "providore-client: ignored a notice from udp *: for device garden-3"
    ]


async def test_listen_with_a_broker_password(
    standin_url: str,
    console: Console,
    start_mosquitto: StartMosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = tmp_path / "passwords"
    mosquitto_passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    process = await asyncio.create_subprocess_exec(
        mosquitto_passwd, "-b", "-c", str(passwords), "device", "broker-password"
    )
    assert await process.wait() == 0
    port = start_mosquitto(
        tmp_path, [f"password_file {passwords}", "allow_anonymous false"]
    )
    broker = f"mqtt://device@127.0.0.1:{port}"
    argv = ["--server", standin_url, *CREDENTIALS, "--no-udp", "--mqtt", broker]
    monkeypatch.setenv("PROVIDORE_MQTT_PASSWORD", "wrong-password")
    task = asyncio.create_task(async_main(["listen", *argv]))
    await console.wait_for(
        rf"mqtt: mqtt://127\.0\.0\.1:{port} refused the connection: Not authorized",
        stream="err",
    )
    await _stop(task)

    monkeypatch.setenv("PROVIDORE_MQTT_PASSWORD", "broker-password")
    task = asyncio.create_task(async_main(["listen", *argv, "--count", "1"]))
    await console.wait_for("mqtt: connected to", stream="err")
    await asyncio.to_thread(
        _publish_as, port, "device", "broker-password", notice(1, "config")
    )
    assert await asyncio.wait_for(task, 15) == 0
    console.read()
    assert console.out[-1] == f"{KEY_ID} notice 1 done"
    assert all("broker-password" not in line for line in console.out + console.err)


def _publish_as(port: int, user: str, password: str, payload: bytes) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="homeassistant")
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(notice_topic(KEY_ID), payload, qos=1, retain=True)
        info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_mqtt_messages_beyond_the_queue_are_dropped_and_counted() -> None:
    received: list[str] = []
    lines: list[str] = []
    router = NoticeRouter([], received.append)
    mqtt = MqttNotices(
        MqttBroker("127.0.0.1", 1, tls=False), [KEY_ID], router, lines.append
    )
    topic = notice_topic(KEY_ID).encode()
    for _ in range(150):
        message = MQTTMessage(topic=topic)
        message.payload = b"garbage"
        # As paho's thread would: faster than the event loop takes them.
        mqtt._on_message(mqtt._client, None, message)
    await asyncio.sleep(0.05)
    assert len(received) == 100
    assert lines == [
        "mqtt: 50 messages dropped: they came faster than they could be checked"
    ]
    await mqtt.close()


async def test_listen_reports_what_it_does_not_write(
    standin_url: str, server: standin.StandIn, console: Console
) -> None:
    server.documents = {}
    task, port = await _start_listen(
        console, "--server", standin_url, *CREDENTIALS, "--count", "3"
    )
    send_udp(port, notice(1, "config", "certificate"))
    await console.wait_for("notice 1 done")
    server.certificates[KEY_ID] = b"not a certificate"
    send_udp(port, notice(2, "certificate"))
    await console.wait_for("notice 2 failed")
    server.certificates[KEY_ID] = server.issue(
        ec_key().public_key(), KEY_ID, timedelta(days=30)
    )
    send_udp(port, notice(3, "certificate"))
    assert await asyncio.wait_for(task, 15) == 1
    console.read()
    lines = [line.removeprefix(f"{KEY_ID} ") for line in console.out]
    assert lines[2:4] == ["config missing", "certificate missing"]
    assert lines[6] == "failed certificate: the answer is not a PEM certificate"
    assert re.fullmatch(r"certificate valid until \S+Z", lines[9])


async def test_certificate_refresh_asks_anew_for_another_key_or_an_expired_one(
    standin_url: str, server: standin.StandIn
) -> None:
    key = ec_key()
    async with open_session() as session:
        client = ProvidoreClient(session, standin_url, KEY_ID, SECRET_KEY, "1.0.0")
        now = datetime.now(UTC)
        server.certificates[KEY_ID] = server.issue(
            ec_key().public_key(), KEY_ID, timedelta(days=30)
        )
        certificate, pem, outcome = await refresh_certificate(client, key, None, now)
        assert outcome is Refresh.ISSUED
        assert server.certificates[KEY_ID] == pem
        again = await refresh_certificate(client, key, certificate, now)
        assert again[2] is Refresh.UNCHANGED
        later = now + timedelta(days=400)
        renewed = await refresh_certificate(client, key, certificate, later)
        assert renewed[2] is Refresh.ISSUED
        server.certificates[KEY_ID] = pem
        assert (await refresh_certificate(client, key, None, now))[2] is Refresh.UPDATED
