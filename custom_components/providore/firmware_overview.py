"""The Firmware builds screen: the catalog as Markdown rows, and a build's choice value.

The table's header is translated text in strings.json; the rows hold only data
(firmware type, version, size, upload time, device names), escaped for Markdown.
"""

from __future__ import annotations

from collections.abc import Iterable
import re
from typing import Final

from homeassistant.util import dt as dt_util

from .firmware_catalog import Firmware
from .firmware_manager import BuildUsage

# A cell names at most this many devices, then how many more there are.
MAX_NAMES: Final = 5
NOBODY: Final = "—"
# Characters that would format, link or break a table cell; escaped with a backslash.
_MARKDOWN_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~!&])")
_SEPARATOR: Final = "/"  # never part of a firmware type or version


def escape_markdown(text: str) -> str:
    """Return `text` shown as it is in Markdown, even inside a table cell."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def size_text(size: int) -> str:
    """Return a size in bytes the way people read it: 512 B, 640 KiB, 1.5 MiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            break
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def uploaded_text(build: Firmware) -> str:
    """Return when a build was uploaded, in Home Assistant's time zone."""
    return dt_util.as_local(build.uploaded_at).strftime("%Y-%m-%d %H:%M")


def names_text(names: list[str]) -> str:
    """Return the first few device names and how many more, or a dash for none."""
    if not names:
        return NOBODY
    shown = ", ".join(escape_markdown(name) for name in names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown += f" +{len(names) - MAX_NAMES}"
    return shown


def table_rows(usage: Iterable[BuildUsage]) -> str:
    """Return one Markdown table row per build: type, version, size, upload, devices."""
    return "\n".join(
        "| "
        + " | ".join(
            (
                escape_markdown(entry.build.firmware_type),
                escape_markdown(entry.build.version),
                size_text(entry.build.size),
                uploaded_text(entry.build),
                names_text(entry.running),
                names_text(entry.assigned),
            )
        )
        + " |"
        for entry in usage
    )


def build_choice(build: Firmware) -> str:
    """Return the value that names a build in the flow's select."""
    return f"{build.firmware_type}{_SEPARATOR}{build.version}"
