"""The replay source: captured notification envelopes, one JSON frame per line.

Capture a live stream with ``[stream] capture_path`` (or ``--capture``), then run
``transcript-indexer replay FILE`` to backfill or re-index through the same pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import trio

from indexer.deadletter import DeadLetterStore
from indexer.frames import accept_frame
from indexer.models import Envelope
from indexer.stats import Statistics

__all__ = ["read_replay"]

#: Bytes read from the file at a time.
CHUNK_BYTES: Final = 1024 * 1024


async def read_replay(
    path: Path,
    envelopes: trio.MemorySendChannel[Envelope],
    *,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    progress: Callable[[int], object] | None = None,
) -> None:
    """Send every conversation and transcription envelope in ``path`` downstream.

    Blank lines are skipped; a line that does not parse (or is not UTF-8) is counted and
    dead-lettered.
    Resources: closes ``envelopes`` at the end of the file.

    :param progress: called with the size of each line read, in bytes (UTF-8).
    """
    async with envelopes, await trio.open_file(path, "rb") as file:
        rest = b""
        # read in chunks, one thread round trip each (a line each cost 110 µs against 1.3 µs)
        while chunk := await file.read(CHUNK_BYTES):
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                await _accept(line, envelopes, stats, dead_letters, progress)
        if rest:
            await _accept(rest, envelopes, stats, dead_letters, progress)


async def _accept(
    line: bytes,
    envelopes: trio.MemorySendChannel[Envelope],
    stats: Statistics,
    dead_letters: DeadLetterStore,
    progress: Callable[[int], object] | None,
) -> None:
    if progress is not None:
        progress(len(line) + 1)
    text = line.decode("utf-8", "replace").strip()  # a bad byte fails the frame, not the file
    if text:
        await accept_frame(text, envelopes, stats=stats, dead_letters=dead_letters)
