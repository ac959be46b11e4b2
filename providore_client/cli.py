"""The `providore-client` command line: settings, commands, exit statuses.

Results go to standard output; messages and errors go to standard error, one line
each. Exit statuses: 0 success, 1 failure, 2 bad usage, 3 `check` (or `esphome
check|download`) found nothing to install, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
import json
import os
from pathlib import Path
import sys

from . import __version__
from .api import ProvidoreClient, open_session
from .certificates import ensure_certificate, load_or_create_key
from .discovery import DEFAULT_WITHIN, discover_server
from .errors import ProvidoreError, SettingsError
from .esphome import check_source_url, download_update, fetch_update
from .esphome_simulator import SimulatedEsphomeDevice
from .firmware import download_firmware
from .listener import (
    DEFAULT_UDP_ADDRESS,
    ListenOptions,
    MqttBroker,
    NoticeInbox,
    NoticeRouter,
    WarningLimiter,
    mqtt_tls_context,
    receiving,
)
from .notice import DEFAULT_UDP_PORT
from .protocol import format_time, utc_now
from .pulls import FilePuller
from .settings import Settings, resolve_settings
from .simulator import DeviceSpec, load_devices, simulate

PROG = "providore-client"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UP_TO_DATE = 3
EXIT_INTERRUPTED = 130
DEFAULT_RENEW_DAYS = 30
DEFAULT_INTERVAL = 60.0
MQTT_PASSWORD_VARIABLE = "PROVIDORE_MQTT_PASSWORD"  # noqa: S105 - a variable name

type Handler = Callable[[Settings, argparse.Namespace], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        return asyncio.run(async_main(argv))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def async_main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the command in the running event loop."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = resolve_settings(
            vars(args), os.environ, getattr(args, "config", None)
        )
        return await handler(settings, args)
    except ProvidoreError as err:
        _error(str(err))
    except OSError as err:
        _error(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
    return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """Return the parser; settings flags work before and after the command."""
    settings = _settings_parser()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[settings],
        description="Reference device client for Providore (protocol version 1).",
        epilog="Settings come from flags, then PROVIDORE_SERVER, PROVIDORE_DEVICE_ID, "
        "PROVIDORE_SECRET and PROVIDORE_FIRMWARE_VERSION, then the --config file. "
        "Exit status: 0 success, 1 failure, 2 bad usage, 3 check: up to date "
        "(esphome check|download too).",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, parents=[settings], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        return sub

    command(
        "discover",
        _discover,
        "find the server by zeroconf and print its base URL",
    )
    command("config", _config, "print the verified configuration document (JSON)")
    command(
        "check",
        _check,
        "print the firmware version to install (exit 0), or exit 3 when up to date; "
        "the protocol does not sign this answer (302), so its version is only a hint: "
        "the firmware download itself is verified",
    )
    firmware = command(
        "firmware",
        _firmware,
        "download and verify the firmware, resuming a partial download",
    )
    firmware.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="where to write the firmware",
    )
    certificate = command(
        "certificate",
        _certificate,
        "create a key if needed and obtain a certificate, renewing one that expires soon",
    )
    _add_renew_days(certificate)
    simulator = command(
        "simulate",
        _simulate,
        "run simulated devices that behave like the real firmware",
    )
    simulator.add_argument(
        "--devices-file",
        type=Path,
        metavar="FILE",
        help="YAML or JSON list of devices (id, secret, firmware_type, version); "
        "without it, one device from --device-id and --secret",
    )
    simulator.add_argument(
        "--devices",
        type=_positive_int,
        metavar="N",
        help="simulate the first N devices of the file",
    )
    simulator.add_argument(
        "--interval",
        type=_positive_float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"time between rounds (default {DEFAULT_INTERVAL:g})",
    )
    rounds = simulator.add_mutually_exclusive_group()
    rounds.add_argument("--once", action="store_true", help="run a single round")
    rounds.add_argument(
        "--rounds",
        type=_positive_int,
        metavar="N",
        help="run N rounds (default: until stopped)",
    )
    _add_renew_days(simulator)
    simulator.add_argument(
        "--listen",
        action="store_true",
        help="also pull on push notices (UDP and/or --mqtt), between the rounds",
    )
    _add_listen_options(simulator)
    listen = command(
        "listen",
        _listen,
        "wait for push notices (UDP, MQTT) and pull what each one names",
    )
    _add_listen_options(listen)
    listen.add_argument(
        "--config-out",
        type=Path,
        metavar="FILE",
        help="write the configuration document here (else only report it)",
    )
    listen.add_argument(
        "--firmware-out",
        type=Path,
        metavar="FILE",
        help="download the firmware here (else only report its version)",
    )
    listen.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="exit after N notices (default: run until stopped)",
    )
    _add_esphome_commands(commands, settings)
    return parser


def _add_esphome_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    settings: argparse.ArgumentParser,
) -> None:
    """Add `esphome check|download`: a device running ESPHome's http_request update."""
    help_text = (
        "behave like an ESPHome device with `update: platform: http_request`: no "
        "signatures, the manifest at --source, --firmware-version as its project version"
    )
    esphome = commands.add_parser("esphome", help=help_text, description=help_text)
    actions = esphome.add_subparsers(
        dest="esphome_command", required=True, metavar="ACTION"
    )
    for name, handler, action_help in (
        (
            "check",
            _esphome_check,
            "print the version the manifest offers (exit 0), or exit 3 when it is "
            "the running version",
        ),
        (
            "download",
            _esphome_download,
            "download the offered firmware and check its MD5 (and SHA-256), or exit 3 "
            "when it is the running version",
        ),
    ):
        action = actions.add_parser(
            name, parents=[settings], help=action_help, description=action_help
        )
        action.set_defaults(handler=handler)
        action.add_argument(
            "--source",
            required=True,
            metavar="URL",
            help="the manifest URL (the device's `update: source:`)",
        )
        action.add_argument(
            "--chip-family",
            required=True,
            metavar="FAMILY",
            help="the chip family as ESPHome names it: ESP32, ESP32-C3, ESP8266 ...",
        )
        if name == "download":
            action.add_argument(
                "--out",
                type=Path,
                required=True,
                metavar="FILE",
                help="where to write the firmware",
            )
    simulate_help = (
        "run a simulated ESPHome device that installs every update it is offered: "
        "check, download, reboot, check again; one event line per step"
    )
    simulate = actions.add_parser(
        "simulate", parents=[settings], help=simulate_help, description=simulate_help
    )
    simulate.set_defaults(handler=_esphome_simulate)
    simulate.add_argument(
        "--source", required=True, metavar="URL", help="the manifest URL"
    )
    simulate.add_argument(
        "--chip-family", required=True, metavar="FAMILY", help="ESP32, ESP32-C3, ..."
    )
    simulate.add_argument(
        "--name",
        default="esphome",
        help="the name event lines start with (no spaces; default esphome)",
    )
    simulate.add_argument(
        "--interval",
        type=_positive_float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"time between checks (default {DEFAULT_INTERVAL:g}; ESPHome's is 6 h)",
    )
    simulate.add_argument(
        "--rounds",
        type=_positive_int,
        metavar="N",
        help="run N rounds (default: until stopped)",
    )


