"""The completion detector: end signals, grace period, idle and max-age timers, stream end."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.completion import Checkpoint, StreamItem, SubscriptionChange, detect_completion
from indexer.config import CompletionSettings
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.journal import Journal
from indexer.models import Envelope
from indexer.recovery import FindMissed, Gap, Rebuild, Reconcile, RecoveryRequest
from indexer.stats import Statistics
from tests.factories import CONVERSATION, THREAD_AUTOJUMP_S, at, conversation, transcription, utterance

SETTINGS = CompletionSettings(grace_period_s=5.0, max_idle_s=60.0, max_age_s=600.0)


class Harness:
    """The detector running in a nursery, fed and read through memory channels."""

    def __init__(
        self,
        state_dir: Path,
        settings: CompletionSettings = SETTINGS,
        *,
        recovery: bool = False,
        service_now_ms: Callable[[], int] | None = None,
        restored: Sequence[Envelope] = (),
        max_transcript_backlog: int | None = None,
        changes_buffer: int = 100,
        journal: bool = False,
    ) -> None:
        # written when the detector asks (the clock of a test with a journal jumps only when
        # nothing runs for a while: the journal is read in a thread)
        self.journal = (
            Journal(state_dir / "journal", sync_interval_s=3600, compact_interval_s=7200) if journal else None
        )
        self.service_now_ms = service_now_ms
        self.restored = restored
        self.max_transcript_backlog = max_transcript_backlog
        self.stats = Statistics()
        self.dead_letters = DeadLetterStore(state_dir / "dead.ndjson", self.stats)
        self.settings = settings
        self.send, self.receive = trio.open_memory_channel[Envelope | Gap](100)
        self.docs_send, self.docs = trio.open_memory_channel[TranscriptDocument](100)
        self.changes_send, self.changes = trio.open_memory_channel[SubscriptionChange](changes_buffer)
        self.recovery_send, self.recovery = (
            trio.open_memory_channel[RecoveryRequest](100) if recovery else (None, None)
        )

    async def run(self) -> None:
        if self.journal is not None:
            self.journal.load()
        await detect_completion(
            self.receive,
            self.docs_send,
            settings=self.settings,
            dead_letters=self.dead_letters,
            stats=self.stats,
            subscriptions=self.changes_send,
            end_reason="shutdown",
            recovery=self.recovery_send,
            service_now_ms=self.service_now_ms,
            restored=self.restored,
            max_transcript_backlog=self.max_transcript_backlog,
            journal=self.journal,
        )

    async def send_ended_call(self, *texts: str) -> None:
        """An ended conversation whose customer said ``texts`` (u1, u2, … 1 s apart), session over."""
        await self.send.send(conversation(ended=True))
        for i, text in enumerate(texts, start=1):
            await self.send.send(transcription(utterance(f"u{i}", text, 1000 * i)))
        await self.send.send(transcription(status="SESSION_ENDED"))

    def drained(self) -> list[TranscriptDocument]:
        result = []
        while True:
            try:
                result.append(self.docs.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return result


async def test_complete_after_end_signals_and_grace(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Closed 'ended' only after the grace period; a trailing utterance inside it is kept."""
    h = Harness(state_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(conversation(ended=False))
        await h.send.send(transcription(second=0))  # the session opens
        await h.send.send(transcription(utterance("u1", "hello", 1000)))
        await h.send.send(conversation(ended=True))
        await h.send.send(transcription(status="SESSION_ENDED"))
        start = trio.current_time()
        await trio.sleep(4.0)
        assert h.drained() == []
        await h.send.send(transcription(utterance("u2", "trailing words", 3000)))
        document = await h.docs.receive()
        assert trio.current_time() - start >= SETTINGS.grace_period_s
        assert document.completion_reason == "ended" and document.complete
        assert [u.text for u in document.utterances] == ["hello", "trailing words"]
        await trio.sleep(SETTINGS.reopen_window_s)  # the topic is dropped when the re-open window ends
        await h.send.aclose()
    changes = [c async for c in h.changes]
    assert changes == [
        SubscriptionChange("add", document.conversation_id),
        SubscriptionChange("remove", document.conversation_id),
    ]


async def test_stream_lag_is_measured_on_the_service_clock(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Each transcription message's lag behind its eventTime, on the service's clock, goes
    to the stream-lag histogram; one stamped ahead of that clock counts as no lag, one
    without a time is not measured, and neither are conversation events or input restored
    from the journal (as old as the worker's downtime)."""
    service_now_ms = int(at(10).timestamp() * 1000) + 2500
    restored = [transcription(utterance("u0", "before the restart", 500), second=-600)]
    h = Harness(state_dir, service_now_ms=lambda: service_now_ms, restored=restored)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(conversation(ended=False))
        await h.send.send(transcription(utterance("u1", "hello", 1000), second=10))  # 2.5 s behind
        await h.send.send(transcription(utterance("u2", "again", 2000), second=40))  # ahead: 0
        unstamped = transcription(utterance("u3", "no time", 3000))
        body = attrs.evolve(unstamped.event_body, event_time=None)
        await h.send.send(attrs.evolve(unstamped, event_body=body))
        await h.send.aclose()
    samples = {s.name: s.value for s in h.stats.stream_lag.collect()[0].samples if not s.labels}
    assert samples["transcript_indexer_stream_lag_seconds_count"] == 2
    assert samples["transcript_indexer_stream_lag_seconds_sum"] == pytest.approx(2.5)


async def test_idle_conversation_is_closed_incomplete(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """No event for max_idle_s closes the conversation with reason 'idle'."""
    h = Harness(state_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(transcription(utterance("u1", "hello", 1000)))
        start = trio.current_time()
        document = await h.docs.receive()
        assert trio.current_time() - start >= SETTINGS.max_idle_s
        assert (document.completion_reason, document.complete) == ("idle", False)
        await h.send.aclose()


async def test_max_age_closes_a_busy_conversation(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Keep-alives keep it from idling, but max_age_s closes it anyway."""
    h = Harness(state_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        start = trio.current_time()

        async def keepalives() -> None:
            while True:
                await h.send.send(transcription())
                await trio.sleep(30)

        nursery.start_soon(keepalives)
        document = await h.docs.receive()
        assert trio.current_time() - start >= SETTINGS.max_age_s
        assert document.completion_reason == "max_age"
        nursery.cancel_scope.cancel()


async def test_stream_end_flushes_open_conversations(state_dir: Path) -> None:
    """When the stream closes, ended conversations flush as 'ended', others with the end reason."""
    h = Harness(state_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(conversation(ended=False, conversation_id="open-one"))
        await h.send_ended_call("bye")
        await h.send.aclose()
    reasons = {d.conversation_id: d.completion_reason for d in h.drained()}
    assert reasons == {"open-one": "shutdown", "9a3c1d52-3a1e-4c3b-9f0e-6d2b7a1c4e11": "ended"}


@pytest.mark.parametrize("journal", [False, True])
async def test_a_late_utterance_reopens_and_replaces_the_document(
    state_dir: Path, autojump_clock: trio.testing.MockClock, journal: bool
) -> None:
    """Inside the re-open window a late utterance gives a new, higher version of the whole
    transcript; with a journal, the closed conversation kept only its utterances' keys, and
    the text comes back from the journal's frames."""
    if journal:  # the journal is read in a thread: the clock jumps only when nothing runs
        autojump_clock.autojump_threshold = THREAD_AUTOJUMP_S
    h = Harness(state_dir, journal=journal)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send_ended_call("hello")
        first = await h.docs.receive()
        await trio.sleep(30)
        await h.send.send(transcription(utterance("u1", "hello", 1000)))  # a duplicate re-opens nothing
        await h.send.send(transcription(utterance("u2", "one more thing", 4000), second=5))
        with trio.fail_after(SETTINGS.grace_period_s * 2):
            second = await h.docs.receive()
        await h.send.aclose()
    assert [u.text for u in second.utterances] == ["hello", "one more thing"]
    assert second.version > first.version
    assert second.completion_reason == "ended"
    assert h.stats.reopened == 1 and h.stats.late_messages == 1
    assert h.dead_letters.read() == []


async def test_a_reopened_call_whose_frames_the_journal_lost_goes_to_recovery(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Fail safe: when the journal no longer has a closed call's frames (its files were
    lost), a re-opening late utterance sends the call to recovery (the post-call
    transcript) rather than index it without the utterances it had."""
    autojump_clock.autojump_threshold = THREAD_AUTOJUMP_S  # the journal is read in a thread
    h = Harness(state_dir, recovery=True, journal=True)
    assert h.journal is not None and h.recovery is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await whole_call(h, "lost")
        first = await h.docs.receive()
        await h.journal.flush()
        for segment in h.journal.folder.glob("*.ndjson"):
            segment.unlink()
        await h.send.send(
            transcription(utterance("u2", "one more thing", 4000), conversation="lost", second=30)
        )
        with trio.fail_after(SETTINGS.grace_period_s * 2):
            request = await h.recovery.receive()
        nursery.cancel_scope.cancel()
    assert isinstance(request, Reconcile) and request.document.conversation_id == "lost"
    assert request.document.version > first.version
    assert [u.text for u in request.document.utterances] == ["one more thing"]  # the rest: post-call
    assert h.drained() == []


async def test_late_utterances_are_dead_lettered(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """After the re-open window, utterances for a finished conversation are counted and kept."""
    h = Harness(state_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send_ended_call("hello")
        await h.docs.receive()
        await trio.sleep(SETTINGS.reopen_window_s + 1)
        await h.send.send(transcription(utterance("u9", "too late", 9000)))
        await h.send.send(conversation(ended=True))
        await h.send.aclose()
    assert h.drained() == []
    assert h.stats.late_messages == 2
    (letter,) = h.dead_letters.read()
    assert letter["kind"] == "late_message"
    assert "too late" in letter["payload"]


async def test_open_conversation_cap_closes_the_quietest(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """At max_open_conversations a new conversation closes the least recently active one."""
    h = Harness(state_dir, attrs.evolve(SETTINGS, max_open_conversations=2))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(conversation(ended=False, conversation_id="first"))
        await trio.sleep(1)
        await h.send.send(conversation(ended=False, conversation_id="second"))
        await trio.sleep(1)
        await h.send.send(conversation(ended=False, conversation_id="third"))
        closed = await h.docs.receive()
        nursery.cancel_scope.cancel()
    assert (closed.conversation_id, closed.completion_reason, closed.complete) == ("first", "capacity", False)


async def test_utterances_beyond_the_cap_are_dead_lettered(state_dir: Path) -> None:
    """Past max_utterances, new utterances are kept in the dead-letter store, not in memory.

    Real clock: dead letters are written in a thread, during which an autojump clock would
    leap to the idle deadline.
    """
    h = Harness(state_dir, attrs.evolve(SETTINGS, max_utterances=2, grace_period_s=0.05))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send_ended_call(*(f"utterance {i}" for i in range(4)))
        document = await h.docs.receive()
        nursery.cancel_scope.cancel()
    assert [u.text for u in document.utterances] == ["utterance 0", "utterance 1"]
    assert h.stats.limited_utterances == 2
    assert [letter["kind"] for letter in h.dead_letters.read()] == ["utterance_limit", "utterance_limit"]


async def whole_call(h: Harness, conversation_id: str) -> None:
    """A conversation whose live transcript has no holes: the session's opening message, one
    utterance, both end signals."""
    await h.send.send(conversation(ended=False, conversation_id=conversation_id))
    await h.send.send(transcription(conversation=conversation_id, second=0))
    await h.send.send(transcription(utterance("u1", "hello", 1000), conversation=conversation_id))
    await h.send.send(conversation(ended=True, conversation_id=conversation_id))
    await h.send.send(transcription(status="SESSION_ENDED", conversation=conversation_id, second=20))


async def test_calls_the_stream_did_not_have_whole_go_to_recovery_counted_by_why(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A call joined after its session's opening message, and one with no transcription
    message at all, close into recovery; the metric says why; a whole call is not counted."""
    h = Harness(state_dir, recovery=True)
    assert h.recovery is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await whole_call(h, "whole")
        assert (await h.docs.receive()).conversation_id == "whole"
        await h.send.send(conversation(ended=False, conversation_id="late"))
        await h.send.send(transcription(utterance("u2", "and so", 5000), conversation="late"))
        await h.send.send(conversation(ended=True, conversation_id="late"))
        await h.send.send(transcription(status="SESSION_ENDED", conversation="late", second=20))
        await h.send.send(conversation(ended=False, conversation_id="silent"))
        await h.send.send(conversation(ended=True, conversation_id="silent"))
        requests = [await h.recovery.receive(), await h.recovery.receive()]
        nursery.cancel_scope.cancel()
    assert {r.document.conversation_id for r in requests if isinstance(r, Reconcile)} == {"late", "silent"}
    assert h.stats.live_incomplete == {"joined_late": 1, "no_session": 1}
    assert h.drained() == []


@pytest.mark.parametrize("journal", [False, True])
async def test_a_gap_sends_what_the_live_stream_may_have_missed_to_recovery(
    state_dir: Path, autojump_clock: trio.testing.MockClock, journal: bool
) -> None:
    """A lost socket may have carried the trailing or late utterances of conversations that
    closed from the live stream: those in their re-open window go to recovery at once, at a
    higher version, and only once; open ones when they close; the search for conversations
    that ended unseen waits for the gap to be over."""
    if journal:  # the journal is read in a thread: the clock jumps only when nothing runs
        autojump_clock.autojump_threshold = THREAD_AUTOJUMP_S
    h = Harness(state_dir, recovery=True, journal=journal)
    assert h.recovery is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await whole_call(h, "old")
        assert (await h.docs.receive()).conversation_id == "old"
        await trio.sleep(SETTINGS.reopen_window_s + 1)  # out of its re-open window
        await whole_call(h, "closed")
        live = await h.docs.receive()
        await h.send.send(transcription(utterance("u1", "hi", 1000), conversation="open"))

        await h.send.send(Gap(start_ms=1_000, end_ms=None))  # the socket is lost
        with trio.fail_after(1):
            request = await h.recovery.receive()
        assert isinstance(request, Reconcile)
        assert request.document.conversation_id == "closed"
        assert request.document.version > live.version
        assert request.document.utterances == live.utterances

        await h.send.send(Gap(start_ms=1_000, end_ms=None))  # a second socket: nothing new
        await h.send.send(conversation(ended=True, conversation_id="ending"))  # its end was seen
        await h.send.send(Gap(start_ms=1_000, end_ms=9_000))  # a socket is live again
        missed = await h.recovery.receive()
        assert isinstance(missed, FindMissed)
        assert (missed.start_ms, missed.end_ms, missed.open) == (1_000, 9_000, frozenset({"open"}))
        assert missed.known >= {"old", "closed", "ending"}  # "ending" closes into recovery here

        await h.send.send(conversation(ended=True, conversation_id="open"))
        await h.send.send(transcription(status="SESSION_ENDED", conversation="open", second=20))
        reconciled = {(await h.recovery.receive()), (await h.recovery.receive())}
        assert {r.document.conversation_id for r in reconciled if isinstance(r, Reconcile)} == {
            "open",
            "ending",
        }
        nursery.cancel_scope.cancel()
    assert h.drained() == []
    with pytest.raises((trio.WouldBlock, trio.EndOfChannel)):
        h.recovery.receive_nowait()  # "old" never went, nor "closed" a second time


async def test_a_gap_brings_forward_the_close_of_a_call_whose_session_end_was_lost(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Its participants ended live, its SESSION_ENDED fell in the gap: after the gap it no
    longer waits for that end (nor for the idle timer) but closes into recovery after the
    grace period. (Before, its timer still said idle: found by the emulator's IVR timing.)"""
    h = Harness(state_dir, recovery=True)
    assert h.recovery is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await h.send.send(transcription(utterance("u1", "hi", 1000)))
        await h.send.send(conversation(ended=True))
        start = trio.current_time()
        await h.send.send(Gap(start_ms=1_000, end_ms=None))
        request = await h.recovery.receive()
        assert isinstance(request, Reconcile) and request.document.completion_reason == "ended"
        assert trio.current_time() - start <= SETTINGS.grace_period_s + 1 < SETTINGS.max_idle_s
        nursery.cancel_scope.cancel()


# --- control before data (live sockets) ----------------------------------------------------


@pytest.mark.parametrize("backlog", [None, 100])
async def test_conversation_events_go_before_waiting_transcripts(
    state_dir: Path, autojump_clock: trio.testing.MockClock, backlog: int | None
) -> None:
    """With a backlog limit (live sockets), a new conversation waiting behind another's
    transcription messages is subscribed to before they are applied; in order (replays),
    after them."""
    asked_when_applied: list[int] = []  # subscriptions asked for when each message was applied

    def service_now_ms() -> int:  # read by the detector as it applies a transcription message
        asked_when_applied.append(h.changes.statistics().current_buffer_used)
        return 0

    h = Harness(state_dir, max_transcript_backlog=backlog, service_now_ms=service_now_ms)
    h.send.send_nowait(conversation(ended=False, conversation_id="busy"))
    for i in range(1, 21):
        h.send.send_nowait(transcription(utterance(f"u{i}", "words", 1000 * i), conversation="busy"))
    h.send.send_nowait(conversation(ended=False, conversation_id="new"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert asked_when_applied == [2 if backlog else 1] * 20
    assert [h.changes.receive_nowait().conversation_id for _ in range(2)] == ["busy", "new"]


async def test_a_close_waits_for_the_transcripts_that_arrived_before_it(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The watermark: a trailing utterance arrived before the conversation's close fell due
    (at once: no grace period, as when the backlog takes longer than the grace period to
    work through) but still waits behind others; it is applied before the conversation
    closes: one whole document, never re-opened."""
    h = Harness(state_dir, attrs.evolve(SETTINGS, grace_period_s=0.0), max_transcript_backlog=100)
    h.send.send_nowait(conversation(ended=False))
    h.send.send_nowait(conversation(ended=True))
    h.send.send_nowait(transcription(second=0))  # the session's opening message
    h.send.send_nowait(transcription(utterance("u1", "hello", 1000)))
    h.send.send_nowait(transcription(status="SESSION_ENDED", second=20))  # the close falls due
    h.send.send_nowait(transcription(utterance("u2", "trailing words", 3000), second=21))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        document = await h.docs.receive()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [u.text for u in document.utterances] == ["hello", "trailing words"]
    assert document.complete and document.completion_reason == "ended"
    assert h.drained() == [] and h.stats.reopened == 0


async def test_a_full_backlog_sheds_a_conversation_to_recovery(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Past ``max_transcript_backlog`` waiting transcription messages, the conversation of
    the next one is shed: its topic is dropped, its messages are skipped (even those that
    waited), and it closes into recovery; the others are completed from the stream."""
    h = Harness(state_dir, recovery=True, max_transcript_backlog=4)
    assert h.recovery is not None
    for conversation_id in ("kept", "shed"):
        h.send.send_nowait(conversation(ended=False, conversation_id=conversation_id))
    h.send.send_nowait(transcription(conversation="kept", second=0))  # the session's opening message
    h.send.send_nowait(transcription(utterance("u1", "hello", 1000), conversation="kept"))
    h.send.send_nowait(transcription(status="SESSION_ENDED", conversation="kept", second=20))
    h.send.send_nowait(transcription(utterance("u1", "hi", 1000), conversation="shed"))  # the 4th waiting
    h.send.send_nowait(transcription(utterance("u2", "there", 2000), conversation="shed"))  # shed
    h.send.send_nowait(transcription(status="SESSION_ENDED", conversation="shed", second=20))
    for conversation_id in ("kept", "shed"):
        h.send.send_nowait(conversation(ended=True, conversation_id=conversation_id))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        kept = await h.docs.receive()
        reconcile = await h.recovery.receive()
        nursery.cancel_scope.cancel()
    assert kept.conversation_id == "kept" and [u.text for u in kept.utterances] == ["hello"]
    assert isinstance(reconcile, Reconcile) and reconcile.document.conversation_id == "shed"
    assert reconcile.document.utterances == ()  # the post-call transcript brings the text
    assert (h.stats.conversations_shed, h.stats.transcripts_shed) == (1, 3)
    changes = [change async for change in h.changes]
    assert SubscriptionChange("remove", "shed") in changes
    assert SubscriptionChange("remove", "kept") not in changes  # in its re-open window still


async def test_a_shed_late_utterance_sends_a_closed_call_to_recovery(
    state_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A call indexed from the stream, in its re-open window, whose late utterance is shed:
    recovery completes it (at a higher version), as after a gap."""
    h = Harness(state_dir, recovery=True, max_transcript_backlog=3)
    assert h.recovery is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.run)
        await whole_call(h, "done")
        live = await h.docs.receive()
        for i in range(3):  # they fill the backlog
            h.send.send_nowait(transcription(utterance(f"u{i}", "hi", 1000 * i), conversation="other"))
        h.send.send_nowait(transcription(utterance("u9", "one more thing", 9000), conversation="done"))
        request = await h.recovery.receive()
        nursery.cancel_scope.cancel()
    assert isinstance(request, Reconcile) and request.document.conversation_id == "done"
    assert request.document.version > live.version
    assert h.stats.reopened == 0 and h.stats.conversations_shed == 1


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Envelope], dict[str, list[str]]]:
    """Up to four calls (each: connected and ended events; an opening message, utterances,
    SESSION_ENDED and maybe a trailing utterance), every call's events and transcription
    messages each in their order, interleaved at random; and each call's texts."""
    streams: list[list[Envelope]] = []
    texts: dict[str, list[str]] = {}
    for n in range(draw(st.integers(1, 4))):
        call = f"call-{n}"
        said = [f"{call} says {i}" for i in range(draw(st.integers(0, 3)))]
        data = [transcription(conversation=call, second=0)]
        data += [
            transcription(utterance(f"u{i}", t, 1000 * (i + 1)), conversation=call)
            for i, t in enumerate(said)
        ]
        data.append(transcription(status="SESSION_ENDED", conversation=call, second=20))
        if draw(st.booleans()):
            said.append(f"{call} trails")
            data.append(transcription(utterance("late", said[-1], 9000), conversation=call, second=21))
        streams += [[conversation(ended=e, conversation_id=call) for e in (False, True)], data]
        texts[call] = said
    merged: list[Envelope] = []
    while any(streams):
        merged.append(draw(st.sampled_from([s for s in streams if s])).pop(0))
    return merged, texts


@settings(max_examples=60, deadline=None)
@given(arrivals(), st.one_of(st.none(), st.integers(1, 12)), st.sampled_from([0.0, 5.0]))
def test_every_call_is_indexed_whole_or_recovered_whatever_the_backlog(
    given_arrivals: tuple[list[Envelope], dict[str, list[str]]],
    backlog: int | None,
    grace: float,
) -> None:
    """Whatever the order of arrival and the backlog limit: a call not shed is indexed from
    the stream with every utterance, never re-opened with a backlog limit (the watermark);
    a shed call goes to recovery; none is lost."""
    frames, texts = given_arrivals

    async def main(state_dir: Path) -> Harness:
        h = Harness(
            state_dir,
            attrs.evolve(SETTINGS, grace_period_s=grace),
            recovery=True,
            max_transcript_backlog=backlog,
        )
        for frame in frames:
            h.send.send_nowait(frame)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.run)
            await trio.sleep(SETTINGS.max_idle_s * 2)
            nursery.cancel_scope.cancel()
        return h

    with tempfile.TemporaryDirectory() as folder:
        h = trio.run(main, Path(folder), clock=trio.testing.MockClock(autojump_threshold=0))
    assert h.recovery is not None
    indexed = {d.conversation_id: d for d in h.drained()}  # the newest version of each
    recovered = set()
    while True:
        try:
            request = h.recovery.receive_nowait()
        except trio.WouldBlock:
            break
        assert isinstance(request, Reconcile)
        recovered.add(request.document.conversation_id)
    assert indexed.keys() | recovered == texts.keys()
    for call, said in texts.items():
        if call not in recovered:
            assert [u.text for u in indexed[call].utterances] == said
    if backlog is not None:  # in order, a call whose end comes before its session goes to recovery too
        assert len(recovered) == h.stats.conversations_shed
        assert h.stats.reopened == 0
    if backlog is not None and backlog >= len(frames):
        assert not recovered


async def test_an_end_that_comes_back_after_this_replica_closed_its_part_is_rebuilt(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Shared input: this replica saw a part of a conversation (not its end) and closed it
    as idle; the replica that held the end message was lost, so the message comes back
    here. Every participant has ended in it: this replica asks for the rebuild (once), it
    does not count it late."""
    stats = Statistics()
    send, envelopes = trio.open_memory_channel[StreamItem](10)
    completed_send, completed = trio.open_memory_channel[TranscriptDocument](10)
    recovery_send, recovery = trio.open_memory_channel[RecoveryRequest](10)
    settings = CompletionSettings()

    async def checkpoint() -> Checkpoint:
        reached = Checkpoint()
        await send.send(reached)
        await reached.reached.wait()
        return reached

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: detect_completion(
                envelopes,
                completed_send,
                settings=settings,
                dead_letters=DeadLetterStore(tmp_path / "dead.ndjson", stats),
                stats=stats,
                recovery=recovery_send,
                shared=True,
            )
        )
        await send.send(transcription(utterance("u1", "hello", 1000)))  # a part of it
        assert not (await checkpoint()).rebuilding
        await trio.sleep(settings.max_idle_s + settings.reopen_window_s + 10)
        assert stats.left_to_other_replicas == 1
        await send.send(conversation(ended=False))  # a late snapshot that ends nothing
        assert not (await checkpoint()).rebuilding
        await send.send(conversation(ended=True))  # the end, back from the lost replica
        assert (await checkpoint()).rebuilding == {CONVERSATION}
        await send.send(conversation(ended=True))  # another end snapshot: asked already
        assert not (await checkpoint()).rebuilding
        await send.aclose()
    assert [r async for r in recovery] == [Rebuild(CONVERSATION)]
    assert stats.late_messages == 2 and [d async for d in completed] == []
