"""The completion detector: envelopes in, finished (unredacted) documents out.

A conversation is **complete** (reason ``ended``) when every participant has ended and
every transcription session it had reached ``SESSION_ENDED``, and then a grace period
(``completion.grace_period_s``) has passed for trailing messages (reference §5.4). A
closed conversation is kept for ``reopen_window_s``: an utterance that arrives in that
time re-opens it, and its next document carries a higher version. Later messages for it
are counted, and late utterances kept in the dead-letter store. A
conversation whose end never arrives is closed with reason ``idle`` (no event for
``max_idle_s``) or ``max_age`` (``max_age_s`` after its first event). When the stream
ends, every conversation whose end signals had arrived is closed as ``ended``; the others
stay in the journal when there is one (a drain of the live worker), else are closed with
``end_reason`` (``stream_end`` for a replay).

**Control before data** (live sockets, ``completion.max_transcript_backlog``): what the
source sends is taken conversation events first (and gaps), transcription messages after,
each kind in its order of arrival; so under load a new conversation is subscribed to at
once, not after the transcripts that came before it. A conversation is not closed while
transcription messages that arrived before its close fell due are still waiting (the
**watermark**): they are applied first, whatever the backlog. When the backlog is full,
a new transcription message is not tracked: its conversation is **shed** (its topic
dropped, the rest of its messages skipped) and, when it closes, completed from the
post-call transcript by recovery like one with a gap, so the backlog (and the lag) stays
bounded and every conversation is still indexed whole. Replays and the SQS source take
everything in order.

Timers use the trio clock, so tests drive them with ``autojump_clock``.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Final, Literal

import attrs
import trio

from indexer.config import CompletionSettings
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import MalformedMessage, UnusedTopic
from indexer.journal import Journal
from indexer.live import LiveFeed, LiveUtterance
from indexer.models import ConversationEvent, Envelope, TranscriptionMessage
from indexer.recovery import FindMissed, Gap, Rebuild, Reconcile, RecoveryRequest
from indexer.serialization import dump_envelope, frame_of, parse_envelope
from indexer.stats import Statistics
from indexer.tracker import ConversationState

__all__ = ["Checkpoint", "StreamItem", "SubscriptionChange", "detect_completion"]

log = logging.getLogger(__name__)

#: How many finalized conversation ids are remembered to recognise late messages.
FINALIZED_MEMORY: Final = 100_000


@attrs.frozen
class SubscriptionChange:
    """Ask the subscription manager to follow (``add``) or drop (``remove``) a conversation."""

    action: Literal["add", "remove"]
    conversation_id: str


@attrs.frozen
class _Closed:
    """A conversation in its re-open window: its state, when it closed (trio time, s), why."""

    state: ConversationState
    at: float
    reason: str


@attrs.frozen(eq=False)
class Checkpoint:
    """Put into the stream by a source that must know when what it sent before is safe
    (the SQS source deletes messages then): the detector sets ``reached`` once every item
    before it is applied and, with a journal, written and fsynced.

    :ivar rebuilding: replicas sharing the input (``shared``): the conversations whose end
        came in those items, rebuilt from the Platform API now; their messages are safe
        only once the document is delivered (:meth:`indexer.outbox.Outbox.wait_delivered`).
    """

    reached: trio.Event = attrs.field(factory=trio.Event)
    rebuilding: set[str] = attrs.field(factory=set)


#: What sources send the detector.
StreamItem = Envelope | Gap | Checkpoint


@attrs.frozen
class _Shed:
    """A transcription message of this conversation was not tracked (the backlog was full)."""

    conversation_id: str


class _Inbox:
    """What the source sends, taken in order, or control before data with ``max_backlog``
    (see the module): conversation events and gaps first, then transcription messages and
    checkpoints (a checkpoint stays behind the transcription messages sent before it).

    :ivar taken: transcription messages and checkpoints taken so far (the watermark's unit).
    """

    def __init__(
        self, channel: trio.MemoryReceiveChannel[StreamItem], max_backlog: int | None, stats: Statistics
    ) -> None:
        self.channel = channel
        self.max_backlog = max_backlog
        self.stats = stats
        self.control: deque[StreamItem | _Shed] = deque()
        self.transcripts: deque[Envelope | Checkpoint] = deque()
        self.taken = 0
        self.ended = False

    def _route(self, item: StreamItem) -> None:
        assert self.max_backlog is not None
        if isinstance(item, Envelope) and isinstance(item.event_body, TranscriptionMessage):
            if len(self.transcripts) >= self.max_backlog:
                self.control.append(_Shed(item.event_body.conversation_id))
            else:
                self.transcripts.append(item)
        elif isinstance(item, Checkpoint):  # behind the transcription messages sent before it
            self.transcripts.append(item)
        else:
            self.control.append(item)

    def drain(self) -> int:
        """Take whatever the source has sent into the queues; the transcription messages
        waiting now (0 in order mode)."""
        if self.max_backlog is None:
            return 0
        while not self.ended:
            try:
                self._route(self.channel.receive_nowait())
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                self.ended = True
        self.stats.transcript_backlog = len(self.transcripts)
        return len(self.transcripts)

    async def next(self, deadline: float) -> StreamItem | _Shed | None:
        """The next item, or ``None`` when ``deadline`` (trio time) comes first.

        :raises trio.EndOfChannel: the source is done and everything was taken.
        """
        if self.max_backlog is None:
            with trio.move_on_at(deadline):  # the wait only: an item taken is applied whole
                return await self.channel.receive()
            return None
        if not self.drain() and not self.control:
            if self.ended:
                raise trio.EndOfChannel
            with trio.move_on_at(deadline):
                try:
                    self._route(await self.channel.receive())
                except trio.EndOfChannel:
                    self.ended = True
            self.drain()
        await trio.lowlevel.checkpoint()  # as a receive would: the readers run meanwhile
        if self.control:
            return self.control.popleft()
        if self.transcripts:
            self.taken += 1
            return self.transcripts.popleft()
        if self.ended:
            raise trio.EndOfChannel
        return None


@attrs.define
class _Detector:
    settings: CompletionSettings
    completed: trio.MemorySendChannel[TranscriptDocument]
    subscriptions: trio.MemorySendChannel[SubscriptionChange] | None
    dead_letters: DeadLetterStore
    stats: Statistics
    queue_names: dict[str, str]
    journal: Journal | None = None
    recovery: trio.MemorySendChannel[RecoveryRequest] | None = None
    live: LiveFeed | None = None
    #: Replicas share the input (``sqs.shared``): see :func:`detect_completion`.
    shared: bool = False
    service_now_ms: Callable[[], int] | None = None
    #: Shared: conversations whose rebuild was asked for since the last checkpoint.
    rebuilding: set[str] = attrs.field(factory=set)
    open: dict[str, ConversationState] = attrs.field(factory=dict)
    #: Closed within ``reopen_window_s``, oldest first.
    recent: OrderedDict[str, _Closed] = attrs.field(factory=OrderedDict)
    #: Finalized conversations, oldest first → whether this replica asked for their rebuild
    #: (shared input).
    finalized: OrderedDict[str, bool] = attrs.field(factory=OrderedDict)
    timers: list[tuple[float, str]] = attrs.field(factory=list)
    #: Control before data: the source's items (``None``: taken in order, no watermark).
    inbox: _Inbox | None = None
    #: Conversations shed under overload, until their re-open window ends.
    shed: set[str] = attrs.field(factory=set)
    #: Conversations due to close once :attr:`_Inbox.taken` reaches the value (the
    #: watermark), and the same as a heap of ``(value, conversation id)``.
    draining: dict[str, int] = attrs.field(factory=dict)
    drains: list[tuple[int, str]] = attrs.field(factory=list)
    #: End of the latest gap, epoch ms: a conversation that started before it missed input.
    gap_end_ms: int = 0

    def deadline_of(self, state: ConversationState) -> tuple[float, str]:
        candidates = [
            (state.last_event_at + self.settings.max_idle_s, "idle"),
            (state.first_event_at + self.settings.max_age_s, "max_age"),
        ]
        if state.ended_since is not None:
            candidates.append((state.ended_since + self.settings.grace_period_s, "ended"))
        elif (
            self.recovery is not None
            and state.participants_ended()
            and (state.gap_affected or not state.sessions)
        ):
            # Its live transcript has holes (or none came) and the post-call one will be
            # asked for, so the sessions' ends need not be waited for.
            candidates.append((state.last_event_at + self.settings.grace_period_s, "ended"))
        return min(candidates)

    def next_deadline(self) -> float:
        deadlines = [self.timers[0][0]] if self.timers else []
        if self.recent:
            deadlines.append(next(iter(self.recent.values())).at + self.settings.reopen_window_s)
        return min(deadlines, default=float("inf"))

    async def gap(self, gap: Gap) -> None:
        """The stream missed what Genesys sent during ``gap`` (still open, or over).

        Open conversations are marked: they go to recovery when they close. Those in
        their re-open window whose document came from the live stream go to recovery now
        (see :mod:`indexer.recovery`). Once the gap is over, recovery looks for
        conversations that ended unseen.
        """
        for conversation_id, state in self.open.items():
            state.gap_affected = True
            # Its deadline may be nearer now (one whose participants ended need not wait for
            # its sessions' ends any more): its timer must say so, or it waits for the idle one.
            heapq.heappush(self.timers, (self.deadline_of(state)[0], conversation_id))
        if gap.end_ms is not None:
            self.gap_end_ms = max(self.gap_end_ms, gap.end_ms)
        if self.recovery is None:
            return
        live = [closed for closed in self.recent.values() if not closed.state.has_holes()]
        if live:
            log.info("%d conversations closed from the live stream go to recovery after a gap", len(live))
            await self._whole([closed.state for closed in live])
        for closed in live:
            closed.state.gap_affected = True
            await self._send(closed.state, closed.reason)
        if gap.end_ms is not None:
            # Open conversations may have ended unseen during the gap; recovery rebuilds those.
            # The state left here idles out later and is written again with a version no
            # higher than the rebuilt document's, which the sink keeps (a 409). Those whose
            # end was seen close here soon, into recovery: they need no rebuild.
            ending = {c for c, state in self.open.items() if state.participants_ended()}
            request = FindMissed(
                gap.start_ms,
                gap.end_ms,
                known=frozenset(self.finalized) | ending,
                open=frozenset(self.open.keys() - ending),
                start_up=gap.start_up,
            )
            await self.recovery.send(request)

    async def handle(self, envelope: Envelope, *, record: bool = True) -> None:
        body = envelope.event_body
        if isinstance(body, ConversationEvent):
            conversation_id = body.id
        elif isinstance(body, TranscriptionMessage):
            conversation_id = body.conversation_id
        else:
            return
        if conversation_id in self.shed and isinstance(body, TranscriptionMessage):
            self.stats.transcripts_shed += 1  # its transcript comes from the post-call one
            return
        now = trio.current_time()
        if conversation_id in self.finalized and not await self._reopen(conversation_id, body):
            if await self._ended_after_close(conversation_id, body):
                return
            self.stats.late_messages += 1
            # Inside the re-open window the state shows nothing new was lost; after it, keep.
            if (
                isinstance(body, TranscriptionMessage)
                and body.transcripts
                and conversation_id not in self.recent
            ):
                await self.dead_letters.add(
                    "late_message",
                    "utterances arrived after the conversation was finalized",
                    dump_envelope(envelope),
                    conversation_id=conversation_id,
                )
            return
        state = self.open.get(conversation_id)
        if state is None:
            if len(self.open) >= self.settings.max_open_conversations:
                quietest = min(self.open.values(), key=lambda s: s.last_event_at)
                log.warning("%d conversations open: closing the quietest early", len(self.open))
                await self.finalize(quietest, "capacity")
            state = self.open[conversation_id] = ConversationState(
                conversation_id=conversation_id, first_event_at=now, last_event_at=now
            )
        if isinstance(body, ConversationEvent):
            state.apply_conversation(body, now)
            if self.shared and state.participants_ended() and not state.rebuild_asked:
                await self._rebuild(state)
        else:
            # Input restored from the journal (``record`` false) is as old as the downtime:
            # not how far the stream is behind.
            if record and self.service_now_ms is not None and body.event_time is not None:
                lag_s = self.service_now_ms() / 1000 - body.event_time.timestamp()
                self.stats.stream_lag.observe(max(0.0, lag_s))
            if state.utterance_count() >= self.settings.max_utterances and state.has_new_utterances(body):
                self.stats.limited_utterances += len(body.transcripts)
                await self.dead_letters.add(
                    "utterance_limit",
                    f"{self.settings.max_utterances} utterances kept (completion.max_utterances)",
                    dump_envelope(envelope),
                    conversation_id=conversation_id,
                )
                body = attrs.evolve(body, transcripts=())  # its status still counts
            if self.live is not None and self.live.wanted():
                self._offer_live(state, body)
            duplicates_before, unusable_before = state.duplicates, state.unusable_utterances
            self.stats.utterances += state.apply_transcription(body, now)
            self.stats.duplicate_utterances += state.duplicates - duplicates_before
            self.stats.unusable_utterances += state.unusable_utterances - unusable_before
        if self.journal is not None and record:  # once applied: a frame that fails is never replayed
            self.journal.record(conversation_id, frame_of(envelope))
        self.draining.pop(conversation_id, None)  # new input: the watermark is taken again when due
        if (
            self.subscriptions is not None
            and not state.subscribed
            and not state.is_digital()
            and conversation_id not in self.shed
        ):
            # Voice (or not yet known) only: a digital conversation never has a transcript.
            state.subscribed = True
            await self.subscriptions.send(SubscriptionChange("add", conversation_id))
        if not state.gap_affected and state.started_before(self.gap_end_ms):
            state.gap_affected = True  # first seen after a gap it overlapped: its start is missing
        heapq.heappush(self.timers, (self.deadline_of(state)[0], conversation_id))
        self.stats.open_conversations = len(self.open)

    async def accept(self, envelope: Envelope, *, record: bool = True) -> None:
        """:meth:`handle`, with a failure contained to the one frame: it is counted
        (``messages{kind="failed"}``), dead-lettered with the reason, and the rest goes on."""
        try:
            await self.handle(envelope, record=record)
        except Exception as exc:
            body = envelope.event_body
            conversation_id = getattr(body, "id", None) or getattr(body, "conversation_id", None)
            self.stats.messages["failed"] += 1
            log.error(
                "a frame of conversation %s could not be tracked (%s): dead-lettered",
                conversation_id,
                type(exc).__name__,
                extra={"conversation_id": conversation_id},
            )
            await self.dead_letters.add(
                "processing_failed",
                f"{type(exc).__name__} while tracking the frame",
                _frame_text(envelope),
                conversation_id=conversation_id,
            )

    async def _reopen(self, conversation_id: str, body: ConversationEvent | TranscriptionMessage) -> bool:
        """Re-open a recently closed conversation for a message with new utterances."""
        entry = self.recent.get(conversation_id)
        if (
            entry is None
            or not isinstance(body, TranscriptionMessage)
            or not entry.state.has_new_utterances(body)
        ):
            return False
        await self._whole([entry.state])
        del self.recent[conversation_id]
        del self.finalized[conversation_id]
        self.open[conversation_id] = entry.state
        self.stats.reopened += 1
        log.info(
            "conversation %s re-opened by a late utterance",
            conversation_id,
            extra={"conversation_id": conversation_id},
        )
        return True

    async def shed_conversation(self, conversation_id: str) -> None:
        """A transcription message of this conversation was not tracked: the backlog was
        full (see the module). It is followed no more (its topic is dropped, its next
        messages skipped) and completed from the post-call transcript by recovery."""
        self.stats.transcripts_shed += 1
        if conversation_id in self.shed:
            return
        closed = self.recent.get(conversation_id)
        state = closed.state if closed is not None else self.open.get(conversation_id)
        if state is None:
            if conversation_id in self.finalized:  # past its re-open window: a late message
                self.stats.late_messages += 1
                return
            now = trio.current_time()
            state = self.open[conversation_id] = ConversationState(conversation_id, now, now)
            self.stats.open_conversations = len(self.open)
        self.shed.add(conversation_id)
        self.stats.conversations_shed += 1
        log.info(
            "conversation %s shed: the transcript backlog is full (completion.max_transcript_backlog); "
            "it is completed from the post-call transcript",
            conversation_id,
            extra={"conversation_id": conversation_id},
        )
        if self.subscriptions is not None:
            await self.subscriptions.send(SubscriptionChange("remove", conversation_id))
        had_holes = state.has_holes()
        state.gap_affected = True
        if closed is not None and not had_holes:  # indexed from the stream: recovery completes it
            await self._whole([state])
            await self._send(state, closed.reason)
        elif closed is None:
            heapq.heappush(self.timers, (self.deadline_of(state)[0], conversation_id))

    def _awaits_transcripts(self, conversation_id: str) -> bool:
        """The watermark (see the module): transcription messages that had arrived when this
        conversation's close fell due still wait to be applied."""
        if self.inbox is None:
            return False
        target = self.draining.get(conversation_id)
        if target is None:
            waiting = self.inbox.drain()
            if not waiting:
                return False
            self.draining[conversation_id] = target = self.inbox.taken + waiting
            heapq.heappush(self.drains, (target, conversation_id))
        if self.inbox.taken < target:
            return True
        del self.draining[conversation_id]
        return False

    def watermark_moved(self) -> None:
        """Wake the conversations whose watermark :attr:`_Inbox.taken` has reached."""
        assert self.inbox is not None
        while self.drains and self.drains[0][0] <= self.inbox.taken:
            _, conversation_id = heapq.heappop(self.drains)
            if conversation_id in self.draining:
                heapq.heappush(self.timers, (trio.current_time(), conversation_id))

    async def close_due(self) -> None:
        now = trio.current_time()
        while self.timers and self.timers[0][0] <= now:
            _, conversation_id = heapq.heappop(self.timers)
            state = self.open.get(conversation_id)
            if state is None:
                continue
            deadline, reason = self.deadline_of(state)
            if deadline <= now and not self._awaits_transcripts(conversation_id):
                await self.finalize(state, reason)
        while self.recent:
            conversation_id, closed = next(iter(self.recent.items()))
            if closed.at + self.settings.reopen_window_s > now:
                break
            await self.forget(conversation_id)

    async def finalize(self, state: ConversationState, reason: str) -> None:
        del self.open[state.conversation_id]
        self.draining.pop(state.conversation_id, None)
        self.stats.open_conversations = len(self.open)
        self.finalized[state.conversation_id] = state.rebuild_asked
        while len(self.finalized) > FINALIZED_MEMORY:
            self.finalized.popitem(last=False)
        self.recent[state.conversation_id] = _Closed(state, trio.current_time(), reason)
        self.stats.completed[reason] += 1
        log.info(
            "conversation %s closed (%s, %d utterances)",
            state.conversation_id,
            reason,
            state.utterance_count(),
            extra={"conversation_id": state.conversation_id},
        )
        await self._send(state, reason)
        if self.journal is not None:  # the journal keeps its frames for the re-open window
            state.let_go()

    async def _whole(self, states: Sequence[ConversationState]) -> None:
        """Give closed conversations their utterances again (:meth:`ConversationState.let_go`),
        from the journal's frames, read once for all of them. One whose utterances are not
        all there (a journal that failed) is marked for recovery, which brings the post-call
        transcript."""
        slim = {state.conversation_id: state for state in states if state.slim}
        if not slim or self.journal is None:
            return
        await self.journal.flush()
        journal = self.journal

        def restore() -> list[str]:  # in a thread, off the event loop (the detector waits for it)
            incomplete = []
            for conversation_id, frames in journal.frames_by_conversation(slim.keys()).items():
                messages = []
                for frame in frames:
                    try:
                        body = parse_envelope(frame).event_body
                    except (MalformedMessage, UnusedTopic):
                        continue
                    if isinstance(body, TranscriptionMessage):
                        messages.append(body)
                if not slim[conversation_id].restore_utterances(messages):
                    incomplete.append(conversation_id)
            return incomplete

        for conversation_id in await trio.to_thread.run_sync(restore):
            slim[conversation_id].gap_affected = True
            log.warning(
                "conversation %s: utterances missing from the journal; it goes to recovery",
                conversation_id,
                extra={"conversation_id": conversation_id},
            )

    def _offer_live(self, state: ConversationState, body: TranscriptionMessage) -> None:
        """The new utterances of ``body``, unredacted, to the live view (which redacts them)."""
        assert self.live is not None
        for utterance in state.new_utterances(body):
            self.live.offer(
                LiveUtterance(
                    conversation_id=state.conversation_id,
                    sequence=0,
                    utterance_id=utterance.utterance_id,
                    speaker=utterance.speaker,
                    text=utterance.text,
                    media_type=state.media_type(),
                    queues=state.queue_labels(self.queue_names),
                    offset_ms=utterance.offset_ms,
                    spoken_at=utterance.spoken_at,
                )
            )

    async def _send(self, state: ConversationState, reason: str) -> None:
        """The document of ``state``, to recovery when its live transcript may have holes.

        A document that cannot be built is contained to its conversation: dead-lettered
        (``document_failed``) with the frames the journal holds for it.
        """
        if self.shared:
            await self._send_shared(state)
            return
        try:
            document = state.to_document(reason, self.queue_names)
        except Exception as exc:
            frames = (
                await trio.to_thread.run_sync(self.journal.frames_of, state.conversation_id)
                if self.journal
                else []
            )
            log.error(
                "conversation %s: no document (%s): dead-lettered",
                state.conversation_id,
                type(exc).__name__,
                extra={"conversation_id": state.conversation_id},
            )
            await self.dead_letters.add(
                "document_failed",
                f"{type(exc).__name__} while building the document",
                {"frames": frames},
                conversation_id=state.conversation_id,
            )
            return
        state.indexed_version = document.version
        holes = state.holes()
        if holes is not None and holes != "digital":
            self.stats.live_incomplete[holes] += 1
        if self.recovery is not None and holes is not None:
            await self.recovery.send(
                Reconcile(document=document, communication_ids=state.communication_ids())
            )
        else:
            await self.completed.send(document)

    async def _rebuild(self, state: ConversationState) -> None:
        """Shared input: the conversation ended (this replica saw it), so it is rebuilt from
        the Platform API now; the input that said so is safe once the document is stored."""
        state.rebuild_asked = True
        if self.recovery is not None:
            await self.recovery.send(Rebuild(state.conversation_id))
            self.rebuilding.add(state.conversation_id)

    async def _ended_after_close(
        self, conversation_id: str, body: ConversationEvent | TranscriptionMessage
    ) -> bool:
        """Shared input: a conversation event in which every participant has ended, for a
        conversation this replica closed with a part of it (idle) and did not rebuild. The
        replica that held the end message was lost, so the message came back here: this
        one rebuilds it. Whether it asked for the rebuild."""
        if not self.shared or not isinstance(body, ConversationEvent) or self.finalized[conversation_id]:
            return False
        seen = ConversationState(conversation_id=conversation_id, first_event_at=0, last_event_at=0)
        seen.apply_conversation(body, 0)
        if not seen.participants_ended():
            return False
        self.finalized[conversation_id] = True
        await self._rebuild(seen)
        return True

    async def _send_shared(self, state: ConversationState) -> None:
        """Replicas share the input: this one holds a part of the conversation at most. If
        it saw every participant end, the conversation is being rebuilt from the Platform
        API; otherwise the replica that sees the end does that, and this part goes."""
        if state.rebuild_asked:
            return
        if state.participants_ended():
            await self._rebuild(state)
        else:
            self.stats.left_to_other_replicas += 1

    async def forget(self, conversation_id: str) -> None:
        """End the re-open window: drop the state, its journal frames and its subscription."""
        closed = self.recent.pop(conversation_id)
        if self.journal is not None:
            self.journal.finalized(conversation_id)
        if conversation_id in self.shed:  # its topic was dropped then
            self.shed.discard(conversation_id)
        elif self.subscriptions is not None and closed.state.subscribed:
            await self.subscriptions.send(SubscriptionChange("remove", conversation_id))


def _frame_text(envelope: Envelope) -> str:
    """The frame as JSON for the dead-letter store (its topic alone when even that fails)."""
    try:
        return dump_envelope(envelope)
    except Exception:
        return json.dumps({"topicName": envelope.topic_name})


async def detect_completion(
    envelopes: trio.MemoryReceiveChannel[StreamItem],
    completed: trio.MemorySendChannel[TranscriptDocument],
    *,
    settings: CompletionSettings,
    dead_letters: DeadLetterStore,
    stats: Statistics,
    subscriptions: trio.MemorySendChannel[SubscriptionChange] | None = None,
    queue_names: dict[str, str] | None = None,
    end_reason: str = "stream_end",
    journal: Journal | None = None,
    restored: Sequence[Envelope] = (),
    recovery: trio.MemorySendChannel[RecoveryRequest] | None = None,
    live: LiveFeed | None = None,
    shared: bool = False,
    service_now_ms: Callable[[], int] | None = None,
    max_transcript_backlog: int | None = None,
) -> None:
    """Track conversations from ``envelopes`` and send each finished one to ``completed``.

    :param subscriptions: where to ask for transcription topics of new conversations and
        to drop finished ones; ``None`` when the source needs no subscriptions (replay).
    :param queue_names: queue id → name for documents.
    :param end_reason: completion reason for conversations still open when ``envelopes``
        closes and whose end signals had not all arrived.
    :param journal: where accepted input is recorded; with a journal, conversations still
        open at the end are left in it for the next run instead of being closed.
    :param restored: input of conversations left open by the previous run, applied first.
    :param live: where each new utterance is offered as it arrives (the live view).
    :param shared: other replicas receive parts of the same conversations (an SQS queue
        shared with no affinity, ``sqs.shared``): a conversation closed here is rebuilt
        from the Platform API (:class:`~indexer.recovery.Rebuild`) when this replica saw
        every participant end, and otherwise left to the replica that does; never indexed
        from a part.
    :param service_now_ms: the Genesys service's clock, epoch ms
        (:meth:`~indexer.genesys.GenesysClient.server_now_ms`): each transcription
        message's lag behind its ``eventTime`` goes to ``stats.stream_lag`` (``restored``
        input is not measured); ``None`` (replay): not measured.
    :param max_transcript_backlog: control before data (see the module), with at most this
        many transcription messages waiting (``completion.max_transcript_backlog``);
        ``None``: everything in order (replays, the SQS source).
    :param recovery: where conversations with holes in their live transcript, and
        requests to find conversations missed in a :class:`~indexer.recovery.Gap`, go
        (closed on return); ``None`` sends everything to ``completed`` as it is.

    Resources: closes ``completed`` and ``subscriptions`` when it returns, which is when
    ``envelopes`` is closed and every open conversation has been sent.
    """
    detector = _Detector(
        settings=settings,
        completed=completed,
        subscriptions=subscriptions,
        dead_letters=dead_letters,
        stats=stats,
        queue_names=queue_names or {},
        journal=journal,
        recovery=recovery,
        live=live,
        shared=shared,
        service_now_ms=service_now_ms,
    )
    inbox = _Inbox(envelopes, max_transcript_backlog, stats)
    if max_transcript_backlog is not None:
        detector.inbox = inbox
    if journal is not None:
        detector.finalized.update(dict.fromkeys(journal.finalized_ids[-FINALIZED_MEMORY:], False))
    async with completed, envelopes, trio.open_nursery() as nursery:
        if journal is not None:
            nursery.start_soon(journal.run)
        try:
            for envelope in restored:
                await detector.accept(envelope, record=False)  # already in the journal
            if restored:
                log.info("resumed %d open conversations from the journal", len(detector.open))
                stats.restored += len(detector.open)
            while True:
                try:  # the wait only: an item taken is applied whole, whatever falls due meanwhile
                    item = await inbox.next(detector.next_deadline())
                except trio.EndOfChannel:
                    break
                if isinstance(item, _Shed):
                    await detector.shed_conversation(item.conversation_id)
                elif isinstance(item, Gap):
                    await detector.gap(item)
                elif isinstance(item, Checkpoint):
                    if journal is not None:
                        await journal.flush()
                    item.rebuilding.update(detector.rebuilding)
                    detector.rebuilding.clear()
                    item.reached.set()
                elif item is not None:
                    await detector.accept(item)
                if detector.inbox is not None:
                    detector.watermark_moved()
                await detector.close_due()
            if subscriptions is not None:
                await subscriptions.aclose()  # nothing to unsubscribe once the stream is over
            detector.subscriptions = None
            for state in list(detector.open.values()):
                if state.ended():
                    await detector.finalize(state, "ended")
                elif journal is None:
                    await detector.finalize(state, end_reason)
            for conversation_id in list(detector.recent):
                await detector.forget(conversation_id)
            if journal is not None and detector.open:
                log.info("%d open conversations kept in the journal for the next start", len(detector.open))
        finally:
            if subscriptions is not None:
                await subscriptions.aclose()
            if recovery is not None:
                await recovery.aclose()
            nursery.cancel_scope.cancel()  # the journal's last flush runs shielded
