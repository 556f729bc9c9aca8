"""The journal: open conversations survive a restart, finished ones are forgotten."""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing

from indexer.completion import Checkpoint, StreamItem, SubscriptionChange, detect_completion
from indexer.config import CompletionSettings
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.journal import Journal
from indexer.models import Envelope
from indexer.serialization import dump_envelope, parse_envelope
from indexer.stats import Statistics
from tests.factories import conversation, transcription, utterance

SETTINGS = CompletionSettings(grace_period_s=1.0, max_idle_s=600.0, max_age_s=3600.0)


def last_segment(folder: Path) -> Path:
    return sorted(folder.glob("*.ndjson"))[-1]


def segment_lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted(folder.glob("*.ndjson")) for line in p.read_text().splitlines()]


async def test_load_returns_only_open_conversations(tmp_path: Path) -> None:
    """Frames of finalized conversations are skipped; a torn last line is ignored."""
    journal = Journal(tmp_path / "journal")
    journal.record("open", '{"f": 1}')
    journal.record("done", '{"f": 2}')
    journal.record("open", '{"f": 3}')
    journal.finalized("done")
    await journal.flush()
    with last_segment(tmp_path / "journal").open("a") as file:
        file.write('{"c": "open", "f": "torn')
    assert Journal(tmp_path / "journal").load() == [("open", '{"f": 1}'), ("open", '{"f": 3}')]


async def test_a_full_segment_keeps_only_open_frames(tmp_path: Path) -> None:
    """Past its size a segment takes no more appends; then it keeps only the open
    conversations' frames (and its done markers): the finished ones' frames leave."""
    folder = tmp_path / "journal"
    journal = Journal(folder, segment_bytes=200, compact_interval_s=0)
    for i in range(10):
        journal.record(f"c{i}", "x" * 30)
        if i != 7:
            journal.finalized(f"c{i}")
    await journal.flush()
    journal.record("c7", "y")
    await journal.flush()  # a new segment; the full one is rewritten
    assert [line for line in segment_lines(folder) if "f" in line] == [
        {"c": "c7", "f": "x" * 30},
        {"c": "c7", "f": "y"},
    ]
    assert Journal(folder).load() == [("c7", "x" * 30), ("c7", "y")]


async def test_a_segment_of_finished_conversations_is_deleted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Frames are written once: a segment goes whole when its conversations are finished,
    within compact_interval_s of their end, and files are never rewritten whole; the
    markers a later segment's frames need are carried over."""
    folder = tmp_path / "journal"
    journal = Journal(folder, compact_interval_s=10.0)
    journal.record("long", "l1")
    journal.record("short", "s1")
    await journal.flush()
    journal.finalized("short")
    await journal.flush()
    await trio.sleep(5.0)
    journal.record("long", "l2")
    await journal.flush()  # the first segment, old and holding a finished one, takes no more
    assert len(list(folder.glob("*.ndjson"))) == 2
    frames = [line for line in segment_lines(folder) if "f" in line]
    assert frames == [{"c": "long", "f": "l1"}, {"c": "long", "f": "l2"}]
    journal.finalized("long")
    await trio.sleep(5.0)
    await journal.flush()
    await journal.flush()
    assert [line for line in segment_lines(folder) if "f" in line] == []
    reloaded = Journal(folder)
    assert reloaded.load() == [] and sorted(reloaded.finalized_ids) == ["long", "short"]


async def test_the_cost_per_frame_stays_flat(tmp_path: Path) -> None:
    """20,000 open conversations: appending a frame writes one line, never the whole journal
    (the single file was rewritten at every flush past 64 MiB)."""
    folder = tmp_path / "journal"
    journal = Journal(folder, segment_bytes=64 * 1024)
    for i in range(20_000):
        journal.record(f"c{i}", "f" * 20)
        if i % 1000 == 999:
            journal.finalized(f"c{i - 500}")
            await journal.flush()
    before = {p: p.stat().st_mtime_ns for p in folder.glob("*.ndjson")}
    journal.record("c0", "g")
    journal.finalized("c1")
    await journal.flush()
    touched = [p for p in folder.glob("*.ndjson") if before.get(p) != p.stat().st_mtime_ns]
    total = sum(p.stat().st_size for p in folder.glob("*.ndjson"))
    # the newest segment appended to, the two that held finished frames rewritten: of 14
    assert total > 800_000 and len(touched) <= 3
    assert sum(p.stat().st_size for p in touched) < 3 * 64 * 1024


