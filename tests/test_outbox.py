"""The durable outbox and delivery: nothing finished is lost to a crash or a sink outage."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from indexer import outbox as outbox_module
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import SinkError
from indexer.outbox import Outbox
from indexer.pipeline import deliver_transcripts
from indexer.serialization import unstructure
from indexer.sinks import WriteResult
from indexer.stats import Statistics
from tests.factories import document


@attrs.define
class FlakySink:
    """A sink that is down for its first ``outage`` writes, then keeps what it is given."""

    outage: int = 0
    reject: frozenset[str] = frozenset()
    busy: dict[str, int] = attrs.field(factory=dict)  # id → writes answered with a 429 first
    name: str = "flaky"
    written: list[TranscriptDocument] = attrs.field(factory=list)
    attempts: int = 0

    async def open(self) -> None:
        return None

    async def write(self, documents: Sequence[TranscriptDocument]) -> list[WriteResult]:
        self.attempts += 1
        if self.attempts <= self.outage:
            raise SinkError("connection refused")
        results = []
        for d in documents:
            if self.busy.get(d.conversation_id, 0) > 0:
                self.busy[d.conversation_id] -= 1
                results.append(WriteResult(d.conversation_id, error="429 es_rejected_execution", retry=True))
            elif d.conversation_id in self.reject:
                results.append(WriteResult(d.conversation_id, error="400 mapper_parsing_exception"))
            else:
                self.written.append(d)
                results.append(WriteResult(d.conversation_id))
        return results

    async def aclose(self) -> None:
        return None


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    """What was put and not delivered is there for the next process, newest version only."""
    outbox = Outbox(tmp_path)
    await outbox.put(document("a", 1))
    await outbox.put(document("b", 1))
    await outbox.put(document("a", 2))
    reopened = Outbox(tmp_path)
    loaded = reopened.load()
    assert sorted((d.conversation_id, d.version) for d in loaded) == [("a", 2), ("b", 1)]
    assert reopened.usage().entries == 2 and reopened.usage().bytes > 0


async def test_an_ack_only_removes_its_own_version(tmp_path: Path) -> None:
    """A slow acknowledgement of version 1 does not remove a newer version 2."""
    outbox = Outbox(tmp_path)
    await outbox.put(document("a", 1))
    await outbox.put(document("a", 2))
    await outbox.remove(document("a", 1))
    assert [d.version for d in Outbox(tmp_path).load()] == [2]
    await outbox.remove(document("a", 2))
    assert Outbox(tmp_path).load() == []


async def test_a_delivered_batch_leaves_at_once(tmp_path: Path) -> None:
    """A batch's acknowledgements are removed together (one trip to a thread): every
    delivered version goes, and is remembered as indexed; a newer version stays."""
    outbox = Outbox(tmp_path)
    for name in ("a", "b", "c"):
        await outbox.put(document(name, 1))
    await outbox.put(document("c", 2))
    await outbox.remove(document("a", 1), document("b", 1), document("c", 1))
    assert [(d.conversation_id, d.version) for d in Outbox(tmp_path).load()] == [("c", 2)]
    assert outbox.usage().entries == 1
    delivered = [json.loads(line)["c"] for line in outbox.delivered_path.read_text().splitlines()]
    assert delivered == ["a", "b"]
    assert set(Outbox(tmp_path).indexed()) == {"a", "b"}


async def test_a_removal_never_deletes_a_newer_version_written_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 is acknowledged while version 2 is being stored, either way round: version
    2's file stays on disk (a crash would otherwise lose it), and is delivered next."""
    outbox = Outbox(tmp_path)
    for name in ("a", "c"):
        await outbox.put(document(name, 1))
    written, release = threading.Event(), threading.Event()
    write = outbox._write

    def write_then_wait(document: TranscriptDocument) -> int:
        size = write(document)  # version 2 is on disk; put() has not recorded it yet
        written.set()
        release.wait()
        return size

    monkeypatch.setattr(outbox, "_write", write_then_wait)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.put, document("c", 2))
        await trio.to_thread.run_sync(written.wait)
        try:
            await outbox.remove(document("a", 1), document("c", 1))
        finally:
            release.set()
    assert [(d.conversation_id, d.version) for d in Outbox(tmp_path).load()] == [("c", 2)]
    monkeypatch.undo()

    # the other way round: a put of version 2 while version 1's file is being removed
    await outbox.put(document("b", 1))
    removing, release = threading.Event(), threading.Event()
    path = outbox._path

    def path_then_wait(conversation_id: str) -> Path:
        if conversation_id == "b":  # the batch's first file, then "c"'s
            removing.set()
            release.wait()
        return path(conversation_id)

    written = threading.Event()

    def write_and_tell(document: TranscriptDocument) -> int:
        size = write(document)
        written.set()
        return size

    await outbox.put(document("c", 3))
    monkeypatch.setattr(outbox, "_path", path_then_wait)
    monkeypatch.setattr(outbox, "_write", write_and_tell)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.remove, document("b", 1), document("c", 3))
        await trio.to_thread.run_sync(removing.wait)
        nursery.start_soon(outbox.put, document("c", 4))
        try:
            # version 4 is not written while version 3's file is being removed (a write
            # takes milliseconds: without the hold it would be done within this half second)
            assert not await trio.to_thread.run_sync(written.wait, 0.5)
        finally:
            release.set()
    monkeypatch.undo()
    assert [(d.conversation_id, d.version) for d in Outbox(tmp_path).load()] == [("c", 4)]
    assert [(d.conversation_id, d.version) for d in await outbox.next_batch(10)] == [("c", 4)]


