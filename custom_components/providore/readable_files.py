"""Which files Providore's actions may read: never Home Assistant's private data.

A firmware build or a device list is read from a path the admin names; the path
must lead to a plain file (one name, no hard links) inside the configuration
folder or a directory allowed by `allowlist_external_dirs`, and never to a
hidden file, `.storage`, Providore's own folder, a backup, a log, a database or
a YAML file (which may hold passwords). Each refusal names its rule.
"""

from __future__ import annotations

from pathlib import Path
import stat
from typing import Final

from homeassistant.core import HomeAssistant

from .const import DOMAIN
from .firmware_catalog import FirmwareError

BACKUP_FOLDER: Final = "backups"
CONFIGURATION_SUFFIXES: Final = frozenset({".yaml", ".yml"})
LOG_SUFFIXES: Final = frozenset({".log", ".db", ".db-wal", ".db-shm", ".db-journal"})


def _refusal(relative: tuple[str, ...], name: str) -> str | None:
    """Return the rule a path breaks (its translation key), else None."""
    if any(part.startswith(".") for part in relative):
        return "path_private"
    if relative and relative[0] == DOMAIN:
        return "path_private"
    if relative and relative[0] == BACKUP_FOLDER:
        return "path_backup"
    suffixes = {suffix.lower() for suffix in Path(name).suffixes}
    if suffixes & LOG_SUFFIXES:
        return "path_log"
    if suffixes & CONFIGURATION_SUFFIXES:
        return "path_configuration"
    return None


def readable_file(hass: HomeAssistant, path: str) -> Path:
    """Resolve a path an action may read, else raise FirmwareError naming the rule.

    Blocking (it looks at the file): run it in the executor.
    """
    try:
        source = Path(hass.config.path(path)).resolve()
    except (OSError, ValueError) as err:  # e.g. a NUL byte, a symlink loop
        raise FirmwareError("firmware_not_found", path=path) from err
    config_dir = Path(hass.config.config_dir).resolve()
    if source.is_relative_to(config_dir):
        relative = source.relative_to(config_dir).parts
    elif hass.config.is_allowed_path(str(source)):
        relative = ()
    else:
        raise FirmwareError("path_not_allowed", path=path)
    if (rule := _refusal(relative, source.name)) is not None:
        raise FirmwareError(rule, path=path)
    try:
        status = source.stat()
    except (OSError, ValueError) as err:
        raise FirmwareError("firmware_not_found", path=path) from err
    if not stat.S_ISREG(status.st_mode):
        raise FirmwareError("path_not_file", path=path)
    if status.st_nlink > 1:
        raise FirmwareError("path_hard_link", path=path)
    return source
