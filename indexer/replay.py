"""The replay source: captured notification envelopes, one JSON frame per line.

Capture a live stream with ``[stream] capture_path`` (or ``--capture``), then run
``transcript-indexer replay FILE`` to backfill or re-index through the same pipeline.
"""

from __future__ import annotations

from pathlib import Path

import trio

from indexer.deadletter import DeadLetterStore
from indexer.errors import MalformedMessage
from indexer.models import Envelope
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from indexer.topics import topic_kind

__all__ = ["read_replay"]


async def read_replay(
    path: Path,
    envelopes: trio.MemorySendChannel[Envelope],
    *,
    stats: Statistics,
    dead_letters: DeadLetterStore,
) -> None:
    """Send every conversation and transcription envelope in ``path`` downstream.

    Blank lines are skipped; a line that does not parse is counted and dead-lettered.
    Resources: closes ``envelopes`` at the end of the file.
    """
    async with envelopes, await trio.open_file(path, encoding="utf-8") as file:
        async for line in file:
            text = line.strip()
            if not text:
                continue
            try:
                envelope = parse_envelope(text)
            except MalformedMessage as exc:
                stats.messages["malformed"] += 1
                await dead_letters.add("malformed_message", exc.reason, text)
                continue
            kind = topic_kind(envelope.topic_name) or "unknown"
            stats.messages[kind] += 1
            if kind in ("conversation", "transcription"):
                await envelopes.send(envelope)
