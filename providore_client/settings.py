"""Where the client's settings come from: flags, then environment variables, then a YAML file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import SettingsError
from .protocol import is_valid_firmware_version, is_valid_key_id, is_valid_secret

DEFAULT_FIRMWARE_VERSION = "0.0.0"

# Setting name -> environment variable; settings without one come from flags or the file.
ENVIRONMENT = {
    "server": "PROVIDORE_SERVER",
    "device_id": "PROVIDORE_DEVICE_ID",
    "secret": "PROVIDORE_SECRET",
    "firmware_version": "PROVIDORE_FIRMWARE_VERSION",
}
_PATH_SETTINGS = ("ca", "cert_path", "key_path")
# Settings that are switched on or off: a flag, or true/false in the config file.
_SWITCH_SETTINGS = ("accept_expiry_at_creation",)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting the commands use; each may be missing until a command needs it."""

    server: str | None = None
    device_id: str | None = None
    secret: str | None = None
    firmware_version: str = DEFAULT_FIRMWARE_VERSION
    ca: Path | None = None
    cert_path: Path | None = None
    key_path: Path | None = None
    accept_expiry_at_creation: bool = False

    def base_url(self) -> str:
        """Return the server's base URL without a trailing slash."""
        if not self.server:
            raise SettingsError(
                "no server: give --server, PROVIDORE_SERVER or server in the config file"
            )
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(
                f"the server must be an http:// or https:// URL, not {self.server!r}"
            )
        if parts.query or parts.fragment:
            raise SettingsError("the server URL must not have a query or a fragment")
        if parts.username is not None or parts.password is not None:
            raise SettingsError(
                "the server URL must not have a user or password: the device signs its requests"
            )
        return self.server.rstrip("/")

    def credentials(self) -> tuple[str, str]:
        """Return the valid (device id, secret) pair."""
        if not self.device_id:
            raise SettingsError(
                "no device id: give --device-id, PROVIDORE_DEVICE_ID or device_id in the config file"
            )
        if not self.secret:
            raise SettingsError(
                "no secret: give --secret, PROVIDORE_SECRET or secret in the config file"
            )
        check_credentials(self.device_id, self.secret)
        return self.device_id, self.secret

    def path(self, name: str) -> Path:
        """Return the file setting `name` (cert_path or key_path), which must be given."""
        value: Path | None = getattr(self, name)
        if value is None:
            flag = "--" + name.replace("_", "-")
            raise SettingsError(f"no {flag}: give it or {name} in the config file")
        return value


def check_credentials(device_id: str, secret: str) -> None:
    """Refuse a device id or secret that the protocol does not allow."""
    if not is_valid_key_id(device_id):
        raise SettingsError(
            "the device id must be 1 to 32 characters of A-Z a-z 0-9 _ -"
        )
    if not is_valid_secret(secret):
        raise SettingsError(
            "the secret must be 16 to 32 printable ASCII characters without spaces"
        )


def check_firmware_version(version: str) -> None:
    """Refuse a firmware version the server would refuse in X-Firmware-Version."""
    if not is_valid_firmware_version(version):
        raise SettingsError(
            "the firmware version must be 1 to 64 printable ASCII characters without spaces"
        )


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file: a mapping of snake_case setting names.

    Relative file paths in it are relative to the file's own folder.
    """
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SettingsError(f"cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SettingsError(f"{path} is not valid YAML: {_first_line(err)}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise SettingsError(f"{path} must hold a mapping of settings")
    known = {field.name for field in fields(Settings)}
    if unknown := sorted(str(key) for key in content if key not in known):
        raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in content.items():
        if value is None:
            continue
        if key in _SWITCH_SETTINGS:
            if not isinstance(value, bool):
                raise SettingsError(f"{path}: {key} must be true or false")
            values[key] = value
            continue
        if not isinstance(value, str):
            # YAML reads 1.10 as the number 1.1 and 0x1F as 31: take text only.
            raise SettingsError(f'{path}: {key} must be text: quote it ({key}: "...")')
        values[key] = path.parent / value if key in _PATH_SETTINGS else value
    return values


def resolve_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_file: Path | None
) -> Settings:
    """Merge the sources: a flag wins over the environment, which wins over the file."""
    values = read_config_file(config_file) if config_file is not None else {}
    for name, variable in ENVIRONMENT.items():
        if environ.get(variable):
            values[name] = environ[variable]
    for name in (field.name for field in fields(Settings)):
        if flags.get(name) is not None:
            values[name] = flags[name]
    for name in _PATH_SETTINGS:
        if name in values:
            values[name] = Path(values[name])
    settings = Settings(**values)
    check_firmware_version(settings.firmware_version)
    return settings


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
