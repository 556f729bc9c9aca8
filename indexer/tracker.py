"""Per-conversation state built from notifications, and the document it becomes.

One :class:`ConversationState` per ``conversationId`` holds participants (merged across
snapshots; once ended, a participant stays ended, because event order is not guaranteed,
reference §3.8) and transcription sessions, one per ``communicationId``, with utterances
deduplicated by ``utteranceId`` (reference §4.5).
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

import attrs

from indexer.document import (
    MAX_PARTICIPANTS,
    DocParticipant,
    DocUtterance,
    DocWord,
    QueueRef,
    TranscriptDocument,
)
from indexer.models import (
    ConversationEvent,
    TranscriptAlternative,
    TranscriptionMessage,
    TranscriptResult,
)
from indexer.redaction import join_text

__all__ = [
    "DIGITAL_MEDIA",
    "ConversationState",
    "KeptUtterance",
    "SessionState",
    "speaker_of",
    "utterance_key",
    "utterance_text",
]

_ENDED_CALL_STATES = frozenset({"disconnected", "terminated"})
#: Media types whose text comes from the Platform API once the conversation ends.
DIGITAL_MEDIA = frozenset({"message", "email", "chat"})
#: A status-only message this close to the session start (ms) is the session's opening one.
SESSION_START_MS = 10_000
_SPEAKERS = {"INTERNAL": "agent", "EXTERNAL": "customer"}
#: Typecodes of :attr:`KeptUtterance.word_ms`, narrowest first, and the least value of
#: each, which stands for an absent one.
_MS_TYPECODES: Final = (("i", -(2**31)), ("q", -(2**63)))


def _pack_ms(values: list[int | None]) -> array[int]:
    """``values`` in the narrowest array that holds them, ``None`` as its least value."""
    for typecode, absent in _MS_TYPECODES:
        if all(v is None or absent < v <= -absent - 1 for v in values):
            return array(typecode, [absent if v is None else v for v in values])
    raise ValueError("an offset out of range")  # the models' validators keep them within ±30 days


@attrs.frozen
class KeptUtterance:
    """What the tracker keeps of one utterance (a ``TranscriptResult``'s first alternative):
    what its document needs, the words packed in columns. An open conversation is held
    whole until it ends; as objects, its words took about 300 bytes each, packed about 25.

    :ivar words: each word's text (interned: words repeat across conversations).
    :ivar word_ms: each word's offset from the session start and duration, ms, in turn
        (the least value of the array's type: absent).
    :ivar word_confidences: 0 to 1 (NaN: absent).
    """

    channel: str | None
    is_final: bool | None
    text: str
    offset_ms: int | None
    duration_ms: int | None
    confidence: float | None
    words: tuple[str, ...]
    word_ms: array[int]
    word_confidences: array[float]

    @classmethod
    def of(cls, result: TranscriptResult) -> KeptUtterance:
        """``result`` (with at least one alternative) as kept."""
        alt = result.alternatives[0]
        offset_ms = alt.offset_ms
        if offset_ms is None:
            offset_ms = next((w.offset_ms for w in alt.words if w.offset_ms is not None), None)
        return cls(
            channel=result.channel,
            is_final=result.is_final,
            text=utterance_text(alt),
            offset_ms=offset_ms,
            duration_ms=alt.duration_ms,
            confidence=alt.confidence,
            words=tuple(sys.intern(w.word) for w in alt.words),
            word_ms=_pack_ms([ms for w in alt.words for ms in (w.offset_ms, w.duration_ms)]),
            word_confidences=array(
                "d", [math.nan if w.confidence is None else w.confidence for w in alt.words]
            ),
        )

    def doc_words(self) -> tuple[DocWord, ...]:
        """The words as the document holds them."""
        absent = -(2 ** (self.word_ms.itemsize * 8 - 1))
        ms = [None if value == absent else value for value in self.word_ms]
        return tuple(
            DocWord(
                word=word,
                offset_ms=ms[2 * i],
                duration_ms=ms[2 * i + 1],
                confidence=None if math.isnan(confidence) else confidence,
            )
            for i, (word, confidence) in enumerate(zip(self.words, self.word_confidences, strict=True))
        )


#: What :meth:`ConversationState.let_go` keeps for each utterance: its key only.
_LET_GO: Final = KeptUtterance(None, None, "", None, None, None, (), array("b"), array("d"))


def speaker_of(channel: str | None) -> str:
    """``agent`` for INTERNAL, ``customer`` for EXTERNAL, else ``unknown`` (reference §4.3)."""
    return _SPEAKERS.get((channel or "").upper(), "unknown")


def utterance_text(alternative: TranscriptAlternative) -> str:
    """The text of an alternative: decorated, else raw, else its words joined ("" if none)."""
    if alternative.decorated_transcript:
        return alternative.decorated_transcript
    if alternative.transcript:
        return alternative.transcript
    words = alternative.decorated_words or alternative.words
    return " ".join(w.word for w in words if w.word)


def utterance_key(result: TranscriptResult) -> str:
    """``utteranceId``, or (when the SDK-optional id is absent) one derived from the first
    alternative's offset and text, so that a repeated message is still recognised."""
    if result.utterance_id:
        return result.utterance_id
    alternative = result.alternatives[0] if result.alternatives else TranscriptAlternative()
    digest = hashlib.sha256(utterance_text(alternative).encode()).hexdigest()[:16]
    return f"derived:{alternative.offset_ms}:{result.channel}:{digest}"


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else 0


@attrs.define
class SessionState:
    """One transcription session (one ``communicationId``).

    :ivar saw_start: the status-only ``SESSION_ONGOING`` message that opens every session
        (reference §4.2) arrived; without it the worker joined late and may lack utterances.
    :ivar utterances: utterance key (:func:`utterance_key`) → what is kept of it, in
        arrival order (the order kept for utterances without ``offsetMs``).
    """

    communication_id: str
    session_start_ms: int | None = None
    ended: bool = False
    saw_start: bool = False
    utterances: dict[str, KeptUtterance] = attrs.field(factory=dict)


@attrs.define
class ParticipantState:
    """A participant merged over every snapshot seen."""

    participant_id: str
    purpose: str | None = None
    user_id: str | None = None
    queue_id: str | None = None
    queue_name: str | None = None
    direction: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ended: bool = False
    call_ids: list[str] = attrs.field(factory=list)
    #: Media types of its communications (``voice``, ``message`` …), first seen first.
    media: list[str] = attrs.field(factory=list)
    message_type: str | None = None


@attrs.define
class ConversationState:
    """What is known about one conversation so far.

    :ivar first_event_at: trio clock time of the first event, in s.
    :ivar last_event_at: trio clock time of the latest event, in s.
    :ivar ended_since: trio clock time at which :meth:`ended` first held, or ``None``.
    :ivar version_ms: the newest event time seen, epoch ms (the document's version).
    :ivar indexed_version: the version of the last document made from this state; a
        re-opened conversation's next document is always higher.
    """

    conversation_id: str
    first_event_at: float
    last_event_at: float
    participants: dict[str, ParticipantState] = attrs.field(factory=dict)
    sessions: dict[str, SessionState] = attrs.field(factory=dict)
    version_ms: int = 0
    language: str | None = None
    ended_since: float | None = None
    duplicates: int = 0
    indexed_version: int = 0
    #: Shared input (``sqs.shared``): its rebuild from the Platform API was asked for.
    rebuild_asked: bool = False
    gap_affected: bool = False
    #: Utterances that carried no text at all (counted, not indexed).
    unusable_utterances: int = 0
    #: Its transcription topic was asked for (voice conversations only).
    subscribed: bool = False
    #: Closed, its utterances let go but their keys (:meth:`let_go`); no document until
    #: :meth:`restore_utterances`.
    slim: bool = False

    def apply_conversation(self, event: ConversationEvent, now: float) -> None:
        """Merge a conversation snapshot (queue conversation topic)."""
        self.last_event_at = now
        for p in event.participants:
            state = self.participants.setdefault(p.id, ParticipantState(participant_id=p.id))
            state.purpose = p.purpose or state.purpose
            state.user_id = p.user_id or state.user_id
            routed = p.conversation_routing_data.queue if p.conversation_routing_data else None
            state.queue_id = p.queue_id or (routed.id if routed else None) or state.queue_id
            state.queue_name = p.queue_name or (routed.name if routed else None) or state.queue_name
            communications = [c for _, c in p.communications()]
            state.started_at = (
                state.started_at
                or p.connected_time
                or next((c.connected_time for c in communications if c.connected_time), None)
                or p.start_time
            )
            state.direction = state.direction or next(
                (c.direction for c in communications if c.direction), None
            )
            for media, communication in p.communications():
                if media not in state.media:
                    state.media.append(media)
                if media == "message":
                    state.message_type = state.message_type or communication.type
                if media == "voice" and communication.id and communication.id not in state.call_ids:
                    state.call_ids.append(communication.id)
            # A communication without a state has ended when it has a disconnected time.
            communications_ended = bool(communications) and all(
                (c.state or "").lower() in _ENDED_CALL_STATES or (c.state is None and c.disconnected_time)
                for c in communications
            )
            end_time = p.end_time or max(
                (c.disconnected_time for c in communications if c.disconnected_time), default=None
            )
            if p.end_time is not None or communications_ended:
                state.ended = True
                state.ended_at = state.ended_at or end_time
            for value in (p.connected_time, end_time, p.end_acw_time):
                self.version_ms = max(self.version_ms, _ms(value))
        self._update_ended(now)

    def apply_transcription(self, message: TranscriptionMessage, now: float) -> int:
        """Merge a transcription message; returns how many new utterances it added."""
        self.last_event_at = now
        session = self.sessions.setdefault(
            message.communication_id, SessionState(communication_id=message.communication_id)
        )
        session.session_start_ms = session.session_start_ms or message.session_start_time_ms
        self.version_ms = max(self.version_ms, _ms(message.event_time))
        added = 0
        for result in message.transcripts:
            if not result.alternatives or not utterance_text(result.alternatives[0]).strip():
                self.unusable_utterances += 1
                continue
            key = utterance_key(result)
            known = session.utterances.get(key)
            if known is None:
                added += 1
            else:
                self.duplicates += 1
                if known.is_final or not result.is_final:
                    continue
            session.utterances[key] = KeptUtterance.of(result)
            self.language = self.language or result.dialect
        status = message.status
        if status is not None and status.status == "SESSION_ENDED":
            session.ended = True
        elif not message.transcripts and status is not None and (status.offset_ms or 0) <= SESSION_START_MS:
            session.saw_start = True
        self._update_ended(now)
        return added

    def media_type(self) -> str:
        """``voice`` when any participant has a call (or nothing says otherwise: a
        transcription-only capture), else the first digital media seen (``message``,
        ``email``, ``chat``) or ``callback``."""
        media = [m for p in self.participants.values() for m in p.media]
        if "voice" in media or not media:
            return "voice"
        return next((m for m in media if m in DIGITAL_MEDIA), media[0])

    def message_type(self) -> str | None:
        """The messaging channel (``sms``, ``webmessaging``, ``whatsapp``, ``open`` …), if any."""
        return next((p.message_type for p in self.participants.values() if p.message_type), None)

    def is_digital(self) -> bool:
        """A messaging, chat or email conversation: its text comes from the Platform API."""
        return self.media_type() in DIGITAL_MEDIA

    def participants_ended(self) -> bool:
        """Every participant seen has ended (``endTime`` or all calls disconnected/terminated)."""
        return bool(self.participants) and all(p.ended for p in self.participants.values())

    def sessions_ended(self) -> bool:
        """At least one transcription session was seen, and every one reached ``SESSION_ENDED``."""
        return bool(self.sessions) and all(s.ended for s in self.sessions.values())

    def ended(self) -> bool:
        """Both end conditions hold (the completion rule of reference §5.4, items 1-2); a
        digital conversation has no transcription session and ends with its participants."""
        return self.participants_ended() and (self.is_digital() or self.sessions_ended())

    def _update_ended(self, now: float) -> None:
        if self.ended():
            self.ended_since = self.ended_since if self.ended_since is not None else now
        else:
            self.ended_since = None

    def new_utterances(self, message: TranscriptionMessage) -> list[DocUtterance]:
        """The utterances of ``message`` this state does not hold yet (before it is applied),
        as they would be indexed (unredacted)."""
        session = self.sessions.get(message.communication_id) or SessionState(
            communication_id=message.communication_id
        )
        start_ms = session.session_start_ms or message.session_start_time_ms
        probe = (
            attrs.evolve(session, session_start_ms=start_ms)
            if start_ms != session.session_start_ms
            else session
        )
        found = []
        for result in message.transcripts:
            if not result.alternatives or not utterance_text(result.alternatives[0]).strip():
                continue
            key = utterance_key(result)
            if key not in session.utterances:
                found.append(self._utterance(probe, key, KeptUtterance.of(result)))
        return found

    def queue_labels(self, queue_names: dict[str, str]) -> tuple[str, ...]:
        """Names (ids when unknown) of the queues seen so far."""
        labels = {}
        for p in self.participants.values():
            if p.queue_id:
                labels[p.queue_id] = p.queue_name or queue_names.get(p.queue_id) or p.queue_id
        return tuple(labels.values())

    def has_new_utterances(self, message: TranscriptionMessage) -> bool:
        """Whether ``message`` carries an utterance this state does not hold yet."""
        session = self.sessions.get(message.communication_id)
        known = session.utterances if session else {}
        return any(utterance_key(r) not in known for r in message.transcripts if r.alternatives)

    def holes(self) -> str | None:
        """Why the text must come from the Platform API, not (only) the stream, or ``None``.

        ``digital`` (its text is never on the stream); for voice, ``gap`` (a gap in the
        stream overlapped it), ``no_session`` (no transcription message at all),
        ``joined_late`` (a session's opening message never came: subscribed after it,
        reference §4.2) or ``not_ended`` (a session never sent ``SESSION_ENDED``).
        """
        if self.is_digital():
            return "digital"
        if self.gap_affected:
            return "gap"
        if not self.sessions:
            return "no_session"
        if any(not s.saw_start for s in self.sessions.values()):
            return "joined_late"
        if any(not s.ended for s in self.sessions.values()):
            return "not_ended"
        return None

    def has_holes(self) -> bool:
        """Whether the text must come from the Platform API (:meth:`holes` says why)."""
        return self.holes() is not None

    def started_before(self, epoch_ms: int) -> bool:
        """Whether anything known about the conversation began before ``epoch_ms``."""
        starts = [_ms(p.started_at) for p in self.participants.values() if p.started_at]
        starts += [s.session_start_ms for s in self.sessions.values() if s.session_start_ms]
        return bool(starts) and min(starts) < epoch_ms

    def communication_ids(self) -> tuple[str, ...]:
        """Communications that may have a transcript: sessions seen, then customer and agent calls."""
        calls = [
            c
            for purpose in ("customer", "agent")
            for p in self.participants.values()
            if p.purpose == purpose
            for c in p.call_ids
        ]
        return tuple(dict.fromkeys([*self.sessions, *calls]))

    def utterance_count(self) -> int:
        """Distinct utterances received so far."""
        return sum(len(s.utterances) for s in self.sessions.values())

    def let_go(self) -> None:
        """Keep only what a closed conversation needs in its re-open window: its utterances'
        keys (what a late message is checked against), not their text and words (about
        1.1 KB an utterance); :meth:`restore_utterances` brings them back."""
        for session in self.sessions.values():
            session.utterances = dict.fromkeys(session.utterances, _LET_GO)
        self.slim = True

    def restore_utterances(self, messages: Iterable[TranscriptionMessage]) -> bool:
        """Undo :meth:`let_go` from the transcription messages that built the utterances
        (the journal's frames, in arrival order): each kept key gets its utterance again,
        as merged then (a final result over an interim one).

        :returns: whether every utterance was found; one that was not is dropped.
        """
        rebuilt = ConversationState(self.conversation_id, 0.0, 0.0)
        for message in messages:
            rebuilt.apply_transcription(message, 0.0)
        whole = True
        for communication_id, session in self.sessions.items():
            found = rebuilt.sessions.get(communication_id)
            utterances = {}
            for key in session.utterances:
                utterance = found.utterances.get(key) if found is not None else None
                if utterance is None:
                    whole = False
                else:
                    utterances[key] = utterance
            session.utterances = utterances
        self.slim = False
        return whole

    def to_document(self, reason: str, queue_names: dict[str, str]) -> TranscriptDocument:
        """The unredacted document for this conversation.

        :param reason: the completion reason (see :data:`indexer.document.COMPLETION_REASONS`).
        :param queue_names: queue id → name, for queues whose events carried no name.
        :raises ValueError: its utterances were let go (:meth:`let_go`): never a document
            without them.
        """
        if self.slim:
            raise ValueError("the utterances of this closed conversation were let go")
        # Spoken order; utterances without an offset keep their arrival order.
        ordered = sorted(
            (
                (self._utterance(session, key, result), arrival)
                for session in self.sessions.values()
                for arrival, (key, result) in enumerate(session.utterances.items())
            ),
            key=lambda pair: (
                pair[0].spoken_at or datetime.min.replace(tzinfo=UTC),
                pair[0].offset_ms,
                pair[1],
                pair[0].utterance_id,
            ),
        )
        utterances = [utterance for utterance, _ in ordered]
        participants = sorted(
            self.participants.values(), key=lambda p: p.started_at or datetime.max.replace(tzinfo=UTC)
        )
        queues: dict[str, str | None] = {}
        for p in participants:
            if p.queue_id:
                queues[p.queue_id] = queues.get(p.queue_id) or p.queue_name or queue_names.get(p.queue_id)
        starts = [p.started_at for p in participants if p.started_at] + [
            datetime.fromtimestamp(s.session_start_ms / 1000, UTC)
            for s in self.sessions.values()
            if s.session_start_ms
        ]
        started_at = min(starts, default=None)
        ends = [p.ended_at for p in participants if p.ended_at]
        ended_at = max(ends) if ends and self.participants_ended() else None
        customer = next((p for p in participants if p.purpose == "customer" and p.direction), None)
        direction = (
            customer or next((p for p in participants if p.direction), ParticipantState(""))
        ).direction
        media_type = self.media_type()
        return TranscriptDocument(
            conversation_id=self.conversation_id,
            media_type=media_type,
            message_type=self.message_type(),
            version=max(self.version_ms, self.indexed_version + 1, 1),
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=_ms(ended_at) - _ms(started_at) if started_at and ended_at else None,
            queues=tuple(QueueRef(id=qid, name=name) for qid, name in queues.items()),
            direction=direction,
            language=self.language,
            participants=tuple(  # bounded: nested objects count against the index's limit
                DocParticipant(
                    participant_id=p.participant_id,
                    purpose=p.purpose,
                    user_id=p.user_id,
                    queue_id=p.queue_id,
                    started_at=p.started_at,
                    ended_at=p.ended_at,
                )
                for p in participants[:MAX_PARTICIPANTS]
            ),
            utterances=tuple(utterances),
            text=join_text(utterances),
            # Complete only when the stream had it whole: a call joined late, hit by a gap or
            # without a session is completed by recovery (post-call transcript), as is a
            # digital conversation (its messages are fetched); without recovery it stays
            # incomplete (a replay, or recovery switched off).
            complete=reason == "ended" and not self.has_holes(),
            completion_reason=reason,
        )

    @staticmethod
    def _utterance(session: SessionState, key: str, kept: KeptUtterance) -> DocUtterance:
        offset_ms = kept.offset_ms
        spoken_at = (
            datetime.fromtimestamp((session.session_start_ms + offset_ms) / 1000, UTC)
            if session.session_start_ms and offset_ms is not None
            else None
        )
        return DocUtterance(
            utterance_id=key,
            communication_id=session.communication_id,
            speaker=speaker_of(kept.channel),
            text=kept.text,
            offset_ms=offset_ms if offset_ms is not None else 0,
            duration_ms=kept.duration_ms or 0,
            confidence=kept.confidence,
            spoken_at=spoken_at,
            words=kept.doc_words(),
        )
