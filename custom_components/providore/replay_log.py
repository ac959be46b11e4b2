"""The accepted POST signatures on disk: one line appended, and synced, per request.

An accepted POST is written before it is answered, so that no restart (not even a
`kill -9`) reopens its replay window. Appending one line costs the same whatever
the number of devices; the file is rewritten with only the unexpired signatures
when it is loaded and when most of its lines have expired. A line torn by a crash
is skipped. Blocking file work: run every function here in the executor.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
import json
import os
from pathlib import Path
import tempfile

type Entry = tuple[str, str, datetime]


def read_entries(path: Path, now: datetime) -> list[Entry]:
    """Return the unexpired (key id, signature, expiry) of the log; [] without one."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    entries: list[Entry] = []
    for line in lines:
        try:
            record = json.loads(line)
            expiry = datetime.fromisoformat(record["e"])
            entry = (str(record["k"]), str(record["s"]), expiry)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash, or not ours
        if expiry.tzinfo is not None and expiry > now:
            entries.append(entry)
    return entries


def _line(entry: Entry) -> bytes:
    key_id, signature, expiry = entry
    record = {"k": key_id, "s": signature, "e": expiry.isoformat()}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def append_entry(path: Path, entry: Entry) -> None:
    """Append one accepted signature and sync it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, _line(entry))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rewrite(path: Path, entries: Iterable[Entry]) -> None:
    """Replace the log with `entries`, atomically (write, sync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.writelines(_line(entry) for entry in entries)
            file.flush()
            os.fsync(file.fileno())
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
