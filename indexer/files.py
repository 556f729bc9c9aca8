"""Durable local writes: appends and whole-file replacements that survive a crash."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["append_synced", "replace_synced", "unlink_synced"]


def append_synced(path: Path, text: str) -> int:
    """Append ``text`` to ``path`` (created with mode 0600) and fsync; returns the new size in bytes."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
        return file.tell()


def replace_synced(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data`` atomically: temporary file, fsync, rename, directory fsync.

    A crash leaves either the old or the new content, never a mix. Mode 0600.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def unlink_synced(path: Path) -> None:
    """Delete ``path`` (if there) and fsync its directory, so the deletion survives a crash."""
    path.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