async def _run_detector(
    journal: Journal, envelopes: list[Envelope], restored: list[Envelope], tmp_path: Path
) -> list[TranscriptDocument]:
    stats = Statistics()
    send, receive = trio.open_memory_channel[Envelope](100)
    docs_send, docs = trio.open_memory_channel[TranscriptDocument](100)
    changes_send, _changes = trio.open_memory_channel[SubscriptionChange](100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: detect_completion(
                receive,
                docs_send,
                settings=SETTINGS,
                dead_letters=DeadLetterStore(tmp_path / "dead", stats),
                stats=stats,
                subscriptions=changes_send,
                end_reason="shutdown",
                journal=journal,
                restored=restored,
            )
        )
        for envelope in envelopes:
            await send.send(envelope)
        await trio.sleep(5)
        await send.aclose()
    return [d async for d in docs]


async def test_finalized_ids_survive_compaction(tmp_path: Path) -> None:
    """The next run learns which conversations are done, even after compaction."""
    journal = Journal(tmp_path / "journal", segment_bytes=100)
    for i in range(5):
        journal.record(f"c{i}", "frame")
        journal.finalized(f"c{i}")
    await journal.flush()
    await journal.flush()  # the full segment goes; its markers are carried to the next
    assert len(list((tmp_path / "journal").glob("*.ndjson"))) == 1
    assert [line for line in segment_lines(tmp_path / "journal") if "f" in line] == []
    reloaded = Journal(tmp_path / "journal")
    assert reloaded.load() == []
    assert reloaded.finalized_ids == ["c0", "c1", "c2", "c3", "c4"]


