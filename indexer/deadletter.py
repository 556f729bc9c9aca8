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

For operators (``transcript-indexer dead-letters``): :meth:`DeadLetterStore.entries`
reads the current and the rotated files; an entry's id is the SHA-256 of its stored line
(12 hex digits), so it stays the same across rotation. Entries of the kinds in
:data:`REPLAYABLE` can be sent back through the pipeline; each outcome is appended to
``<stem>.replayed.ndjson`` beside the store (ids and outcomes only, no payloads).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from indexer.files import append_synced
from indexer.sealing import PLAIN, Sealer, UnreadableRecord
from indexer.serialization import format_time
from indexer.stats import Statistics

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_RETENTION_DAYS", "REPLAYABLE", "DeadLetter", "DeadLetterStore"]

#: Size at which the file is rotated.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
#: Rotated files older than this are deleted.
DEFAULT_RETENTION_DAYS: Final = 30.0


#: Kinds whose payload is a whole conversation, and so can go through the pipeline again:
#: documents (finalized again with the rules loaded now; ``sink_rejected`` ones were
#: redacted and verified already and go straight to the sinks) and ``document_failed``
#: (the journal's frames of the conversation, tracked again). The other kinds hold one
#: frame, a part of a conversation: indexed alone it would replace the whole.
REPLAYABLE: Final = frozenset(
    {
        "validation_failed",
        "redaction_failed",
        "quarantined",
        "finalize_failed",
        "sink_rejected",
        "document_failed",
    }
)


@attrs.frozen
class DeadLetter:
    """One stored dead letter.

    :ivar id: SHA-256 of its stored line, 12 hex digits (stable across rotation).
    :ivar time: when it was stored, ISO-8601 UTC.
    :ivar payload: the frame (a string) or the document (JSON data); unredacted for most kinds.
    :ivar file: the name of the file that holds it.
    """

    id: str
    time: str
    kind: str
    reason: str
    conversation_id: str | None
    payload: Any = attrs.field(repr=False)
    file: str


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
            if _is_rotated(rotated, self.path) and rotated.stat().st_mtime < oldest:
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

    def _files(self) -> list[Path]:
        """The rotated files (oldest first), then the current one."""
        rotated = sorted(
            p
            for p in self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}")
            if _is_rotated(p, self.path)
        )
        return [*rotated, self.path] if self.path.exists() else rotated

    def entries(self) -> list[DeadLetter]:
        """Every dead letter of the current and rotated files, oldest first; a damaged or
        unreadable line is skipped."""
        letters = []
        for path in self._files():
            with path.open("rb") as file:
                for line in file:
                    line = line.rstrip(b"\n")
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(self.sealer.open(line))
                    except (UnreadableRecord, ValueError):
                        continue
                    if not isinstance(record, dict):
                        continue
                    letters.append(
                        DeadLetter(
                            id=hashlib.sha256(line).hexdigest()[:12],
                            time=str(record.get("time", "")),
                            kind=str(record.get("kind", "")),
                            reason=str(record.get("reason", "")),
                            conversation_id=record.get("conversation_id"),
                            payload=record.get("payload"),
                            file=path.name,
                        )
                    )
        return letters

    @property
    def outcomes_path(self) -> Path:
        """Where replay outcomes are appended: ``<stem>.replayed.ndjson``."""
        return self.path.with_name(f"{self.path.stem}.replayed{self.path.suffix}")

    def record_outcome(self, letter_id: str, outcome: str) -> None:
        """Append the outcome of sending dead letter ``letter_id`` through the pipeline again."""
        record = {"time": format_time(datetime.now(UTC)), "id": letter_id, "outcome": outcome}
        append_synced(self.outcomes_path, json.dumps(record) + "\n")

    def outcomes(self) -> dict[str, dict[str, str]]:
        """The last replay outcome of each dead letter that was replayed, by id."""
        found: dict[str, dict[str, str]] = {}
        try:
            lines = self.outcomes_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            try:
                record = json.loads(line)
                found[record["id"]] = {"time": record["time"], "outcome": record["outcome"]}
            except (ValueError, KeyError, TypeError):
                continue
        return found


def _is_rotated(candidate: Path, current: Path) -> bool:
    """``candidate`` is a rotated file of ``current`` (``<stem>.<UTC time>.ndjson``), not the
    outcomes file or another file beside it."""
    middle = candidate.name[len(current.stem) + 1 : -len(current.suffix)]
    return candidate != current and middle[:8].isdigit() and middle.endswith("Z")
