"""Receiving push notices over UDP and MQTT: verify each, then pull, one pull at a time.

A notice is only a hint. Whatever arrives is checked against the device's key and the
last counter it accepted; anything else is ignored with one line (at most a burst of
them per minute, so that a flood cannot fill a log) and costs nothing more. Notices
that arrive during a pull are merged into one more pull.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
import itertools
from pathlib import Path
import secrets
import ssl
import threading
import time
from typing import Any, Final
from urllib.parse import urlsplit

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from .errors import ConnectionFailed, SettingsError
from .notice import (
    DEFAULT_UDP_PORT,
    MQTT_QOS,
    Change,
    Notice,
    NoticeForAnotherDevice,
    NoticeIgnored,
    notice_topic,
    read_notice,
    verify_notice,
)

type Inform = Callable[[str], None]
type Pull = Callable[[Notice, str], Awaitable[None]]

DEFAULT_UDP_ADDRESS: Final = "0.0.0.0"  # noqa: S104 - broadcasts reach only a wildcard socket
MQTT_PORT: Final = 1883
MQTTS_PORT: Final = 8883
# Larger MQTT packets are not sent to us at all (MQTT 5 Maximum Packet Size).
MQTT_MAX_PACKET_BYTES: Final = 2048
_KEEPALIVE: Final = 60
_RETRY_DELAYS: Final = (1, 2, 5, 10, 30)
_MAX_QUEUED_MESSAGES: Final = 100
_WARNING_BURST: Final = 20
_WARNING_WINDOW: Final = 60.0
_PULLED: Final = (Change.CONFIG, Change.FIRMWARE, Change.CERTIFICATE)


def pulls_for(changes: frozenset[Change]) -> list[Change]:
    """Return what to pull for a notice's changes, in order; all and check mean everything."""
    if changes & {Change.ALL, Change.CHECK}:
        return list(_PULLED)
    return [change for change in _PULLED if change in changes]


def notice_event(notice: Notice, source: str) -> str:
    """Return the event line of an accepted notice (after the device id)."""
    return f"notice {notice.counter} from {source}: {','.join(sorted(notice.changes))}"


class WarningLimiter:
    """Pass on at most `burst` lines per `window` seconds; count the others and say how many."""

    def __init__(
        self,
        inform: Inform,
        burst: int = _WARNING_BURST,
        window: float = _WARNING_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start an empty window."""
        self._inform = inform
        self._burst = burst
        self._window = window
        self._clock = clock
        self._started = clock()
        self._passed = 0
        self.suppressed = 0

    def __call__(self, message: str) -> None:
        """Pass the line on, unless the window's burst is spent."""
        now = self._clock()
        if now - self._started >= self._window:
            if self.suppressed:
                self._inform(
                    f"{self.suppressed} more notices were ignored in {self._window:g} s"
                )
            self._started, self._passed, self.suppressed = now, 0, 0
        if self._passed < self._burst:
            self._passed += 1
            self._inform(message)
        else:
            self.suppressed += 1


class NoticeInbox:
    """One device's notices: verified with its key and counter, pulled one at a time."""

    def __init__(
        self,
        device_id: str,
        secret: str,
        pull: Pull,
        clock: Callable[[], datetime],
    ) -> None:
        """Accept notices for device_id; `pull` does what one asks for."""
        self.device_id = device_id
        self._secret = secret
        self._pull = pull
        self._clock = clock
        # In memory: after a restart, a notice still within its minute costs one pull.
        self.last_counter = 0
        self._pending: tuple[Notice, str] | None = None
        self._worker: asyncio.Task[None] | None = None

    def offer(self, data: bytes, source: str) -> None:
        """Verify a notice and schedule its pull; NoticeIgnored says why it is not acted on."""
        notice = verify_notice(
            data,
            device_id=self.device_id,
            secret=self._secret,
            now=self._clock(),
            last_counter=self.last_counter,
        )
        self.last_counter = notice.counter
        if self._pending is not None:
            merged = notice.changes | self._pending[0].changes
            notice = replace(notice, changes=merged)
        self._pending = notice, source
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending is not None:
                notice, source = self._pending
                self._pending = None
                await self._pull(notice, source)
        finally:
            self._worker = None

    async def close(self) -> None:
        """Stop a pull that is under way."""
        if (worker := self._worker) is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


class NoticeRouter:
    """Hands each notice to its device's inbox, and says why one is ignored."""

    def __init__(self, inboxes: Iterable[NoticeInbox], warn: Inform) -> None:
        """Route to these inboxes; `warn` gets one line per ignored notice."""
        self._inboxes = {inbox.device_id: inbox for inbox in inboxes}
        self._warn = warn

    def receive(
        self, data: bytes, source: str, topic_device: str | None = None
    ) -> None:
        """Take a notice from `source`; over MQTT, `topic_device` is the topic's key id."""
        try:
            notice, _signed, _signature = read_notice(data)
            if topic_device is not None and notice.device_id != topic_device:
                raise NoticeForAnotherDevice(
                    f"for device {notice.device_id} on the topic of {topic_device}"
                )
            inbox = self._inboxes.get(notice.device_id)
            if inbox is None:
                raise NoticeForAnotherDevice(f"for device {notice.device_id}")
            inbox.offer(data, source)
        except NoticeIgnored as err:
            self._warn(f"ignored a notice from {source}: {err}")

    async def close(self) -> None:
        """Stop every pull under way."""
        await asyncio.gather(*(inbox.close() for inbox in self._inboxes.values()))


class _UdpReceiver(asyncio.DatagramProtocol):
    def __init__(self, router: NoticeRouter) -> None:
        self._router = router

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._router.receive(data, f"udp {addr[0]}:{addr[1]}")


async def open_udp(
    router: NoticeRouter, address: str, port: int
) -> asyncio.DatagramTransport:
    """Receive notices on a UDP address and port (port 0: any free one)."""
    loop = asyncio.get_running_loop()
    try:
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: _UdpReceiver(router), local_addr=(address, port)
        )
    except OSError as err:
        raise ConnectionFailed(
            f"cannot listen on udp {address}:{port}: {err.strerror or err}"
        ) from None
    return transport


