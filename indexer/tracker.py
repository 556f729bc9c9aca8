"""Per-conversation state built from notifications, and the document it becomes.

One :class:`ConversationState` per ``conversationId`` holds participants (merged across
snapshots; once ended, a participant stays ended, because event order is not guaranteed,
reference §3.8) and transcription sessions, one per ``communicationId``, with utterances
deduplicated by ``utteranceId`` (reference §4.5).
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

from indexer.document import DocParticipant, DocUtterance, DocWord, QueueRef, TranscriptDocument
from indexer.models import ConversationEvent, TranscriptionMessage, TranscriptResult
from indexer.redaction import join_text

__all__ = ["ConversationState", "SessionState", "speaker_of"]

_ENDED_CALL_STATES = frozenset({"disconnected", "terminated"})
#: A status-only message this close to the session start (ms) is the session's opening one.
SESSION_START_MS = 10_000
_SPEAKERS = {"INTERNAL": "agent", "EXTERNAL": "customer"}


def speaker_of(channel: str) -> str:
    """``agent`` for INTERNAL, ``customer`` for EXTERNAL, else ``unknown`` (reference §4.3)."""
    return _SPEAKERS.get(channel.upper(), "unknown")


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else 0


@attrs.define
class SessionState:
    """One transcription session (one ``communicationId``).

    :ivar saw_start: the status-only ``SESSION_ONGOING`` message that opens every session
        (reference §4.2) arrived; without it the worker joined late and may lack utterances.
    """

    communication_id: str
    session_start_ms: int | None = None
    ended: bool = False
    saw_start: bool = False
    utterances: dict[str, TranscriptResult] = attrs.field(factory=dict)


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
    gap_affected: bool = False

    def apply_conversation(self, event: ConversationEvent, now: float) -> None:
        """Merge a conversation snapshot (queue conversation topic)."""
        self.last_event_at = now
        for p in event.participants:
            state = self.participants.setdefault(p.id, ParticipantState(participant_id=p.id))
            state.purpose = p.purpose or state.purpose
            state.user_id = p.user_id or state.user_id
            routed = p.conversation_routing_data.queue if p.conversation_routing_data else None
            state.queue_id = p.queue_id or (routed.id if routed else None) or state.queue_id
            state.queue_name = (routed.name if routed else None) or state.queue_name
            state.started_at = (
                state.started_at
                or p.connected_time
                or next((c.connected_time for c in p.calls if c.connected_time), None)
            )
            state.direction = state.direction or next((c.direction for c in p.calls if c.direction), None)
            state.call_ids.extend(c.id for c in p.calls if c.id not in state.call_ids)
            calls_ended = bool(p.calls) and all(
                (c.state or "").lower() in _ENDED_CALL_STATES for c in p.calls
            )
            end_time = p.end_time or max(
                (c.disconnected_time for c in p.calls if c.disconnected_time), default=None
            )
            if p.end_time is not None or calls_ended:
                state.ended = True
                state.ended_at = state.ended_at or end_time
            for value in (p.connected_time, end_time):
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
            if not result.alternatives:
                continue
            known = session.utterances.get(result.utterance_id)
            if known is None:
                added += 1
            else:
                self.duplicates += 1
                if known.is_final or not result.is_final:
                    continue
            session.utterances[result.utterance_id] = result
            self.language = self.language or result.dialect
        status = message.status
        if status is not None and status.status == "SESSION_ENDED":
            session.ended = True
        elif not message.transcripts and status is not None and (status.offset_ms or 0) <= SESSION_START_MS:
            session.saw_start = True
        self._update_ended(now)
        return added

    def participants_ended(self) -> bool:
        """Every participant seen has ended (``endTime`` or all calls disconnected/terminated)."""
        return bool(self.participants) and all(p.ended for p in self.participants.values())

    def sessions_ended(self) -> bool:
        """At least one transcription session was seen, and every one reached ``SESSION_ENDED``."""
        return bool(self.sessions) and all(s.ended for s in self.sessions.values())

    def ended(self) -> bool:
        """Both end conditions hold (the completion rule of reference §5.4, items 1-2)."""
        return self.participants_ended() and self.sessions_ended()

    def _update_ended(self, now: float) -> None:
        if self.ended():
            self.ended_since = self.ended_since if self.ended_since is not None else now
        else:
            self.ended_since = None

    def has_new_utterances(self, message: TranscriptionMessage) -> bool:
        """Whether ``message`` carries an utterance this state does not hold yet."""
        session = self.sessions.get(message.communication_id)
        known = session.utterances if session else {}
        return any(r.utterance_id not in known for r in message.transcripts if r.alternatives)

    def has_holes(self) -> bool:
        """Whether the live transcript may lack utterances.

        True after a gap, without any transcription session, when a session was joined
        after its start, or when a session never ended.
        """
        return (
            self.gap_affected
            or not self.sessions
            or any(not s.saw_start or not s.ended for s in self.sessions.values())
        )

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

    def to_document(self, reason: str, queue_names: dict[str, str]) -> TranscriptDocument:
        """The unredacted document for this conversation.

        :param reason: the completion reason (see :data:`indexer.document.COMPLETION_REASONS`).
        :param queue_names: queue id → name, for queues whose events carried no name.
        """
        utterances = sorted(
            (
                self._utterance(session, result)
                for session in self.sessions.values()
                for result in session.utterances.values()
            ),
            key=lambda u: (u.spoken_at or datetime.min.replace(tzinfo=UTC), u.offset_ms, u.utterance_id),
        )
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
        return TranscriptDocument(
            conversation_id=self.conversation_id,
            version=max(self.version_ms, self.indexed_version + 1, 1),
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=_ms(ended_at) - _ms(started_at) if started_at and ended_at else None,
            queues=tuple(QueueRef(id=qid, name=name) for qid, name in queues.items()),
            direction=direction,
            language=self.language,
            participants=tuple(
                DocParticipant(
                    participant_id=p.participant_id,
                    purpose=p.purpose,
                    user_id=p.user_id,
                    queue_id=p.queue_id,
                    started_at=p.started_at,
                    ended_at=p.ended_at,
                )
                for p in participants
            ),
            utterances=tuple(utterances),
            text=join_text(utterances),
            complete=reason == "ended",
            completion_reason=reason,
        )

    @staticmethod
    def _utterance(session: SessionState, result: TranscriptResult) -> DocUtterance:
        alt = result.alternatives[0]
        spoken_at = (
            datetime.fromtimestamp((session.session_start_ms + alt.offset_ms) / 1000, UTC)
            if session.session_start_ms
            else None
        )
        return DocUtterance(
            utterance_id=result.utterance_id,
            communication_id=session.communication_id,
            speaker=speaker_of(result.channel),
            text=alt.decorated_transcript or alt.transcript,
            offset_ms=alt.offset_ms,
            duration_ms=alt.duration_ms,
            confidence=alt.confidence,
            spoken_at=spoken_at,
            words=tuple(
                DocWord(
                    word=w.word, offset_ms=w.offset_ms, duration_ms=w.duration_ms, confidence=w.confidence
                )
                for w in alt.words
            ),
        )
