"""The journal: open conversations survive a restart.

Every envelope the detector accepts is appended to the newest segment file of
``<state_dir>/journal/`` (``{"c": conversation id, "f": frame}``), and a finalized
conversation gets a marker (``{"c": id, "done": true}``). At start-up the frames of
conversations without a marker are replayed into the detector, so a restart resumes them
instead of losing what was received. Appends are buffered and written with one fsync every
``sync_interval_s`` (group commit): a crash loses at most that much of the newest input.

Each frame is written once. A segment takes appends until it holds ``segment_bytes``, or
until it is ``compact_interval_s / 2`` old and holds frames of a finished conversation;
then a new one starts. A segment no longer written that holds frames of a finished
conversation is deleted when all its conversations are finished, else rewritten with only
its open conversations' frames (a long call keeps its segment; the others' frames go). So
the unredacted frames of a finished conversation leave the disk within
``compact_interval_s`` of its end (its re-open window included), and no file is rewritten
whole: the cost per frame stays the same whatever the number of open conversations.
Markers still needed (of conversations with frames in other segments, and the newest
:data:`KEEP_FINALIZED`, which tell the next run which conversations are done) are copied
to the newest segment before their segment goes. With keys, each line is a sealed record
(:mod:`indexer.sealing`); plain lines written before keys were set are re-sealed when
their segment is next rewritten, and at start-up.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from indexer.files import append_synced, unlink_synced
from indexer.sealing import PLAIN, Sealer, UnreadableRecord

__all__ = ["Journal"]

SYNC_INTERVAL_S: Final = 0.2
#: A segment takes no more appends past this size (bytes).
SEGMENT_BYTES: Final = 16 * 1024 * 1024
#: At most this long (s) between a conversation's end and its frames leaving the disk.
COMPACT_INTERVAL_S: Final = 60.0
#: Finalized conversation ids kept, to recognise late messages after a restart.
KEEP_FINALIZED: Final = 10_000


@attrs.define(eq=False)
class _Segment:
    """One segment file and what is in it.

    :ivar conversations: ids with frames in it.
    :ivar markers: ids whose newest marker is in it.
    :ivar finished_at: since when it holds frames of a finalized conversation (or plain
        lines to re-seal), trio clock; ``None``: none.
    """

    path: Path
    opened_at: float
    size: int = 0
    conversations: set[str] = attrs.field(factory=set)
    markers: dict[str, None] = attrs.field(factory=dict)
    finished_at: float | None = None

    def finish(self, now: float) -> None:
        self.finished_at = now if self.finished_at is None else self.finished_at


class Journal:
    """Append-only record of the input of open conversations, in segment files.

    :param folder: the segment directory (made mode 0700).
    :param legacy: a single-file journal of an earlier version, taken in as the oldest
        segment at :meth:`load`.
    """

    def __init__(
        self,
        folder: Path,
        *,
        sync_interval_s: float = SYNC_INTERVAL_S,
        segment_bytes: int = SEGMENT_BYTES,
        compact_interval_s: float = COMPACT_INTERVAL_S,
        sealer: Sealer = PLAIN,
        legacy: Path | None = None,
    ) -> None:
        self.folder = folder
        self.sealer = sealer
        self.sync_interval_s = sync_interval_s
        self.segment_bytes = segment_bytes
        self.compact_interval_s = compact_interval_s
        self.legacy = legacy
        self._segments: list[_Segment] = []
        self._next = 0
        #: Queued lines: (conversation id, a marker?, sealed line).
        self._pending: list[tuple[str, bool, str]] = []
        self._open: set[str] = set()
        self._where: dict[str, set[_Segment]] = {}
        self._marker_at: dict[str, _Segment] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        #: Conversations finalized by earlier runs, oldest first (filled by :meth:`load`).
        self.finalized_ids: list[str] = []
        self._flushing = trio.Lock()

    # --- start-up -----------------------------------------------------------------------

    def load(self) -> list[tuple[str, str]]:
        """``(conversation id, frame)`` of the conversations left open by the previous run,
        in arrival order.

        A damaged line is skipped. A torn last line (a crash mid-write) is ended with a
        newline first, so that the next record is not appended to it and lost with it.
        """
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.legacy is not None and self.legacy.exists():
            os.replace(self.legacy, self.folder / f"{0:08d}.ndjson")
        paths = sorted(self.folder.glob("*.ndjson"))
        frames: list[tuple[str, str]] = []
        done: dict[str, None] = {}  # ordered: oldest marker first
        for path in paths:
            segment = _Segment(path, opened_at=0.0, size=path.stat().st_size)
            self._segments.append(segment)
            _end_torn_line(path)
            for line, record in self._records(path):
                if self.sealer.enabled and line.startswith(b"{"):
                    segment.finished_at = 0.0  # plain, written before keys were set: re-seal it
                if record.get("done"):
                    done.pop(record["c"], None)
                    done[record["c"]] = None
                    self._marker_at[record["c"]] = segment
                elif isinstance(record.get("f"), str):
                    frames.append((record["c"], record["f"]))
                    segment.conversations.add(record["c"])
                    self._where.setdefault(record["c"], set()).add(segment)
        for conversation_id, segment in self._marker_at.items():
            segment.markers[conversation_id] = None
        self._open = {c for c, _ in frames if c not in done}
        for segment in self._segments:
            if segment.conversations - self._open:
                segment.finished_at = 0.0
        self._next = int(paths[-1].stem) + 1 if paths else 0
        self.finalized_ids = list(done)
        self._recent = OrderedDict.fromkeys(self.finalized_ids[-KEEP_FINALIZED:])
        return [(c, f) for c, f in frames if c in self._open]

    def _records(self, path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Each line of a segment with its record; a torn or damaged line is skipped."""
        with path.open("rb") as file:
            for line in file:
                try:
                    record = json.loads(self.sealer.open(line))
                except (UnreadableRecord, ValueError, RecursionError):
                    continue
                if isinstance(record, dict) and isinstance(record.get("c"), str):
                    yield line, record

    def frames_of(self, conversation_id: str) -> list[str]:
        """The frames kept for ``conversation_id`` (written and queued), in arrival order."""
        return self.frames_by_conversation({conversation_id})[conversation_id]

    def frames_by_conversation(self, conversation_ids: Collection[str]) -> dict[str, list[str]]:
        """The frames kept for each of ``conversation_ids`` (written and queued), in arrival
        order; each segment that holds any is read once. Safe from a worker thread."""
        wanted = set(conversation_ids)
        frames: dict[str, list[str]] = {c: [] for c in wanted}
        held = {segment for c in wanted for segment in list(self._where.get(c, ()))}  # copies
        for segment in sorted(held, key=lambda segment: segment.path):
            if segment.path.exists():
                for _, record in self._records(segment.path):
                    if record["c"] in wanted and "f" in record:
                        frames[record["c"]].append(record["f"])
        for c, marker, line in list(self._pending):
            if c in wanted and not marker:
                frames[c].append(json.loads(self.sealer.open(line.encode()))["f"])
        return frames

    # --- input --------------------------------------------------------------------------

    def record(self, conversation_id: str, frame: str) -> None:
        """Queue one accepted frame of an open conversation for the next write."""
        self._open.add(conversation_id)
        line = json.dumps({"c": conversation_id, "f": frame}, ensure_ascii=False)
        self._pending.append((conversation_id, False, self.sealer.seal_line(line)))

    def finalized(self, conversation_id: str) -> None:
        """Queue the marker that ``conversation_id`` no longer needs its frames."""
        self._open.discard(conversation_id)
        self._recent.pop(conversation_id, None)
        self._recent[conversation_id] = None
        while len(self._recent) > KEEP_FINALIZED:
            self._recent.popitem(last=False)
        for segment in self._where.get(conversation_id, ()):
            segment.finish(trio.current_time())
        self._pending.append((conversation_id, True, self._marker(conversation_id)))

    def _marker(self, conversation_id: str) -> str:
        return self.sealer.seal_line(json.dumps({"c": conversation_id, "done": True}))

    # --- writing ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write and fsync what is queued; then delete or rewrite the segments no longer
        written that hold frames of finished conversations (see the module). Calls take
        turns (the periodic one, and a source's checkpoint)."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        now = trio.current_time()
        current = self._segments[-1] if self._segments else None
        half = self.compact_interval_s / 2
        if (
            current is None
            or current.size >= self.segment_bytes
            or (current.finished_at is not None and now - current.opened_at >= half)
        ):
            current = self._start_segment(now)
        if self._pending:
            pending, self._pending = self._pending, []
            await self._append(current, pending)
        for segment in self._segments[:-1]:
            if segment.finished_at is None:
                continue
            if not segment.conversations & self._open:
                await self._drop(segment)
            elif now - segment.finished_at >= half:  # at most once per half interval
                await self._rewrite(segment, now)

    def _start_segment(self, now: float) -> _Segment:
        segment = _Segment(self.folder / f"{self._next:08d}.ndjson", opened_at=now)
        self._next += 1
        self._segments.append(segment)
        return segment

    async def _append(self, segment: _Segment, lines: list[tuple[str, bool, str]]) -> None:
        segment.size = await trio.to_thread.run_sync(
            append_synced, segment.path, "".join(line for _, _, line in lines)
        )
        for conversation_id, marker, _ in lines:
            if marker:
                previous = self._marker_at.get(conversation_id)
                if previous is not None:
                    previous.markers.pop(conversation_id, None)
                self._marker_at[conversation_id] = segment
                segment.markers[conversation_id] = None
            else:
                segment.conversations.add(conversation_id)
                self._where.setdefault(conversation_id, set()).add(segment)
                if conversation_id not in self._open:  # finalized while its frame was queued
                    segment.finish(trio.current_time())

    def _needed(self, conversation_id: str, leaving: _Segment) -> bool:
        """The marker of ``conversation_id`` must outlive ``leaving``."""
        elsewhere = self._where.get(conversation_id, set()) - {leaving}
        return bool(elsewhere) or conversation_id in self._recent

    async def _drop(self, segment: _Segment) -> None:
        """Delete ``segment``, whose conversations are all finished, its needed markers copied first."""
        carried = [c for c in segment.markers if self._needed(c, segment)]
        if carried:
            await self._append(self._segments[-1], [(c, True, self._marker(c)) for c in carried])
        await trio.to_thread.run_sync(unlink_synced, segment.path)
        self._forget(segment, segment.conversations)
        for conversation_id in segment.markers:  # not needed: forgotten with the segment
            del self._marker_at[conversation_id]
        segment.markers.clear()
        self._segments.remove(segment)

    async def _rewrite(self, segment: _Segment, now: float) -> None:
        """Keep in ``segment`` only its open conversations' frames and its markers."""
        keep = segment.conversations & self._open
        markers = set(segment.markers)
        segment.size = await trio.to_thread.run_sync(self._rewrite_file, segment.path, keep, markers)
        self._forget(segment, segment.conversations - keep)
        segment.conversations = keep
        segment.finished_at = now if keep - self._open else None  # one finished meanwhile

    def _rewrite_file(self, path: Path, keep: set[str], markers: set[str]) -> int:
        temporary = path.with_suffix(".rewriting")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as target:
            for line, record in self._records(path):
                marker = bool(record.get("done"))
                if (record["c"] in markers) if marker else (record["c"] in keep and "f" in record):
                    if self.sealer.enabled and line.startswith(b"{"):  # written before keys were set
                        line = self.sealer.seal_line(json.dumps(record, ensure_ascii=False)).encode()
                    target.write(line)
            target.flush()
            os.fsync(target.fileno())
            size = target.tell()
        os.replace(temporary, path)
        return size

    def _forget(self, segment: _Segment, conversation_ids: Iterable[str]) -> None:
        """``segment`` no longer holds the frames of ``conversation_ids``."""
        for conversation_id in conversation_ids:
            where = self._where.get(conversation_id)
            if where is not None:
                where.discard(segment)
                if not where:
                    del self._where[conversation_id]

    async def run(self) -> None:
        """Flush every ``sync_interval_s`` until cancelled, then flush once more (shielded)."""
        try:
            while True:
                await trio.sleep(self.sync_interval_s)
                await self.flush()
        finally:
            with trio.move_on_after(5, shield=True):
                await self.flush()


def _end_torn_line(path: Path) -> None:
    with path.open("rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) != b"\n":
            file.write(b"\n")
            file.flush()
            os.fsync(file.fileno())