def _add_listen_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("push notices")
    group.add_argument(
        "--udp-port",
        type=_port,
        default=DEFAULT_UDP_PORT,
        metavar="PORT",
        help=f"UDP port for notices (default {DEFAULT_UDP_PORT}; 0: any free port)",
    )
    group.add_argument(
        "--udp-address",
        default=DEFAULT_UDP_ADDRESS,
        metavar="ADDRESS",
        help=f"address to receive notices on (default {DEFAULT_UDP_ADDRESS}: all, with broadcasts)",
    )
    group.add_argument(
        "--no-udp", action="store_true", help="receive notices over MQTT only"
    )
    group.add_argument(
        "--mqtt",
        metavar="URL",
        help="broker to subscribe to, mqtt://[user@]host[:1883] or mqtts://[user@]host[:8883]; "
        f"the password comes from {MQTT_PASSWORD_VARIABLE}",
    )
    group.add_argument(
        "--mqtt-ca",
        type=Path,
        metavar="FILE",
        help="CA certificate to trust for an mqtts broker (default: the system's); "
        "--cert-path and --key-path, when the certificate exists, are the client certificate",
    )


def _settings_parser() -> argparse.ArgumentParser:
    # SUPPRESS keeps a flag given before the command from being reset by the subcommand.
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("settings")
    text_flags = (
        (
            "--server",
            "URL",
            "base URL, e.g. http://homeassistant.local:8123/api/providore",
        ),
        ("--device-id", "ID", "the device's key id"),
        ("--secret", "KEY", "the device's secret key"),
        ("--firmware-version", "VERSION", "the version to report (default 0.0.0)"),
    )
    file_flags = (
        (
            "--ca",
            "CA certificate file to trust for an https server; "
            "a server found by zeroconf must advertise a CA in it",
        ),
        ("--cert-path", "the device certificate (PEM)"),
        ("--key-path", "the device's private key (PEM, created 0600 when missing)"),
        ("--config", "YAML file with the settings above (snake_case keys)"),
    )
    for flag, metavar, help_text in text_flags:
        group.add_argument(
            flag, metavar=metavar, help=help_text, default=argparse.SUPPRESS
        )
    for flag, help_text in file_flags:
        group.add_argument(
            flag, metavar="FILE", type=Path, help=help_text, default=argparse.SUPPRESS
        )
    group.add_argument(
        "--accept-expiry-at-creation",
        action="store_true",
        default=argparse.SUPPRESS,
        help="accept answers whose expiry equals their created-at (a fault of the "
        "original Providore server) as valid for 15 minutes from created-at",
    )
    group.add_argument(
        "--discover-wait",
        type=_positive_float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help="without a server: how long to look for one by zeroconf "
        f"(default {DEFAULT_WITHIN:g})",
    )
    return parser