@dataclass(frozen=True, slots=True)
class MqttBroker:
    """Where the MQTT broker is: mqtt://host[:1883] or mqtts://host[:8883]."""

    host: str
    port: int
    tls: bool
    username: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MqttBroker:
        """Read a broker URL; a password never goes in it."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise SettingsError(f"not a broker URL: {url!r}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SettingsError(
                f"the broker must be mqtt://host[:port] or mqtts://host[:port], not {url!r}"
            )
        if parts.password is not None:
            raise SettingsError(
                "put the broker password in PROVIDORE_MQTT_PASSWORD, not in the URL"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SettingsError("the broker URL must not have a path or a query")
        tls = parts.scheme == "mqtts"
        default = MQTTS_PORT if tls else MQTT_PORT
        return cls(parts.hostname, port or default, tls, parts.username)

    def __str__(self) -> str:
        """Return the URL, without the user."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def mqtt_tls_context(
    ca: Path | None, certificate: Path | None, key: Path | None
) -> ssl.SSLContext:
    """Return the TLS settings for mqtts: the CA to trust, and the device's certificate."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        if certificate is not None and key is not None:
            context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as err:
        raise SettingsError(f"cannot load the broker's TLS files: {err}") from None
    return context


class MqttNotices:
    """A broker subscription to the devices' notice topics, QoS 1.

    paho-mqtt runs the connection in its own thread and reconnects on its own; every
    message comes back to the event loop, at most 100 waiting at a time.
    """

    def __init__(
        self,
        broker: MqttBroker,
        device_ids: Iterable[str],
        router: NoticeRouter,
        inform: Inform,
        *,
        tls: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> None:
        """Prepare the client; nothing connects before start()."""
        self._broker = broker
        self._topics = [notice_topic(device_id) for device_id in device_ids]
        self._router = router
        self._inform = inform
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._queued = 0
        self._dropped = 0
        self._stopping = False
        self._client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"providore-client-{secrets.token_hex(4)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if broker.username is not None:
            self._client.username_pw_set(broker.username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.reconnect_delay_set(_RETRY_DELAYS[0], _RETRY_DELAYS[-1])
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background, retrying until the broker answers."""
        self._task = self._loop.create_task(self._connect())

    async def close(self) -> None:
        """Disconnect and stop the client's thread."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def _connect(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.MaximumPacketSize = MQTT_MAX_PACKET_BYTES
        for attempt in itertools.count():
            try:
                await asyncio.to_thread(
                    self._client.connect,
                    self._broker.host,
                    self._broker.port,
                    _KEEPALIVE,
                    clean_start=True,
                    properties=properties,
                )
            except OSError as err:
                delay = _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)]
                self._inform(
                    f"mqtt: cannot connect to {self._broker}: {err}; "
                    f"trying again in {delay} s"
                )
                await asyncio.sleep(delay)
            else:
                self._client.loop_start()
                return

    # paho's thread calls these: they only hand over to the event loop.
    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._soon(
                self._inform,
                f"mqtt: {self._broker} refused the connection: {reason_code}",
            )
            return
        options = SubscribeOptions(qos=MQTT_QOS)
        client.subscribe([(topic, options) for topic in self._topics])
        count = len(self._topics)
        self._soon(
            self._inform,
            f"mqtt: connected to {self._broker}, subscribed to "
            + (self._topics[0] if count == 1 else f"{count} topics"),
        )

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self._stopping:
            self._soon(
                self._inform,
                f"mqtt: lost the connection to {self._broker} ({reason_code}); reconnecting",
            )

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        with self._lock:
            if self._queued >= _MAX_QUEUED_MESSAGES:
                self._dropped += 1
                return
            self._queued += 1
        self._soon(self._deliver, message.topic, message.payload)

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _deliver(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._queued -= 1
            dropped, self._dropped = self._dropped, 0
        if dropped:
            self._inform(
                f"mqtt: {dropped} messages dropped: they came faster than they could be checked"
            )
        # Only the subscribed topics arrive: providore/<key id>/notify.
        self._router.receive(payload, f"mqtt {topic}", topic.split("/")[1])


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """Where notices come from: a UDP address and port, a broker, or both."""

    udp: tuple[str, int] | None = (DEFAULT_UDP_ADDRESS, DEFAULT_UDP_PORT)
    mqtt: MqttBroker | None = None
    mqtt_tls: ssl.SSLContext | None = None
    mqtt_password: str | None = None


@asynccontextmanager
async def receiving(
    router: NoticeRouter,
    options: ListenOptions,
    device_ids: list[str],
    inform: Inform,
) -> AsyncIterator[list[str]]:
    """Receive notices while the body runs; yield where they are received."""
    where: list[str] = []
    udp: asyncio.DatagramTransport | None = None
    mqtt: MqttNotices | None = None
    try:
        if options.udp is not None:
            udp = await open_udp(router, *options.udp)
            address, port = udp.get_extra_info("sockname")[:2]
            where.append(f"udp {address}:{port}")
        if options.mqtt is not None:
            mqtt = MqttNotices(
                options.mqtt,
                device_ids,
                router,
                inform,
                tls=options.mqtt_tls,
                password=options.mqtt_password,
            )
            mqtt.start()
            where.append(str(options.mqtt))
        yield where
    finally:
        if udp is not None:
            udp.close()
        if mqtt is not None:
            await mqtt.close()
        await router.close()
