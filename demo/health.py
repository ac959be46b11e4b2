"""A clean demo: no error or traceback in Home Assistant's log, no failed entry, no repair."""

from __future__ import annotations

import re

from .rest import HomeAssistantRest

CONFIG_ENTRIES_PATH = "/api/config/config_entries/entry"
# ConfigEntryState values of an entry that did not set up or unload.
FAILED_ENTRY_STATES = frozenset(
    {"setup_error", "setup_retry", "migration_error", "failed_unload"}
)
# "2025-04-30 12:00:00.123 ERROR (MainThread) [logger] message"
_ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")
_TRACEBACK = "Traceback (most recent call last):"
_LONGEST_LINE = 300


def log_problems(log: str) -> list[str]:
    """Return each ERROR or CRITICAL line and each traceback of a Home Assistant log."""
    return [
        f"log line {number}: {line[:_LONGEST_LINE]}"
        for number, line in enumerate(log.splitlines(), start=1)
        if _ERROR_LINE.match(line) or line.startswith(_TRACEBACK)
    ]


async def entry_problems(rest: HomeAssistantRest) -> list[str]:
    """Return the config entries that failed to set up (or to unload)."""
    return [
        f"config entry {entry['title']!r} ({entry['domain']}) is {entry['state']}"
        for entry in await rest.get(CONFIG_ENTRIES_PATH)
        if entry["state"] in FAILED_ENTRY_STATES
    ]


async def repair_problems(rest: HomeAssistantRest) -> list[str]:
    """Return the repair issues Home Assistant shows under Settings."""
    answer = await rest.websocket_command({"type": "repairs/list_issues"})
    return [
        f"repair issue {issue['domain']}.{issue['issue_id']}"
        for issue in answer["issues"]
        if not issue.get("ignored")
    ]
