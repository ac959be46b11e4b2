"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
import tempfile

from .errors import ProvidoreError


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write data to a temporary file beside path, flush it to disk, then rename it."""
    try:
        _write_and_rename(path, data, mode)
    except OSError as err:
        raise _write_failed(path, err) from None
    _sync_folder(path.parent)


def commit_file(temporary: Path, path: Path) -> None:
    """Flush a finished temporary file to disk and rename it over path."""
    try:
        with temporary.open("rb+") as file:
            os.fsync(file.fileno())
        temporary.replace(path)
    except OSError as err:
        raise _write_failed(path, err) from None
    _sync_folder(path.parent)


def _write_and_rename(path: Path, data: bytes, mode: int) -> None:
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


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk, so that a rename survives a power cut (best effort)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _write_failed(path: Path, err: OSError) -> ProvidoreError:
    return ProvidoreError(f"cannot write {path}: {err.strerror or err}")
