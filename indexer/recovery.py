"""Gap recovery: transcripts the live stream could not deliver, from the REST API.

The WebSocket has no durability: what Genesys publishes while the socket is down, or
before it first opens, is gone (reference §3.8, §8 items 1 and 5). A socket can also die
without a close: only the watchdog notices, ``stream.heartbeat_timeout_s`` after its last
frame (§3.6), and everything since that frame is gone. The reader puts a :class:`Gap`
into the stream as soon as it notices a lost socket (still open, from the socket's last
frame) and again, whole, when a socket is live again; the detector then

- sends every conversation whose live transcript may have holes here instead of to
  redaction (:class:`Reconcile`): its utterances are replaced by the post-call
  transcript. These are the conversations open during a gap, those closed by a timer
  before all their sessions ended, and, at each gap, those closed within the re-open
  window whose document came from the live stream: a trailing utterance the grace period
  did not wait for while the socket was silently dead, or a late one that would have
  re-opened them, may be gone (they are indexed again, at a higher version);
- once the gap is over, asks for conversations that ended unseen (:class:`FindMissed`):
  the analytics query (``POST /api/v2/analytics/conversations/details/query``) lists the
  ended conversations of the followed queues that started in the gap or since the start
  of an earlier gap that ended within ``lookback_s`` (at most ``lookback_s`` back: a
  conversation still going on at the earlier gap's query, whose later events all fell in
  this one, was never seen, and the query selects by start), leaving out those rebuilt
  already; ``GET /api/v2/analytics/conversations/{id}/details`` tells which
  conversations open at the gap have ended, and each is rebuilt from
  ``GET /api/v2/conversations/{id}`` and its post-call transcript.

The post-call transcript (``transcripturl``, reference §6.1-6.2) is authoritative but not
ready at hang-up; it is asked for again every ``post_call_retry_s`` for up to
``post_call_wait_s``. Documents rebuilt from it carry ``source: "post_call"``; when none
comes, the live document goes on unchanged (``source: "live"``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import trio

from indexer.config import RecoverySettings
from indexer.digital import fetch_messages
from indexer.document import DocUtterance, DocWord, TranscriptDocument
from indexer.errors import AuthenticationError, MalformedMessage
from indexer.files import replace_synced
from indexer.genesys import API_ERRORS, GenesysClient
from indexer.models import AnalyticsConversation, ConversationEvent, PhraseWord, PostCallTranscript
from indexer.redaction import join_text
from indexer.serialization import format_time, structure
from indexer.stats import Statistics
from indexer.tracker import DIGITAL_MEDIA, ConversationState

__all__ = [
    "FindMissed",
    "Gap",
    "Rebuild",
    "Reconcile",
    "RecoveryRequest",
    "recover_transcripts",
    "utterances_from_post_call",
]

log = logging.getLogger(__name__)

#: Platform API requests recovery makes at once (a conversation waiting for its
#: post-call transcript between two requests holds no place).
CONCURRENCY: Final = 8
#: How many rebuilt conversation ids are remembered, not to rebuild them again.
REBUILT_MEMORY: Final = 100_000
#: How much later (ms) than an indexed document's end analytics may put the conversation's
#: end and it still counts as that document's conversation (clocks and rounding differ).
END_TOLERANCE_MS: Final = 5_000
#: Longest wait (s) between two tries of a recovery request.
RETRY_MAX_S: Final = 300.0
_T = TypeVar("_T")
_A = TypeVar("_A")
_SPEAKERS = {"internal": "agent", "external": "customer"}


@attrs.frozen
class Gap:
    """A period without a live socket, in epoch ms (the service's clock).

    :ivar end_ms: ``None`` while the gap is still open: the reader reports a lost socket at
        once, then the whole gap when a socket is live again.
    """

    start_ms: int
    end_ms: int | None
    #: The look-back at start-up, not a lost socket.
    start_up: bool = False


@attrs.frozen
class FindMissed:
    """Find what ended unseen during a gap that is over (epoch ms, the service's clock).

    :ivar known: conversations not to rebuild: finished, or closing into recovery soon.
    :ivar open: conversations still open, their end not seen: any that ended during the
        gap is rebuilt (the analytics query selects by start, so it cannot find them).
    """

    start_ms: int
    end_ms: int
    known: frozenset[str]
    open: frozenset[str] = frozenset()
    #: The gap is the look-back at start-up (for the log line).
    start_up: bool = False


@attrs.frozen
class Reconcile:
    """Replace the utterances of ``document`` by the post-call transcript when there is one.

    A digital conversation's ``document`` (``media_type`` ``message``, ``chat``,
    ``email``) has no utterances yet: its messages are fetched (:mod:`indexer.digital`).

    :ivar communication_ids: communications to ask ``transcripturl`` for, likeliest first.
    """

    document: TranscriptDocument
    communication_ids: tuple[str, ...]


@attrs.frozen
class Rebuild:
    """Build the document of a conversation that ended from the Platform API alone:
    ``GET /api/v2/conversations/{id}`` and its post-call transcripts (voice) or messages
    (digital). Replicas sharing an SQS queue each see a part of a conversation; the one
    that sees it end asks for this (``sqs.shared``)."""

    conversation_id: str


RecoveryRequest = FindMissed | Reconcile | Rebuild


@attrs.frozen
class FollowUp:
    """A voice conversation indexed ``complete: false`` because its post-call transcript had
    not come within ``post_call_wait_s``: asked for again on a schedule that reaches hours.

    Kept in ``<state_dir>/post-call-follow-ups.json`` (ids and times only, no content), so
    the schedule survives restarts.

    :ivar version: the version of the incomplete document; the replacement is higher.
    :ivar first_ask_ms: when the transcript was first asked for, epoch ms (wall clock).
    """

    conversation_id: str
    communication_ids: tuple[str, ...]
    version: int
    first_ask_ms: int


def _ms_to_time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def utterances_from_post_call(transcript: PostCallTranscript) -> list[DocUtterance]:
    """The utterances of a post-call transcript (reference §6.2), in spoken order.

    Utterance ids are ``<communicationId>:<transcriptId>:<phraseIndex>`` (phrases have no
    ``utteranceId``); ``offset_ms`` counts from ``conversationStartTime``. Phrases without
    text are left out.
    """
    start = transcript.conversation_start_time or 0
    communication_id = transcript.communication_id or ""
    utterances = []
    for part in transcript.transcripts:
        for index, phrase in enumerate(part.phrases):
            raw = phrase.text or ""
            text = phrase.decorated_text or raw
            if not text.strip():
                continue
            begin = phrase.start_time_ms or start
            words = phrase.words or tuple(PhraseWord(word=w) for w in raw.split())
            number = phrase.phrase_index if phrase.phrase_index is not None else index
            utterances.append(
                DocUtterance(
                    utterance_id=f"{communication_id}:{part.transcript_id or ''}:{number}",
                    communication_id=communication_id,
                    speaker=_SPEAKERS.get((phrase.participant_purpose or "").lower(), "unknown"),
                    text=text,
                    offset_ms=begin - start if start else 0,
                    duration_ms=(phrase.duration.milliseconds or 0) if phrase.duration else 0,
                    confidence=phrase.confidence,
                    spoken_at=_ms_to_time(begin),
                    words=tuple(
                        DocWord(word=w.word or "", offset_ms=None, duration_ms=None, confidence=w.confidence)
                        for w in words
                    ),
                )
            )
    return sorted(utterances, key=lambda u: (u.spoken_at or datetime.min.replace(tzinfo=UTC), u.utterance_id))


def _rest_state(conversation_id: str, conversation: Any) -> ConversationState:
    """The state of a conversation from ``GET /api/v2/conversations/{id}`` (``None``: unknown
    to REST, the conversation id alone).

    :raises MalformedMessage: the answer is not a conversation.
    """
    event = structure(conversation or {"id": conversation_id}, ConversationEvent, what="conversation")
    state = ConversationState(conversation_id=conversation_id, first_event_at=0.0, last_event_at=0.0)
    state.apply_conversation(event, 0.0)
    return state


def _with_messages(document: TranscriptDocument, utterances: Sequence[DocUtterance]) -> TranscriptDocument:
    return attrs.evolve(
        document,
        utterances=tuple(utterances),
        text=join_text(utterances),
        source="api",
        complete=document.completion_reason == "ended",
    )


def _with_post_call(
    document: TranscriptDocument, transcripts: Sequence[PostCallTranscript]
) -> TranscriptDocument:
    utterances = [u for t in transcripts for u in utterances_from_post_call(t)]
    utterances.sort(key=lambda u: (u.spoken_at or datetime.min.replace(tzinfo=UTC), u.utterance_id))
    language = document.language or next(
        (p.language for t in transcripts for p in t.transcripts if p.language), None
    )
    return attrs.evolve(
        document,
        utterances=tuple(utterances),
        text=join_text(utterances),
        source="post_call",
        language=language,
        complete=bool(utterances),  # the whole call, whatever closed the live state (§6.1)
    )


@attrs.define
class _Recovery:
    client: GenesysClient
    documents: trio.MemorySendChannel[TranscriptDocument]
    settings: RecoverySettings
    stats: Statistics
    queue_names: dict[str, str]
    stopping: trio.Event = attrs.field(factory=trio.Event)
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(CONCURRENCY))
    #: (start, end) of the gaps queried so far, epoch ms; dropped ``lookback_s`` after their end.
    gaps: list[tuple[int, int]] = attrs.field(factory=list)
    #: Conversations rebuilt so far (a later, wider query finds them again), oldest first.
    rebuilt: OrderedDict[str, None] = attrs.field(factory=OrderedDict)
    #: Where the follow-ups are kept (``None``: in memory only).
    follow_ups_path: Path | None = None
    #: Conversations indexed before this run started: id → ``ended_at`` (epoch ms) of the
    #: document (:meth:`indexer.outbox.Outbox.indexed`); not rebuilt unless they ended later.
    indexed: dict[str, int | None] = attrs.field(factory=dict)
    follow_ups: dict[str, FollowUp] = attrs.field(factory=dict)
    nursery: trio.Nursery | None = None

    async def transcripts(
        self, conversation_id: str, communication_ids: Sequence[str]
    ) -> list[PostCallTranscript]:
        """The post-call transcripts ready now; an error on one communication (anything but
        404, which means not ready) is logged and the others are still asked for."""
        found = []
        for communication_id in dict.fromkeys(communication_ids):
            try:
                transcript = await self.client.post_call_transcript(conversation_id, communication_id)
            except AuthenticationError:
                raise
            except API_ERRORS as exc:
                log.warning(
                    "post-call transcript of %s, communication %s: %s",
                    conversation_id,
                    communication_id,
                    getattr(exc, "status", None) or type(exc).__name__,
                    extra={"conversation_id": conversation_id},
                )
                continue
            if transcript is not None:
                found.append(transcript)
        return found

    async def _until_ready(self, fetch: Callable[[], Awaitable[list[_T]]]) -> list[_T]:
        """``fetch()`` every ``post_call_retry_s`` until it finds something, for at most
        ``post_call_wait_s`` (or until stopping); what it found last."""
        deadline = trio.current_time() + self.settings.post_call_wait_s
        while True:
            async with self.limiter:  # per request: waiting holds no place (transcripts take minutes)
                found = await fetch()
            if found or trio.current_time() >= deadline or self.stopping.is_set():
                return found
            with trio.move_on_after(self.settings.post_call_retry_s):
                await self.stopping.wait()

    async def post_call(
        self, conversation_id: str, communication_ids: Sequence[str]
    ) -> list[PostCallTranscript]:
        """Every post-call transcript found, waiting while none is ready (until stopping)."""
        if not communication_ids:
            return []
        return await self._until_ready(lambda: self.transcripts(conversation_id, communication_ids))

    async def messages(self, document: TranscriptDocument) -> list[DocUtterance]:
        """A digital conversation's messages, waiting while none can be had (until stopping)."""

        async def fetch() -> list[DocUtterance]:
            found = await fetch_messages(
                self.client,
                document.conversation_id,
                document.media_type,
                document.started_at,
                inbound=document.direction != "outbound",
            )
            return found or []

        return await self._until_ready(fetch)

    async def contained(
        self, conversation_id: str | None, work: Callable[[_A], Awaitable[None]], argument: _A
    ) -> None:
        """``await work(argument)``; a failure other than the REST errors handled inside is
        contained to it (logged, counted ``recovered{outcome="failed"}``), never the worker's end."""
        try:
            await work(argument)
        except AuthenticationError:
            raise
        except Exception as exc:
            self.stats.recovered["failed"] += 1
            log.error(
                "recovery of %s failed (%s)",
                conversation_id or "a gap",
                type(exc).__name__,
                extra={"conversation_id": conversation_id},
            )

    async def reconcile_contained(self, request: Reconcile) -> None:
        """:meth:`reconcile`; if it fails, the document goes on as it is, ``complete: false``."""
        try:
            await self.reconcile(request)
        except AuthenticationError:
            raise
        except Exception as exc:
            self.stats.recovered["failed"] += 1
            conversation_id = request.document.conversation_id
            log.error(
                "recovery of %s failed (%s): indexed as the stream had it",
                conversation_id,
                type(exc).__name__,
                extra={"conversation_id": conversation_id},
            )
            await self.documents.send(attrs.evolve(request.document, complete=False))

    async def reconcile(self, request: Reconcile) -> None:
        document = request.document
        if document.media_type in DIGITAL_MEDIA:
            await self.reconcile_digital(document)
            return
        try:
            transcripts = await self.post_call(document.conversation_id, request.communication_ids)
        except API_ERRORS as exc:
            status = getattr(exc, "status", None)
            log.warning(
                "post-call transcript of %s unavailable (%s)",
                document.conversation_id,
                status,
                extra={"conversation_id": document.conversation_id},
            )
            transcripts = []
        if transcripts:
            document = _with_post_call(document, transcripts)
            self.stats.recovered["reconciled"] += 1
        else:
            document = attrs.evolve(document, complete=False)  # the live transcript has holes
            self.stats.recovered["unavailable"] += 1
            self.follow_up(document, request.communication_ids)
        await self.documents.send(document)

    # --- follow-ups: post-call transcripts that take hours --------------------------------

    def follow_up(self, document: TranscriptDocument, communication_ids: Sequence[str]) -> None:
        """Ask again later for the post-call transcript of ``document`` (indexed incomplete)."""
        if self.settings.post_call_follow_up_s <= 0 or not communication_ids or self.nursery is None:
            return
        entry = FollowUp(
            conversation_id=document.conversation_id,
            communication_ids=tuple(communication_ids),
            version=document.version,
            first_ask_ms=int(time.time() * 1000),
        )
        self.follow_ups[entry.conversation_id] = entry
        self._save_follow_ups()
        self.stats.recovered["follow_ups"] += 1
        self.nursery.start_soon(self.contained, entry.conversation_id, self._follow, entry)

    def _save_follow_ups(self) -> None:
        if self.follow_ups_path is not None:
            data = [attrs.asdict(entry) for entry in self.follow_ups.values()]
            replace_synced(self.follow_ups_path, json.dumps(data).encode())

    def load_follow_ups(self) -> None:
        """Resume the follow-ups of the previous run (an unreadable file is logged and dropped)."""
        if self.follow_ups_path is None or not self.follow_ups_path.exists() or self.nursery is None:
            return
        try:
            entries = [
                FollowUp(
                    conversation_id=str(e["conversation_id"]),
                    communication_ids=tuple(str(c) for c in e["communication_ids"]),
                    version=int(e["version"]),
                    first_ask_ms=int(e["first_ask_ms"]),
                )
                for e in json.loads(self.follow_ups_path.read_text(encoding="utf-8"))
            ]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s unreadable (%s): its follow-ups are dropped", self.follow_ups_path, exc)
            return
        for entry in entries:
            self.follow_ups[entry.conversation_id] = entry
            self.nursery.start_soon(self.contained, entry.conversation_id, self._follow, entry)
        if entries:
            log.info("resumed %d post-call transcript follow-ups", len(entries))

    async def _follow(self, entry: FollowUp) -> None:
        """Ask on a doubling schedule until the transcript comes or ``post_call_follow_up_s``."""
        delay = max(self.settings.post_call_wait_s, self.settings.post_call_retry_s, 1.0)
        give_up_ms = entry.first_ask_ms + int(self.settings.post_call_follow_up_s * 1000)
        while True:
            with trio.move_on_after(delay):
                await self.stopping.wait()
            if self.stopping.is_set():
                return  # kept in the file for the next start
            if self.follow_ups.get(entry.conversation_id) is not entry:
                return  # superseded by a later follow-up of the same conversation
            delay = min(delay * 2, self.settings.post_call_follow_up_max_interval_s)
            async with self.limiter:
                found = await self.transcripts(entry.conversation_id, entry.communication_ids)
                if found:
                    await self._replace(entry, found)
                    break
            if time.time() * 1000 >= give_up_ms:
                log.warning(
                    "no post-call transcript for %s after %.0f s: its document stays incomplete",
                    entry.conversation_id,
                    self.settings.post_call_follow_up_s,
                    extra={"conversation_id": entry.conversation_id},
                )
                self.stats.recovered["follow_ups_given_up"] += 1
                break
        if self.follow_ups.get(entry.conversation_id) is entry:
            del self.follow_ups[entry.conversation_id]
            self._save_follow_ups()

    async def _replace(self, entry: FollowUp, transcripts: list[PostCallTranscript]) -> None:
        """The whole document from the REST conversation and the late transcript, at a higher version."""
        try:
            state = _rest_state(entry.conversation_id, await self.client.conversation(entry.conversation_id))
        except (*API_ERRORS, MalformedMessage) as exc:
            log.warning(
                "conversation %s: %s; indexed from its transcript alone",
                entry.conversation_id,
                exc,
                extra={"conversation_id": entry.conversation_id},
            )
            state = _rest_state(entry.conversation_id, None)
        state.indexed_version = entry.version
        document = _with_post_call(state.to_document("ended", self.queue_names), transcripts)
        self.stats.recovered["follow_ups_reconciled"] += 1
        log.info("post-call transcript of %s came late: document replaced", entry.conversation_id)
        await self.documents.send(document)

    async def reconcile_digital(self, document: TranscriptDocument) -> None:
        try:
            utterances = await self.messages(document)
        except API_ERRORS as exc:
            log.warning(
                "messages of %s unavailable (%s)",
                document.conversation_id,
                getattr(exc, "status", None),
                extra={"conversation_id": document.conversation_id},
            )
            utterances = []
        if utterances:
            self.stats.recovered["messages"] += 1
            await self.documents.send(_with_messages(document, utterances))
        else:
            self.stats.recovered["unavailable"] += 1
            await self.documents.send(attrs.evolve(document, complete=False))

    async def _retrying(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
        """``call()``, tried again with backoff after REST failures until it answers.

        :returns: ``None`` when the worker stops first, or when the request itself is refused
            (400/403: a permission or setting to fix, logged as an error).
        """
        delay = self.settings.post_call_retry_s
        while True:
            try:
                return await call()
            except API_ERRORS as exc:
                status = getattr(exc, "status", None)
                if status in (400, 403):
                    log.error(
                        "%s refused (%s): grant the permissions the README lists, "
                        "or set recovery.enabled = false",
                        what,
                        status,
                    )
                    return None
                log.warning("%s failed (%s); retrying in %.0f s", what, status, delay)
            with trio.move_on_after(delay):
                await self.stopping.wait()
            if self.stopping.is_set():
                return None
            delay = min(delay * 2, RETRY_MAX_S)

    async def find_missed(self, request: FindMissed) -> None:
        oldest = request.end_ms - int(self.settings.lookback_s * 1000)
        self.gaps = [gap for gap in self.gaps if gap[1] >= oldest]  # earlier gaps, ended recently
        start_ms = min([request.start_ms, *(max(start, oldest) for start, _ in self.gaps)])
        self.gaps.append((request.start_ms, request.end_ms))
        start = format_time(datetime.fromtimestamp(start_ms / 1000, UTC))
        end = format_time(datetime.fromtimestamp(request.end_ms / 1000, UTC))
        found = await self._retrying(
            "gap recovery query", lambda: self.client.ended_conversations(start, end, list(self.queue_names))
        )
        if found is None:
            self.stats.recovered["gap_unrecovered"] += 1
            return
        skip = request.known | request.open | self.rebuilt.keys()
        missed = [c for c in found if c.conversation_id not in skip and not self._indexed_already(c)]
        for conversation_id in request.open:
            try:
                details = await self.client.conversation_details(conversation_id)
            except API_ERRORS:  # its live state idles out and is reconciled then
                continue
            if (
                details is not None
                and details.conversation_end is not None
                and not self._indexed_already(details)
            ):
                missed.append(details)
        log.info(
            "%s from %s to %s (%d s): asked for conversations that ended from %s (%d s back), "
            "%d found, %d to recover; the rest were seen live or indexed already",
            "start-up look-back (recovery.lookback_s)" if request.start_up else "no live socket",
            format_time(datetime.fromtimestamp(request.start_ms / 1000, UTC)),
            format_time(datetime.fromtimestamp(request.end_ms / 1000, UTC)),
            (request.end_ms - request.start_ms) // 1000,
            start,
            (request.end_ms - start_ms) // 1000,
            len(found),
            len(missed),
        )
        async with trio.open_nursery() as nursery:
            for summary in missed:
                nursery.start_soon(self.contained, summary.conversation_id, self.rebuild, summary)

    def _indexed_already(self, summary: AnalyticsConversation) -> bool:
        """A document of this conversation was indexed before this run, and the
        conversation did not go on after it (its end is no later than the document's,
        give or take :data:`END_TOLERANCE_MS`)."""
        ended = self.indexed.get(summary.conversation_id)
        if ended is None or summary.conversation_end is None:
            return False
        return summary.conversation_end.timestamp() * 1000 <= ended + END_TOLERANCE_MS

    async def rebuild(self, summary: AnalyticsConversation, outcome: str = "missed") -> None:
        """The conversation of ``summary`` from the Platform API, to ``documents``;
        counted ``recovered{outcome}`` (``missed``: found by a gap's query)."""
        conversation_id = summary.conversation_id
        self.rebuilt[conversation_id] = None
        while len(self.rebuilt) > REBUILT_MEMORY:
            self.rebuilt.popitem(last=False)
        sessions = summary.voice_sessions()

        async def fetch() -> Any:
            async with self.limiter:
                # A conversation REST no longer knows is rebuilt from its transcripts alone.
                return await self.client.conversation(conversation_id) or {"id": conversation_id}

        conversation = await self._retrying(f"recovery of conversation {conversation_id}", fetch)
        if conversation is None:
            self.stats.recovered["failed"] += 1
            return
        try:
            state = _rest_state(conversation_id, conversation)
        except MalformedMessage as exc:
            log.warning(
                "conversation %s could not be recovered: %s",
                conversation_id,
                exc.reason,
                extra={"conversation_id": conversation_id},
            )
            self.stats.recovered["failed"] += 1
            return
        document = state.to_document("ended", self.queue_names)
        if state.is_digital():
            await self.reconcile_digital(document)
            return

        transcripts = await self._retrying(
            f"recovery of conversation {conversation_id}",
            lambda: self.post_call(conversation_id, sessions or state.communication_ids()),
        )
        document = _with_post_call(document, transcripts or [])
        if not transcripts:
            self.follow_up(document, sessions or state.communication_ids())
        self.stats.recovered[outcome] += 1  # before the document can reach a sink (and a reader)
        await self.documents.send(document)


async def recover_transcripts(
    client: GenesysClient,
    requests: trio.MemoryReceiveChannel[RecoveryRequest],
    documents: trio.MemorySendChannel[TranscriptDocument],
    *,
    settings: RecoverySettings,
    stats: Statistics,
    queue_names: dict[str, str],
    follow_ups_path: Path | None = None,
    indexed: dict[str, int | None] | None = None,
) -> None:
    """Serve recovery requests until ``requests`` closes; see the module docstring.

    :param follow_ups_path: where :class:`FollowUp` entries are kept across restarts.
    :param indexed: conversations indexed before this run (id → ``ended_at``, epoch ms):
        gap recovery does not rebuild them (:meth:`indexer.outbox.Outbox.indexed`).

    Resources: when ``requests`` closes, waits for post-call transcripts stop, every
    request still in hand sends what it has, and ``documents`` is closed.
    """
    recovery = _Recovery(
        client,
        documents,
        settings,
        stats,
        queue_names,
        follow_ups_path=follow_ups_path,
        indexed=indexed or {},
    )
    async with documents, trio.open_nursery() as nursery:
        recovery.nursery = nursery
        recovery.load_follow_ups()
        async with requests:
            async for request in requests:
                if isinstance(request, Reconcile):
                    nursery.start_soon(recovery.reconcile_contained, request)
                elif isinstance(request, Rebuild):
                    summary = AnalyticsConversation(conversation_id=request.conversation_id)
                    rebuild = functools.partial(recovery.rebuild, outcome="rebuilt")
                    nursery.start_soon(recovery.contained, request.conversation_id, rebuild, summary)
                else:
                    nursery.start_soon(recovery.contained, None, recovery.find_missed, request)
        recovery.stopping.set()