def _add_renew_days(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--renew-days",
        type=_non_negative_int,
        default=DEFAULT_RENEW_DAYS,
        metavar="N",
        help=f"renew a certificate that expires within N days (default {DEFAULT_RENEW_DAYS})",
    )


async def _discover(settings: Settings, args: argparse.Namespace) -> int:
    _output(await _server_url(settings, args))
    return EXIT_OK


async def _config(settings: Settings, args: argparse.Namespace) -> int:
    async with _device_client(settings, args) as client:
        document = await client.fetch_config()
        config_url = client.url("/config")
    if document is None:
        raise ProvidoreError(
            f"404 from {config_url}: wrong --server, "
            "or no configuration document for this device"
        )
    _output(json.dumps(document, indent=2, ensure_ascii=False))
    return EXIT_OK


async def _check(settings: Settings, args: argparse.Namespace) -> int:
    async with _device_client(settings, args) as client:
        version = await client.check_firmware()
    if version is None:
        _inform(f"up to date (running {settings.firmware_version})")
        return EXIT_UP_TO_DATE
    _inform(f"firmware {version} is assigned (running {settings.firmware_version})")
    _output(version)
    return EXIT_OK


async def _firmware(settings: Settings, args: argparse.Namespace) -> int:
    target: Path = args.out
    async with _device_client(settings, args) as client:
        firmware = await download_firmware(client, target)
    resumed = (
        f", resumed at byte {firmware.resumed_from}" if firmware.resumed_from else ""
    )
    if firmware.version is None:
        _inform(
            f"firmware written to {target} ({firmware.size} bytes, {firmware.checks}"
            f"{resumed}); the server did not name its version"
        )
        return EXIT_OK
    _inform(
        f"firmware {firmware.version} written to {target} "
        f"({firmware.size} bytes, {firmware.checks}{resumed})"
    )
    _output(firmware.version)
    return EXIT_OK


async def _certificate(settings: Settings, args: argparse.Namespace) -> int:
    key_path, cert_path = settings.path("key_path"), settings.path("cert_path")
    renew_within = timedelta(days=args.renew_days)
    async with _device_client(settings, args) as client:
        key, created = load_or_create_key(key_path)
        if created:
            _inform(f"created a new EC P-256 key in {key_path}")
        outcome = await ensure_certificate(
            client, key, cert_path, utc_now(), renew_within
        )
    expires = format_time(outcome.not_after)
    if outcome.issued:
        _inform(f"certificate issued, expires {expires}, written to {cert_path}")
    else:
        _inform(
            f"certificate valid until {expires}, more than {args.renew_days} days: not renewed"
        )
    return EXIT_OK


async def _listen(settings: Settings, args: argparse.Namespace) -> int:
    options = _listen_options(settings, args)
    async with _device_client(settings, args) as client:
        puller = FilePuller(
            client,
            _output,
            utc_now,
            config_out=args.config_out,
            firmware_out=args.firmware_out,
            key_path=settings.key_path,
            cert_path=settings.cert_path,
            count=args.count,
        )
        inbox = NoticeInbox(client.device_id, client.secret, puller.pull, utc_now)
        router = NoticeRouter([inbox], WarningLimiter(_inform))
        async with receiving(router, options, [client.device_id], _inform) as where:
            _output(f"{client.device_id} listening on {', '.join(where)}")
            await puller.finished.wait()
    return EXIT_OK if puller.all_succeeded else EXIT_FAILURE


