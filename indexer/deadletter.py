"""The dead-letter store: what could not be indexed, with the reason, never lost.

An append-only NDJSON file, ``<state_dir>/dead-letters.ndjson``, created with mode 0600
because payloads are kept as received (a malformed frame, or an unredacted transcript
whose redaction failed). Each line::

    {"time": "2025-03-19T22:04:48.128Z", "kind": "malformed_message",
     "reason": "missing topicName", "conversation_id": null, "payload": ...}

Kinds: ``malformed_message``, ``late_message``, ``utterance_limit``, ``validation_failed``,
``redaction_failed`` (a rule raised), ``quarantined`` (the verification re-scan still found
PII after redaction; the reason names the rule ids), ``sink_rejected``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from indexer.files import append_synced
from indexer.serialization import format_time
from indexer.stats import Statistics

__all__ = ["DeadLetterStore"]


class DeadLetterStore:
    """Appends dead letters to ``path`` and counts them in ``stats``."""

    def __init__(self, path: Path, stats: Statistics) -> None:
        self.path = path
        self.stats = stats

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
        line = json.dumps(record, ensure_ascii=False) + "\n"
        await trio.to_thread.run_sync(append_synced, self.path, line)
        self.stats.dead_letters += 1

    def read(self) -> list[dict[str, Any]]:
        """Every dead letter so far (for tests and operators)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.strip()]
