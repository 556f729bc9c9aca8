"""The journal: open conversations survive a restart.

Every envelope the detector accepts is appended to ``<state_dir>/journal.ndjson``
(``{"c": conversation id, "f": frame}``), and a finalized conversation gets a marker
(``{"c": id, "done": true}``). At start-up the frames of conversations without a marker
are replayed into the detector, so a restart resumes them instead of losing what was
received. Appends are buffered and written with one fsync every ``sync_interval_s``
(group commit): a crash loses at most that much of the newest input. When the file grows
past ``compact_bytes``, and at least every ``compact_interval_s`` while conversations have
been finalized since the last time, it is rewritten with only the open conversations'
frames and the newest ``KEEP_FINALIZED`` markers, which tell the next run which
conversations are done: the unredacted frames of a finished conversation leave the disk
within ``compact_interval_s`` of its end (its re-open window included), whatever the size.
With keys, each line is a sealed record (:mod:`indexer.sealing`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import trio

from indexer.files import append_synced
from indexer.sealing import PLAIN, Sealer, UnreadableRecord

__all__ = ["Journal"]

SYNC_INTERVAL_S: Final = 0.2
COMPACT_BYTES: Final = 64 * 1024 * 1024
#: At most this long (s) between a conversation's end and its frames leaving the file.
COMPACT_INTERVAL_S: Final = 60.0
#: Finalized conversation ids kept through compaction, to recognise late messages.
KEEP_FINALIZED: Final = 10_000


class Journal:
    """Append-only record of the input of open conversations."""

    def __init__(
        self,
        path: Path,
        *,
        sync_interval_s: float = SYNC_INTERVAL_S,
        compact_bytes: int = COMPACT_BYTES,
        compact_interval_s: float = COMPACT_INTERVAL_S,
        sealer: Sealer = PLAIN,
    ) -> None:
        self.path = path
        self.sealer = sealer
        self.sync_interval_s = sync_interval_s
        self.compact_bytes = compact_bytes
        self.compact_interval_s = compact_interval_s
        self._finished_since_compaction = 0
        self._compacted_at = 0.0
        self._pending: list[str] = []
        self._open: set[str] = set()
        #: Conversations finalized by earlier runs, oldest first (filled by :meth:`load`).
        self.finalized_ids: list[str] = []

    def load(self) -> list[tuple[str, str]]:
        """``(conversation id, frame)`` of the conversations left open by the previous run,
        in arrival order.

        A damaged line is skipped. A torn last line (a crash mid-write) is ended with a
        newline first, so that the next record is not appended to it and lost with it.
        """
        if not self.path.exists():
            return []
        self._end_torn_line()
        records = []
        done: dict[str, None] = {}  # ordered: oldest marker first
        for _, record in self._records():
            if record.get("done"):
                done[record["c"]] = None
            elif isinstance(record.get("f"), str):
                records.append(record)
        frames = [(r["c"], r["f"]) for r in records if r["c"] not in done]
        self._open = {r["c"] for r in records if r["c"] not in done}
        self.finalized_ids = list(done)
        return frames

    def _end_torn_line(self) -> None:
        with self.path.open("rb+") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return
            file.seek(size - 1)
            if file.read(1) != b"\n":
                file.write(b"\n")
                file.flush()
                os.fsync(file.fileno())

    def _records(self) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Each line of the file with its record; a torn or damaged line is skipped."""
        with self.path.open("rb") as file:
            for line in file:
                try:
                    record = json.loads(self.sealer.open(line))
                except (UnreadableRecord, ValueError, RecursionError):
                    continue
                if isinstance(record, dict) and isinstance(record.get("c"), str):
                    yield line, record

    def frames_of(self, conversation_id: str) -> list[str]:
        """The frames kept for ``conversation_id`` (written and queued), in arrival order."""
        frames = []
        if self.path.exists():
            frames = [r["f"] for _, r in self._records() if r.get("c") == conversation_id and "f" in r]
        for line in self._pending:
            record = json.loads(self.sealer.open(line.encode()))
            if record.get("c") == conversation_id and "f" in record:
                frames.append(record["f"])
        return frames

    def record(self, conversation_id: str, frame: str) -> None:
        """Queue one accepted frame of an open conversation for the next write."""
        self._open.add(conversation_id)
        line = json.dumps({"c": conversation_id, "f": frame}, ensure_ascii=False)
        self._pending.append(self.sealer.seal_line(line))

    def finalized(self, conversation_id: str) -> None:
        """Queue the marker that ``conversation_id`` no longer needs its frames."""
        self._open.discard(conversation_id)
        self._finished_since_compaction += 1
        self._pending.append(self.sealer.seal_line(json.dumps({"c": conversation_id, "done": True})))

    def _compact(self, open_ids: set[str]) -> None:
        temporary = self.path.with_suffix(".compacting")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        markers: dict[str, bytes] = {}
        with os.fdopen(fd, "wb") as target:
            for line, record in self._records():
                if self.sealer.enabled and line.startswith(b"{"):  # written before keys were set
                    line = self.sealer.seal_line(json.dumps(record, ensure_ascii=False)).encode()
                if record.get("done"):
                    markers.pop(record["c"], None)
                    markers[record["c"]] = line
                elif record["c"] in open_ids:
                    target.write(line)
            target.writelines(list(markers.values())[-KEEP_FINALIZED:])
            target.flush()
            os.fsync(target.fileno())
        os.replace(temporary, self.path)

    async def flush(self) -> None:
        """Write and fsync what is queued; compact when the file is too large, or when
        conversations finished and ``compact_interval_s`` has passed since the last time."""
        size = 0
        if self._pending:
            lines, self._pending = self._pending, []
            size = await trio.to_thread.run_sync(append_synced, self.path, "".join(lines))
        now = trio.current_time()
        due = self._finished_since_compaction and now - self._compacted_at >= self.compact_interval_s
        if size > self.compact_bytes or (due and self.path.exists()):
            await trio.to_thread.run_sync(self._compact, set(self._open))
            self._finished_since_compaction, self._compacted_at = 0, now

    async def run(self) -> None:
        """Flush every ``sync_interval_s`` until cancelled, then flush once more (shielded)."""
        try:
            while True:
                await trio.sleep(self.sync_interval_s)
                await self.flush()
        finally:
            with trio.move_on_after(5, shield=True):
                await self.flush()
