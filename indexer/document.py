"""The indexed transcript document: what analysts search.

The JSON Schema in ``schemas/transcript-document.schema.json`` and the OpenSearch index
template in ``schemas/index-template.json`` describe the same shape; a test keeps the
three in step. Times are ISO-8601 UTC strings when dumped; durations and offsets are ms.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import attrs

__all__ = [
    "COMPLETION_REASONS",
    "MAX_PARTICIPANTS",
    "NESTED_OBJECTS_LIMIT",
    "AuditEntry",
    "DocParticipant",
    "DocUtterance",
    "DocWord",
    "QueueRef",
    "RedactionSummary",
    "TranscriptDocument",
]

#: Nested objects (utterances and participants) a document may hold: the index template's
#: ``index.mapping.nested_objects.limit`` (``schemas/index-template.json``; a test keeps
#: them equal). ``completion.max_utterances`` + :data:`MAX_PARTICIPANTS` stays within it.
NESTED_OBJECTS_LIMIT: Final = 12_000
#: Participants kept in a document (a conversation with more keeps its first ones).
MAX_PARTICIPANTS: Final = 1_000

#: Why a conversation was closed (``ended``: every end signal arrived; the others are timers,
#: caps and shutdowns, see :mod:`indexer.completion`).
COMPLETION_REASONS: Final = ("ended", "idle", "max_age", "capacity", "stream_end", "shutdown")


@attrs.frozen
class QueueRef:
    """A queue the conversation was routed through; ``name`` is ``None`` when unknown."""

    id: str
    name: str | None = None


@attrs.frozen
class DocParticipant:
    """A participant: purpose (``customer``, ``agent``, ``acd``, ``ivr`` …), ids and times.

    No names or addresses: those are PII and are never indexed.
    """

    participant_id: str
    purpose: str | None
    user_id: str | None
    queue_id: str | None
    started_at: datetime | None
    ended_at: datetime | None


@attrs.frozen
class DocWord:
    """A recognised word; ``offset_ms`` is from the start of its transcription session."""

    word: str
    offset_ms: int | None
    duration_ms: int | None
    confidence: float | None


@attrs.frozen
class DocUtterance:
    """One utterance, in spoken order within the document.

    :ivar utterance_id: ``utteranceId`` (voice), the message id (digital), or a derived key.
    :ivar speaker: ``agent`` (Genesys channel INTERNAL, or an agent's message) or
        ``customer`` (EXTERNAL, or the customer's message); ``unknown`` otherwise.
    :ivar text: the decorated transcript when Genesys sent one, else the raw transcript;
        a message's text; an email's subject, a blank line and its body.
    :ivar offset_ms: offset from the start of the transcription session (``offsetMs``).
    :ivar spoken_at: session start + offset, when the session start is known.
    """

    utterance_id: str
    communication_id: str
    speaker: str
    text: str
    offset_ms: int
    duration_ms: int
    confidence: float | None
    spoken_at: datetime | None
    words: tuple[DocWord, ...] = ()


@attrs.frozen
class AuditEntry:
    """One redacted span, for the audit record; never the value.

    :ivar field: ``text`` (``start``/``end`` are character offsets into the utterance's
        original text) or ``words`` (indices into its words, end exclusive).
    :ivar operator: ``mask``, ``partial`` or ``hash`` (:mod:`indexer.redaction`).
    """

    rule_id: str
    entity_type: str
    utterance_id: str
    field: str
    start: int
    end: int
    operator: str


@attrs.frozen
class RedactionSummary:
    """What redaction did, without any value: findings per entity type and the rule set version.

    :ivar findings: the audit entries. Sinks keep them out of the searchable transcript;
        the OpenSearch sink writes them to the audit index (``<alias>_audit``).
    """

    rule_set_version: str
    counts: dict[str, int] = attrs.field(factory=dict)
    findings: tuple[AuditEntry, ...] = ()


@attrs.frozen
class TranscriptDocument:
    """One conversation's whole transcript; ``_id`` in OpenSearch is ``conversation_id``.

    :ivar version: external version for OpenSearch: the newest event time seen for the
        conversation, in epoch ms, so a later update always has a higher version.
    :ivar complete: ``True`` when the transcript is known whole: the conversation ended
        (``completion_reason`` ``ended``) with nothing missed by the live stream, or its
        utterances come from the post-call transcript, which exists only once a call is over.
    :ivar source: where the utterances come from: ``live`` (notification stream),
        ``post_call`` (the post-call transcript, after a gap in the stream) or ``api``
        (messages, chat or email fetched from the Platform API once the conversation ended).
    :ivar media_type: ``voice``, ``message``, ``chat``, ``email`` or ``callback``; every
        media has the same shape: each message is an utterance.
    :ivar message_type: messaging only: ``sms``, ``webmessaging``, ``whatsapp``, ``open`` …
    """

    conversation_id: str
    version: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    queues: tuple[QueueRef, ...]
    direction: str | None
    language: str | None
    participants: tuple[DocParticipant, ...]
    utterances: tuple[DocUtterance, ...]
    text: str
    complete: bool
    completion_reason: str
    redaction: RedactionSummary | None = None
    source: str = "live"
    media_type: str = "voice"
    message_type: str | None = None
