"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path
import tempfile


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write data to a temporary file beside path, flush it to disk, then rename it."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def commit_file(temporary: Path, path: Path) -> None:
    """Flush a finished temporary file to disk and rename it over path."""
    with temporary.open("rb+") as file:
        os.fsync(file.fileno())
    temporary.replace(path)