def _listen_options(settings: Settings, args: argparse.Namespace) -> ListenOptions:
    udp = None if args.no_udp else (args.udp_address, args.udp_port)
    broker = MqttBroker.from_url(args.mqtt) if args.mqtt else None
    if udp is None and broker is None:
        raise SettingsError("nothing to listen on: give --mqtt, or leave out --no-udp")
    if broker is None or not broker.tls:
        if args.mqtt_ca is not None:
            raise SettingsError("--mqtt-ca needs an mqtts:// broker")
        tls = None
    else:
        # The device's certificate, once it has one, is its client certificate.
        certificate, key = settings.cert_path, settings.key_path
        if certificate is None or key is None or not certificate.exists():
            certificate = key = None
        tls = mqtt_tls_context(args.mqtt_ca, certificate, key)
    return ListenOptions(
        udp=udp,
        mqtt=broker,
        mqtt_tls=tls,
        mqtt_password=os.environ.get(MQTT_PASSWORD_VARIABLE),
    )


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    specs = _simulated_devices(settings, args)
    listen = _listen_options(settings, args) if args.listen else None
    base_url = await _server_url(settings, args)
    async with open_session(settings.ca) as session:
        succeeded = await simulate(
            session,
            base_url,
            specs,
            emit=_output,
            rounds=1 if args.once else args.rounds,
            interval=args.interval,
            renew_within=timedelta(days=args.renew_days),
            clock=utc_now,
            accept_expiry_at_creation=settings.accept_expiry_at_creation,
            listen=listen,
            inform=_inform,
        )
    return EXIT_OK if succeeded else EXIT_FAILURE


async def _esphome_check(settings: Settings, args: argparse.Namespace) -> int:
    source = check_source_url(args.source)
    async with open_session(settings.ca) as session:
        update = await fetch_update(session, source, args.chip_family)
    running = settings.firmware_version
    if not update.offers_update(running):
        _inform(
            f"up to date: the manifest offers {update.latest_version!r}, the running version"
        )
        return EXIT_UP_TO_DATE
    _inform(
        f"{args.chip_family} firmware {update.latest_version} is offered (running {running})"
    )
    _output(update.latest_version)
    return EXIT_OK


async def _esphome_download(settings: Settings, args: argparse.Namespace) -> int:
    source = check_source_url(args.source)
    target: Path = args.out
    async with open_session(settings.ca) as session:
        update = await fetch_update(session, source, args.chip_family)
        if not update.offers_update(settings.firmware_version):
            _inform(
                f"up to date: the manifest offers {update.latest_version!r}, the running version"
            )
            return EXIT_UP_TO_DATE
        firmware = await download_update(session, update, target)
    sha256 = ", sha256 ok" if firmware.sha256_checked else ""
    _inform(
        f"firmware {update.latest_version} written to {target} "
        f"({firmware.size} bytes, md5 ok{sha256})"
    )
    _output(update.latest_version)
    return EXIT_OK


async def _esphome_simulate(settings: Settings, args: argparse.Namespace) -> int:
    source = check_source_url(args.source)
    if not args.name or any(char.isspace() for char in args.name):
        raise SettingsError("--name must be one word: it starts every event line")
    async with open_session(settings.ca) as session:
        device = SimulatedEsphomeDevice(
            session,
            source,
            args.chip_family,
            settings.firmware_version,
            name=args.name,
            emit=_output,
        )
        succeeded = await device.run(args.rounds, args.interval)
    return EXIT_OK if succeeded else EXIT_FAILURE


def _simulated_devices(
    settings: Settings, args: argparse.Namespace
) -> list[DeviceSpec]:
    if args.devices_file is not None:
        specs = load_devices(args.devices_file, settings.firmware_version)
    else:
        device_id, secret = settings.credentials()
        specs = [DeviceSpec(device_id, secret, settings.firmware_version)]
    count: int | None = args.devices
    if count is not None and count > len(specs):
        raise SettingsError(
            f"--devices {count} needs {count} devices, each with its own key, "
            f"but only {len(specs)} are given (use --devices-file)"
        )
    return specs[:count]


@asynccontextmanager
async def _device_client(
    settings: Settings, args: argparse.Namespace
) -> AsyncIterator[ProvidoreClient]:
    device_id, secret = settings.credentials()
    base_url = await _server_url(settings, args)
    async with open_session(settings.ca) as session:
        yield ProvidoreClient(
            session,
            base_url,
            device_id,
            secret,
            settings.firmware_version,
            accept_expiry_at_creation=settings.accept_expiry_at_creation,
        )


async def _server_url(settings: Settings, args: argparse.Namespace) -> str:
    """Return the server setting, or else the one server that zeroconf finds."""
    if settings.server:
        return settings.base_url()
    server = await discover_server(
        inform=_inform,
        ca=settings.ca,
        within=getattr(args, "discover_wait", DEFAULT_WITHIN),
    )
    checked = (
        f"its CA is in {settings.ca}" if settings.ca else "CA not checked: no --ca"
    )
    _inform(f"found {server.describe()} by zeroconf ({checked})")
    return server.url


def _positive_int(value: str) -> int:
    number = _non_negative_int(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def _port(value: str) -> int:
    number = _non_negative_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("must be a port, 0 to 65535")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def _output(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _inform(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _error(message: str) -> None:
    _inform(f"error: {message}")
