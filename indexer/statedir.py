"""The state directory: one worker at a time, and nothing in it readable by others.

It holds unredacted input (the journal, dead letters) and finished transcripts (the
outbox), so the directory is made mode 0700 and every file in it is created 0600
(:mod:`indexer.files`). A lock file, ``<state_dir>/worker.lock``, held for the whole run
with an OS file lock (``filelock``), keeps a second worker off the same directory: two
would replay the same journal and deliver the same outbox. The OS releases the lock
when the process ends, however it ends. With keys set, what it holds is encrypted
(:mod:`indexer.sealing`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from indexer.errors import ConfigError
from indexer.sealing import Sealer, check_keys

__all__ = ["open_state_dir"]


@contextmanager
def open_state_dir(state_dir: str | Path, keys: Sequence[str] = ()) -> Iterator[Sealer]:
    """Create ``state_dir`` (mode 0700) and hold its lock while the block runs.

    :param keys: ``INDEXER_STATE_KEYS``; yields the :class:`~indexer.sealing.Sealer` for
        the directory's records (plain without keys).
    :raises ConfigError: the directory cannot be created or written (read-only, full,
        not a directory), another worker holds it, or the keys do not fit the directory
        (:func:`~indexer.sealing.check_keys`); one line naming the setting.
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
        try:
            sealer = check_keys(path, keys)
        except OSError as exc:
            raise ConfigError(f"INDEXER_STATE_DIR {path}: {exc.strerror or type(exc).__name__}") from None
        yield sealer
    finally:
        lock.release()
