"""Encryption at rest of the state directory: the journal, the outbox and dead letters.

Off unless keys are set. With ``INDEXER_STATE_KEYS`` (``state_keys``: one or more Fernet
keys, comma-separated), every journal line, every dead letter and every outbox file is
written as a Fernet token (AES-128-CBC with an HMAC-SHA256, from the ``cryptography``
library): a stolen disk or backup holds no transcript. The first key encrypts, all of
them decrypt, so a key is rotated by putting a new one first and dropping the old one
once the files written with it are gone (the journal within a minute of compaction, the
outbox when delivered, dead letters at their retention time). Make a key with
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.

``<state_dir>/keys.check`` holds a token sealed with the first key. At start-up
(:func:`check_keys`) it tells a wrong key (refused: no record would open) from a damaged
record, and keys that went missing (refused: the directory holds sealed records) from a
directory that never had any. Records written before encryption was turned on are plain
JSON and are still read; the journal re-seals them at its next compaction.

Costs: a token is about 4/3 of the record plus 57 bytes; sealing and opening take a few
microseconds per kilobyte.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from indexer.errors import ConfigError
from indexer.files import replace_synced

__all__ = ["KEY_CHECK", "PLAIN", "Sealer", "UnreadableRecord", "check_keys", "parse_keys"]

#: The file, in the state directory, that proves which keys sealed it.
KEY_CHECK: Final = "keys.check"
_CHECK_TEXT: Final = b"transcript-indexer state directory"


class UnreadableRecord(ValueError):
    """A sealed record that no key opens: damaged (a torn write), since :func:`check_keys`
    has proved the keys at start-up."""


def parse_keys(text: str) -> tuple[str, ...]:
    """``INDEXER_STATE_KEYS`` → its keys, checked.

    :raises ConfigError: a key is not a Fernet key (32 bytes, URL-safe base64).
    """
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    for n, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, binascii.Error):
            raise ConfigError(
                f"INDEXER_STATE_KEYS: key {n} is not a Fernet key (32 bytes in URL-safe base64, "
                "44 characters; see the README, 'Encryption at rest')"
            ) from None
    return keys


class Sealer:
    """Seals records with the first of ``keys`` and opens them with any; no keys: plain."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @property
    def enabled(self) -> bool:
        """Records are sealed."""
        return self._fernet is not None

    def seal(self, data: bytes) -> bytes:
        """``data`` as a token (ASCII, no newline), or as it is without keys."""
        return data if self._fernet is None else self._fernet.encrypt(data)

    def seal_line(self, line: str) -> str:
        """One NDJSON record (``line`` without its newline) as the line to write."""
        return (line if self._fernet is None else self._fernet.encrypt(line.encode()).decode()) + "\n"

    def open(self, data: bytes) -> bytes:
        """The record ``data`` holds: a token opened, plain JSON as it is.

        :raises UnreadableRecord: a token no key opens (or there are no keys).
        """
        data = data.strip()
        if data[:1] in (b"{", b"["):
            return data
        if self._fernet is None:
            raise UnreadableRecord("a sealed record and no INDEXER_STATE_KEYS")
        try:
            return self._fernet.decrypt(data)
        except InvalidToken:
            raise UnreadableRecord("a sealed record that no key opens") from None


#: The sealer of a state directory without keys.
PLAIN: Final = Sealer()


def check_keys(state_dir: Path, keys: Sequence[str]) -> Sealer:
    """The sealer for ``state_dir``, after proving ``keys`` open what it holds.

    With keys, ``keys.check`` is (re)written sealed with the first key, so it follows a
    rotation. Without keys, a ``keys.check`` left by an encrypted run is refused.

    :raises ConfigError: the keys do not open ``keys.check``, or the directory holds
        sealed records and no keys are set; one line naming ``INDEXER_STATE_KEYS``.
    """
    check = state_dir / KEY_CHECK
    sealer = Sealer(keys)
    if not check.exists():
        if keys:
            replace_synced(check, sealer.seal(_CHECK_TEXT))
        return sealer
    if not keys:
        raise ConfigError(
            f"INDEXER_STATE_KEYS is not set, but INDEXER_STATE_DIR {state_dir} holds encrypted records "
            f"({KEY_CHECK}); set the keys it was written with"
        )
    try:
        opened = sealer.open(check.read_bytes())
    except UnreadableRecord:
        opened = b""
    if opened != _CHECK_TEXT:
        raise ConfigError(
            f"INDEXER_STATE_KEYS: no key opens INDEXER_STATE_DIR {state_dir} ({KEY_CHECK}); "
            "keep the old key after the new one while rotating"
        )
    replace_synced(check, sealer.seal(_CHECK_TEXT))
    return sealer