async def test_an_older_version_finalized_late_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    """Conversations are finalized several at once, so version 1 of a re-opened conversation
    may reach the outbox after version 2: version 2 stays, on disk and in memory."""
    outbox = Outbox(tmp_path)
    await outbox.put(document("a", 2))
    await outbox.put(document("a", 1))
    assert [d.version for d in await outbox.next_batch(10)] == [2]
    assert [d.version for d in Outbox(tmp_path).load()] == [2]


async def test_a_batch_waits_briefly_for_more_documents(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """A batch of fewer than asked waits up to ``linger_s`` for more (one bulk request then
    carries them); a full batch, or a closed outbox, does not wait."""
    outbox = Outbox(tmp_path)
    await outbox.put(document("a"))
    batches: list[list[str]] = []

    async def take(size: int) -> None:
        batches.append([d.conversation_id for d in await outbox.next_batch(size, linger_s=0.1)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, 10)
        await outbox.put(document("b"))  # while the batch lingers: it joins
        await trio.testing.wait_all_tasks_blocked()
        assert batches == []
        mock_clock.jump(0.1)
    assert batches == [["a", "b"]]

    async def take_at_once(size: int) -> None:
        """``take(size)``, cancelled if it waits (the mock clock only moves when told)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take, size)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    await take_at_once(2)  # full: no wait
    outbox.close()
    await take_at_once(10)  # closed: no wait
    assert batches[1:] == [["a", "b"], ["a", "b"]]


async def test_concurrent_puts_of_one_conversation_take_turns(tmp_path: Path) -> None:
    """Two tasks storing versions of one conversation at once never write its file together;
    the newest version is what remains."""
    outbox = Outbox(tmp_path)
    async with trio.open_nursery() as nursery:
        for version in (1, 3, 2, 3, 1):
            nursery.start_soon(outbox.put, document("a", version))
    assert [d.version for d in Outbox(tmp_path).load()] == [3]
    assert outbox.usage().entries == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # noqa: ASYNC240


async def test_a_full_outbox_holds_back_intake(tmp_path: Path) -> None:
    """put() waits while the outbox is over its byte bound, and resumes when space frees."""
    outbox = Outbox(tmp_path, max_bytes=1)
    await outbox.put(document("a"))
    done = trio.Event()

    async def second() -> None:
        await outbox.put(document("b"))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        await outbox.remove(document("a"))
        await done.wait()
    assert outbox.usage().entries == 1


async def test_delivery_waits_out_a_sink_outage(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A sink that gives up is retried with backoff; every document arrives, the outbox empties."""
    stats = Statistics()
    outbox = Outbox(tmp_path / "outbox")
    sink = FlakySink(outage=4)
    for name in ("a", "b", "c"):
        await outbox.put(document(name))
    outbox.close()
    start = trio.current_time()
    await deliver_transcripts(outbox, [sink], DeadLetterStore(tmp_path / "dead", stats), stats)
    assert sorted(d.conversation_id for d in sink.written) == ["a", "b", "c"]
    assert stats.indexed == 3 and stats.sink_retries == 4
    assert trio.current_time() - start >= 1 + 2 + 4 + 8
    assert Outbox(tmp_path / "outbox").load() == []


async def test_permanent_rejections_are_dead_lettered(tmp_path: Path) -> None:
    """A document a sink rejects leaves the outbox for the dead-letter store with the reason."""
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead", stats)
    outbox = Outbox(tmp_path / "outbox")
    await outbox.put(document("good"))
    await outbox.put(document("bad"))
    outbox.close()
    await deliver_transcripts(outbox, [FlakySink(reject=frozenset({"bad"}))], dead, stats)
    (letter,) = dead.read()
    assert letter["conversation_id"] == "bad" and letter["reason"] == "flaky: 400 mapper_parsing_exception"
    assert stats.indexed == 1 and outbox.usage().entries == 0


async def test_only_the_failed_items_of_a_partial_failure_are_retried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Items answered 429 stay in the outbox and are written again after a backoff; the rest once."""
    stats = Statistics()
    outbox = Outbox(tmp_path / "outbox")
    sink = FlakySink(busy={"b": 2})
    for name in ("a", "b", "c"):
        await outbox.put(document(name))
    outbox.close()
    start = trio.current_time()
    await deliver_transcripts(outbox, [sink], DeadLetterStore(tmp_path / "dead", stats), stats)
    assert [d.conversation_id for d in sink.written] == ["a", "c", "b"]  # a and c written once
    assert sink.attempts == 3 and stats.sink_retries == 2 and stats.indexed == 3
    assert trio.current_time() - start >= 1 + 2
    assert stats.dead_letters == 0 and outbox.usage().entries == 0


def entry_files(directory: Path, pattern: str = "*.json") -> list[str]:
    return sorted(p.name for p in directory.glob(pattern))


async def test_file_names_are_injective_and_bounded_whatever_the_id(tmp_path: Path) -> None:
    """``conv.1`` and ``conv_1`` are two entries (one ack never deletes the other's copy); a
    300-character id or one with a slash or NUL is a valid, short file name."""
    outbox = Outbox(tmp_path)
    ids = ["conv.1", "conv_1", "x" * 300, "a/b", "..", "n\x00ul", "ünï"]
    for conversation_id in ids:
        await outbox.put(document(conversation_id))
    assert len(entry_files(tmp_path)) == len(ids)
    assert all(len(name) <= 40 for name in entry_files(tmp_path))
    await outbox.remove(document("conv.1"))
    left = {d.conversation_id for d in Outbox(tmp_path).load()}
    assert left == set(ids) - {"conv.1"}


async def test_entries_named_by_an_earlier_release_are_taken_over(tmp_path: Path) -> None:
    """An entry written under the old ``<id>.json`` name is loaded, renamed, and removable."""
    old = document("c-1")
    (tmp_path / "c-1.json").write_text(json.dumps(unstructure(old)))
    outbox = Outbox(tmp_path)
    assert [d.conversation_id for d in outbox.load()] == ["c-1"]
    await outbox.remove(old)
    assert entry_files(tmp_path) == []


async def test_dead_letters_rotate_and_expire(tmp_path: Path) -> None:
    """Past its size cap the file is rotated; rotated files past their retention are deleted."""
    import os
    import time

    stats = Statistics()
    store = DeadLetterStore(tmp_path / "dead-letters.ndjson", stats, max_bytes=2000, retention_days=1)
    for i in range(30):
        await store.add("malformed_message", "not valid JSON", "x" * 100, conversation_id=f"c{i}")
    rotated = [tmp_path / name for name in entry_files(tmp_path, "dead-letters.*.ndjson")]
    assert rotated and all(p.stat().st_size <= 2000 for p in [*rotated, store.path])
    lines = sum(len(p.read_text().splitlines()) for p in [*rotated, store.path])
    assert lines == 30 == stats.dead_letters  # nothing lost by rotating
    ids = [e.id for e in store.entries()]
    assert [e.conversation_id for e in store.entries()] == [f"c{i}" for i in range(30)]  # oldest first
    assert len(set(ids)) == 30
    store.record_outcome(ids[0], "delivered")
    two_days_ago = time.time() - 2 * 86400
    for old in (rotated[0], store.outcomes_path):
        os.utime(old, (two_days_ago, two_days_ago))
    store.expire()
    assert not rotated[0].exists() and store.path.exists()
    assert store.outcomes() == {ids[0]: {"time": store.outcomes()[ids[0]]["time"], "outcome": "delivered"}}
    assert [e.id for e in store.entries()] == ids[-len(store.entries()) :]  # ids survive rotation


async def test_a_delivered_conversation_stays_delivered_however_many_came_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wait_delivered`` asks what waits here now, not what was stored lately: a document
    delivered long ago (``DELIVERED_KEPT`` stores since) is delivered, and one waiting here
    is not until its removal."""
    monkeypatch.setattr(outbox_module, "DELIVERED_KEPT", 2)
    outbox = Outbox(tmp_path)
    await outbox.put(document("a"))
    await outbox.remove(document("a"))
    for n in range(3):
        await outbox.put(document(f"other-{n}"))
    with trio.fail_after(1):
        await outbox.wait_delivered("a")
    with trio.move_on_after(1) as waiting:
        await outbox.wait_delivered("other-0")
    assert waiting.cancelled_caught
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.wait_delivered, "other-0")
            await outbox.remove(document("other-0"))