async def test_a_restart_resumes_open_conversations(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Drained mid-call, the conversation stays in the journal; the next run completes it whole."""
    path = tmp_path / "journal"
    first = await _run_detector(
        Journal(path),
        [conversation(ended=False), transcription(utterance("u1", "before the restart", 1000))],
        [],
        tmp_path,
    )
    assert first == [], "an open conversation is not indexed at a drain when a journal keeps it"
    journal = Journal(path)
    restored = [parse_envelope(frame) for _, frame in journal.load()]
    assert len(restored) == 2
    second = await _run_detector(
        journal,
        [
            transcription(utterance("u2", "after the restart", 5000)),
            conversation(ended=True),
            transcription(status="SESSION_ENDED"),
        ],
        restored,
        tmp_path,
    )
    (document,) = second
    assert document.completion_reason == "ended"
    assert [u.text for u in document.utterances] == ["before the restart", "after the restart"]
    assert Journal(path).load() == [], "a finished conversation is forgotten by the journal"


async def test_frames_are_journaled_as_received(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The journal keeps a parsed frame's own text (fields the models do not read included,
    in its own layout), not a second serialization of it; it still resumes the same."""
    frame = json.dumps(
        {**json.loads(dump_envelope(transcription(utterance("u1", "kept as sent", 1000)))), "x-extra": [1]},
        indent=1,
    )
    path = tmp_path / "journal"
    await _run_detector(Journal(path), [conversation(ended=False), parse_envelope(frame)], [], tmp_path)
    frames = [f for _, f in Journal(path).load()]
    assert frames[1] == frame
    (resumed,) = await _run_detector(
        Journal(path),
        [conversation(ended=True), transcription(status="SESSION_ENDED")],
        [parse_envelope(f) for f in frames],
        tmp_path,
    )
    assert [u.text for u in resumed.utterances] == ["kept as sent"]


async def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    """A crash mid-write leaves a line without its newline: the next run's first record is
    still read back (it is not appended to the torn line)."""
    path = tmp_path / "journal"
    journal = Journal(path)
    journal.record("a", '{"f": 1}')
    await journal.flush()
    with last_segment(path).open("a") as file:
        file.write('{"c": "a", "f": "to')  # torn: no newline
    after_crash = Journal(path)
    assert after_crash.load() == [("a", '{"f": 1}')]
    after_crash.record("b", '{"f": 2}')
    await after_crash.flush()
    assert Journal(path).load() == [("a", '{"f": 1}'), ("b", '{"f": 2}')]


async def test_damaged_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    """Lines that are JSON but not journal records (a list, no id, a number id) are skipped."""
    path = tmp_path / "journal"
    path.mkdir()
    (path / "00000000.ndjson").write_text(
        '[1, 2]\n{"f": "x"}\n{"c": 5, "f": "y"}\n{"c": "ok", "f": "z"}\n' + "[" * 100_000 + "\n"
    )
    assert Journal(path).load() == [("ok", "z")]


async def test_the_single_file_of_earlier_versions_is_taken_in(tmp_path: Path) -> None:
    """``journal.ndjson`` of an earlier version becomes the oldest segment: its open
    conversations resume, its finished ones stay finished."""
    legacy = tmp_path / "journal.ndjson"
    legacy.write_text('{"c": "open", "f": "1"}\n{"c": "done", "f": "2"}\n{"c": "done", "done": true}\n')
    journal = Journal(tmp_path / "journal", legacy=legacy)
    assert journal.load() == [("open", "1")] and journal.finalized_ids == ["done"]
    assert not legacy.exists()
    journal.record("open", "3")
    await journal.flush()
    assert Journal(tmp_path / "journal").load() == [("open", "1"), ("open", "3")]


async def test_finished_conversations_leave_the_file_in_bounded_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A small journal is compacted too: a finished conversation's frames (unredacted
    input) are gone once ``compact_interval_s`` has passed, even with no new input."""
    path = tmp_path / "journal"
    journal = Journal(path, compact_interval_s=60)
    journal.record("finished", '{"secret": "123-45-6789"}')
    journal.record("open", '{"f": 1}')
    await journal.flush()
    journal.finalized("finished")
    await journal.flush()
    autojump_clock.jump(61)
    await journal.flush()  # nothing queued: the interval alone makes it compact
    assert not any("123-45-6789" in p.read_text() for p in path.glob("*"))
    assert Journal(path).load() == [("open", '{"f": 1}')]


class _SlowDisk(Journal):
    """A journal whose flushes take 2 s (a slow disk)."""

    async def flush(self) -> None:
        await trio.sleep(2.0)
        await super().flush()


async def test_a_checkpoint_is_reached_when_a_close_falls_due_during_its_flush(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A source's checkpoint is reported reached even when a conversation's close falls
    due while the journal flushes for it (the SQS source waited for it for ever, its
    batch never deleted and no message received again), and the close still happens."""
    stats = Statistics()
    send, receive = trio.open_memory_channel[StreamItem](10)
    docs_send, docs = trio.open_memory_channel[TranscriptDocument](10)
    checkpoint = Checkpoint()
    send.send_nowait(conversation(ended=True))
    send.send_nowait(transcription(utterance("u1", "the last words", 1000)))
    send.send_nowait(transcription(status="SESSION_ENDED"))  # its grace period (1 s) starts
    send.send_nowait(checkpoint)  # its flush takes 2 s
    send.close()
    await detect_completion(
        receive,
        docs_send,
        settings=SETTINGS,
        dead_letters=DeadLetterStore(tmp_path / "dead.ndjson", stats),
        stats=stats,
        journal=_SlowDisk(tmp_path / "journal", sync_interval_s=60.0),
    )
    assert checkpoint.reached.is_set()
    (document,) = [d async for d in docs]
    assert [u.text for u in document.utterances] == ["the last words"]
    assert document.completion_reason == "ended"
