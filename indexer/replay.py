"""The replay source: captured notification envelopes, one JSON frame per line.

Capture a live stream with ``[stream] capture_path`` (or ``--capture``), then run
``transcript-indexer replay FILE`` to backfill or re-index through the same pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from indexer.deadletter import DeadLetterStore
from indexer.frames import accept_frame
from indexer.models import Envelope
from indexer.stats import Statistics

__all__ = ["read_replay"]


async def read_replay(
    path: Path,
    envelopes: trio.MemorySendChannel[Envelope],
    *,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    progress: Callable[[int], object] | None = None,
) -> None:
    """Send every conversation and transcription envelope in ``path`` downstream.

    Blank lines are skipped; a line that does not parse is counted and dead-lettered.
    Resources: closes ``envelopes`` at the end of the file.

    :param progress: called with the size of each line read, in bytes (UTF-8).
    """
    async with envelopes, await trio.open_file(path, encoding="utf-8") as file:
        async for line in file:
            if progress is not None:
                progress(len(line.encode("utf-8")))
            text = line.strip()
            if not text:
                continue
            await accept_frame(text, envelopes, stats=stats, dead_letters=dead_letters)
