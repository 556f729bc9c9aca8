"""The durable outbox: finished, redacted transcripts waiting for every sink.

A document is written here (atomically: temporary file, fsync, rename) *before* any
sink sees it, and removed only when every sink has acknowledged it. After a crash or a
sink outage, whatever is here is delivered at the next start. One file per conversation,
``<state_dir>/outbox/<sha-256 of the conversation id, 32 hex digits>.json``: names are
injective and of fixed length whatever an id holds (``conv.1`` and ``conv_1`` are two
files; a 300-character id is not too long a name). A newer version of a conversation
replaces the older entry, and an acknowledgement only removes the version it was for.

The outbox is bounded by ``max_bytes``: :meth:`Outbox.put` waits while it is full, which
slows the pipeline, the detector and the reader (backpressure), never drops anything.
Entries hold redacted documents only; with keys, each file is sealed (:mod:`indexer.sealing`).

It also remembers what it delivered: ``delivered.ndjson`` beside the entries, one line per
delivery (``{"c": conversation id, "end": ended_at epoch ms}``, ids and times only), the
newest :data:`DELIVERED_KEPT`. :meth:`Outbox.indexed` gives them with the pending entries,
so that gap recovery after a restart does not rebuild conversations indexed already. Not
fsynced: a line lost in a crash costs one rebuild, never a transcript.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
import trio

from indexer.document import TranscriptDocument
from indexer.files import replace_synced
from indexer.sealing import PLAIN, Sealer
from indexer.serialization import structure, unstructure

__all__ = ["DEFAULT_MAX_BYTES", "DELIVERED_KEPT", "Outbox", "OutboxUsage"]

DEFAULT_MAX_BYTES: Final = 1024**3
#: Deliveries remembered (``delivered.ndjson``); the file is cut back to these past twice as many.
DELIVERED_KEPT: Final = 10_000


@attrs.frozen
class OutboxUsage:
    """How full the outbox is: entries and bytes on disk."""

    entries: int
    bytes: int
    max_bytes: int


@attrs.define
class _Entry:
    document: TranscriptDocument
    size: int


class Outbox:
    """Pending documents on disk, mirrored in memory in arrival order."""

    def __init__(
        self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, sealer: Sealer = PLAIN
    ) -> None:
        self.directory = directory
        self.sealer = sealer
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        self._writing: set[str] = set()  # conversation ids being written or removed now
        self._stored: OrderedDict[str, None] = OrderedDict()  # stored during this run, newest last
        self._bytes = 0
        self._changed = trio.Event()
        self._closed = False

    # --- disk ---------------------------------------------------------------------------

    def _path(self, conversation_id: str) -> Path:
        digest = hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.directory / f"{digest}.json"

    def _write(self, document: TranscriptDocument) -> int:
        data = self.sealer.seal(json.dumps(unstructure(document), ensure_ascii=False).encode())
        replace_synced(self._path(document.conversation_id), data)
        return len(data)

    @property
    def delivered_path(self) -> Path:
        return self.directory / "delivered.ndjson"

    def _delivered(self, documents: Sequence[TranscriptDocument]) -> None:
        """Remember deliveries, one line each (mode 0600, no fsync: see the module docstring)."""
        lines = []
        for document in documents:
            end = int(document.ended_at.timestamp() * 1000) if document.ended_at is not None else None
            lines.append(json.dumps({"c": document.conversation_id, "end": end}) + "\n")
        fd = os.open(self.delivered_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as file:
            file.write("".join(lines))

    def indexed(self) -> dict[str, int | None]:
        """Conversation id → ``ended_at`` (epoch ms, ``None`` when unknown) of each document
        delivered lately (the newest :data:`DELIVERED_KEPT`) or waiting here; cuts
        ``delivered.ndjson`` back when it has grown past twice that."""
        found: dict[str, int | None] = {}
        try:
            lines = self.delivered_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) > 2 * DELIVERED_KEPT:
            lines = lines[-DELIVERED_KEPT:]
            replace_synced(self.delivered_path, ("\n".join(lines) + "\n").encode())
        for line in lines:
            try:
                record = json.loads(line)
                end = record["end"]
                found[str(record["c"])] = int(end) if isinstance(end, int) else None
            except (ValueError, KeyError, TypeError):
                continue  # a torn line
        for key, entry in self._entries.items():
            ended = entry.document.ended_at
            found[key] = int(ended.timestamp() * 1000) if ended is not None else None
        return found

    def load(self) -> list[TranscriptDocument]:
        """Read what a previous run left (call once, before the worker starts).

        Unreadable entries are moved aside as ``*.corrupt``, never deleted.
        """
        if not self.directory.exists():
            return []
        documents: list[TranscriptDocument] = []
        for path in sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                data = self.sealer.open(path.read_bytes())
                document = structure(json.loads(data), TranscriptDocument, what=path.name)
            except Exception:
                path.rename(path.with_suffix(".corrupt"))
                continue
            known = self._entries.get(document.conversation_id)
            if known is not None and known.document.version >= document.version:
                path.unlink()  # an older copy under an earlier release's name
                continue
            if path != self._path(document.conversation_id):  # named by an earlier release
                path = path.rename(self._path(document.conversation_id))
            size = path.stat().st_size
            if known is not None:
                self._bytes -= known.size
                documents.remove(known.document)
            self._entries[document.conversation_id] = _Entry(document, size)
            self._bytes += size
            documents.append(document)
        for leftover in self.directory.glob("*.json.tmp"):
            leftover.unlink()
        return documents

    # --- queue --------------------------------------------------------------------------

    def usage(self) -> OutboxUsage:
        """Entries and bytes now held."""
        return OutboxUsage(entries=len(self._entries), bytes=self._bytes, max_bytes=self.max_bytes)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def put(self, document: TranscriptDocument) -> None:
        """Store ``document`` durably; waits while the outbox is over ``max_bytes``.

        Safe to call from several tasks at once: the writes of one conversation take
        turns, and an older version never replaces a newer one already stored.
        """
        key = document.conversation_id
        while (self._bytes >= self.max_bytes and self._entries) or key in self._writing:
            await self._changed.wait()
        known = self._entries.get(key)
        if known is not None and known.document.version > document.version:
            return  # finalized after a newer version of the conversation (out of order)
        self._writing.add(key)
        try:
            size = await trio.to_thread.run_sync(self._write, document)
            previous = self._entries.pop(key, None)
            self._bytes += size - (previous.size if previous else 0)
            self._entries[key] = _Entry(document, size)
            self._stored.pop(key, None)
            self._stored[key] = None
            while len(self._stored) > DELIVERED_KEPT:
                self._stored.popitem(last=False)
        finally:
            self._writing.discard(key)
            self._notify()

    async def wait_stored(self, conversation_id: str) -> None:
        """Return once a document of ``conversation_id`` has been stored during this run
        (it may be delivered already)."""
        while conversation_id not in self._stored:
            await self._changed.wait()

    async def wait_delivered(self, conversation_id: str) -> None:
        """Return once no document of ``conversation_id`` waits here: each was taken by
        every sink, or refused by one and dead-lettered. Call it after :meth:`wait_stored`
        (before, it returns at once)."""
        while conversation_id in self._entries or conversation_id in self._writing:
            await self._changed.wait()

    async def remove(self, *documents: TranscriptDocument) -> None:
        """Drop the entry of each of ``documents`` that is still that version (all sinks
        have it): one trip to a thread for a whole batch (about 0.07 ms of CPU each).

        A conversation whose newer version is being written is left alone (the new file
        replaces the old one), and one being removed holds back a :meth:`put` of it until
        its file is gone: a file is never deleted after a newer version was written to it.
        """
        gone = []
        for document in documents:
            key = document.conversation_id
            entry = self._entries.get(key)
            if entry is None or entry.document.version != document.version or key in self._writing:
                continue
            del self._entries[key]
            self._bytes -= entry.size
            gone.append(document)
        if not gone:
            return
        keys = {document.conversation_id for document in gone}
        self._writing |= keys

        def forget() -> None:
            for document in gone:
                self._path(document.conversation_id).unlink(missing_ok=True)
            self._delivered(gone)

        try:
            await trio.to_thread.run_sync(forget)
        finally:
            self._writing -= keys
            self._notify()

    def close(self) -> None:
        """No more :meth:`put` calls will come; :meth:`next_batch` returns empty once drained."""
        self._closed = True
        self._notify()

    async def next_batch(self, size: int, *, linger_s: float = 0.0) -> list[TranscriptDocument]:
        """Up to ``size`` pending documents, oldest first.

        Waits until there is one; then, while fewer than ``size`` are pending and the outbox
        is open, up to ``linger_s`` (s) more for others, so that one bulk request carries
        them all. Returns ``[]`` once the outbox is closed and empty.
        """
        while not self._entries and not self._closed:
            await self._changed.wait()
        with trio.move_on_after(linger_s):
            while len(self._entries) < size and not self._closed:
                await self._changed.wait()
        return [entry.document for entry in self._entries.values()][:size]
