"""The state directory: one worker at a time, and nothing in it readable by others.

It holds unredacted input (the journal, dead letters) and finished transcripts (the
outbox), so the directory is made mode 0700 and every file in it is created 0600
(:mod:`indexer.files`). A lock file, ``<state_dir>/worker.lock``, held for the whole run
with an OS file lock (``filelock``), keeps a second worker off the same directory: two
would replay the same journal and deliver the same outbox. The OS releases the lock
when the process ends, however it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from indexer.errors import ConfigError

__all__ = ["open_state_dir"]


@contextmanager
def open_state_dir(state_dir: str | Path) -> Iterator[Path]:
    """Create ``state_dir`` (mode 0700) and hold its lock while the block runs.

    :raises ConfigError: the directory cannot be created or written (read-only, full,
        not a directory), or another worker holds it; one line naming the setting.
    """
    path = Path(state_dir)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        lock = FileLock(path / "worker.lock", timeout=0, mode=0o600)
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"INDEXER_STATE_DIR {path} is in use by another worker (it holds {path / 'worker.lock'}); "
            "give each worker its own state directory"
        ) from None
    except OSError as exc:
        raise ConfigError(f"INDEXER_STATE_DIR {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        yield path
    finally:
        lock.release()
