"""The dead-letter store: what could not be indexed, with the reason, never lost.

An append-only NDJSON file, ``<state_dir>/dead-letters.ndjson``, created with mode 0600
because payloads are kept as received (a malformed frame, or an unredacted transcript
whose redaction failed). Each line::

    {"time": "2025-03-19T22:04:48.128Z", "kind": "malformed_message",
     "reason": "missing topicName", "conversation_id": null, "payload": ...}

Kinds: ``malformed_message``, ``late_message``, ``utterance_limit``, ``validation_failed``,
``redaction_failed`` (a rule raised), ``quarantined`` (the verification re-scan still found
PII after redaction; the reason names the rule ids), ``sink_rejected``; and for failures
contained to one frame or conversation: ``processing_failed`` (the tracker raised on a
frame), ``document_failed`` (its document could not be built; the payload holds the
journal's frames), ``finalize_failed`` (finalizing or writing the document raised),
``journal_unreadable`` (a journal frame that no longer parses at start-up). With keys,
each line is a sealed record (:mod:`indexer.sealing`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import trio

from indexer.files import append_synced
from indexer.sealing import PLAIN, Sealer, UnreadableRecord
from indexer.serialization import format_time
from indexer.stats import Statistics

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_RETENTION_DAYS", "DeadLetterStore"]

#: Size at which the file is rotated.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
#: Rotated files older than this are deleted.
DEFAULT_RETENTION_DAYS: Final = 30.0


class DeadLetterStore:
    """Appends dead letters to ``path`` and counts them in ``stats``.

    Rotation: when ``path`` would pass ``max_bytes`` it is renamed
    ``<stem>.<UTC time>.ndjson`` and a new file begins; rotated files older than
    ``retention_days`` are deleted (they hold unredacted input: kept no longer than that).
    """

    def __init__(
        self,
        path: Path,
        stats: Statistics,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        sealer: Sealer = PLAIN,
    ) -> None:
        self.path = path
        self.sealer = sealer
        self.stats = stats
        self.max_bytes = max_bytes
        self.retention_days = retention_days

    def _rotate_if_full(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming > self.max_bytes:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            self.path.rename(self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}"))
            self.expire()

    def expire(self) -> None:
        """Delete rotated files older than ``retention_days``."""
        oldest = time.time() - self.retention_days * 86400
        for rotated in self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}"):
            if rotated != self.path and rotated.stat().st_mtime < oldest:
                rotated.unlink(missing_ok=True)

    def _append(self, line: str) -> None:
        self._rotate_if_full(len(line.encode()))
        append_synced(self.path, line)

    async def add(self, kind: str, reason: str, payload: Any, *, conversation_id: str | None = None) -> None:
        """Keep one dead letter; the file write runs in a worker thread.

        :param kind: one of the kinds in the module docstring.
        :param reason: one line; names fields or rule ids, never values.
        :param payload: JSON-ready data, or the raw frame as a string.
        """
        record = {
            "time": format_time(datetime.now(UTC)),
            "kind": kind,
            "reason": reason,
            "conversation_id": conversation_id,
            "payload": payload,
        }
        line = self.sealer.seal_line(json.dumps(record, ensure_ascii=False))
        await trio.to_thread.run_sync(self._append, line)
        self.stats.dead_letters += 1

    def read(self) -> list[dict[str, Any]]:
        """Every dead letter in the current file (for tests and operators); a damaged
        line is skipped."""
        if not self.path.exists():
            return []
        letters = []
        with self.path.open("rb") as file:
            for line in file:
                if line.strip():
                    try:
                        letters.append(json.loads(self.sealer.open(line)))
                    except (UnreadableRecord, ValueError):
                        continue
        return letters
