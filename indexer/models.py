"""Genesys Cloud wire models: frozen attrs classes, one per payload shape.

Python attribute names are snake_case; the converter in :mod:`indexer.serialization`
maps them to the camelCase wire names (``session_start_time_ms`` ↔ ``sessionStartTimeMs``).
Parsing is tolerant of unknown fields (Genesys adds fields) and strict about the fields
the worker needs. Field lists follow the Python SDK models named in each docstring
(reference: ``genesys-cloud.md``).

Epoch-millisecond fields are Python ints (64-bit safe, reference §8 item 14); ISO-8601
times are timezone-aware :class:`datetime.datetime` values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "AfterCallWork",
    "Call",
    "Channel",
    "ChannelMetadata",
    "ChannelTopic",
    "ConversationEvent",
    "Envelope",
    "EventBody",
    "Participant",
    "Queue",
    "QueueListing",
    "RoutingData",
    "SystemMessage",
    "TokenResponse",
    "TranscriptAlternative",
    "TranscriptResult",
    "TranscriptionMessage",
    "TranscriptionStatus",
    "Word",
]


# --- OAuth and notification REST API (reference §2, §3) --------------------------------


@attrs.frozen
class TokenResponse:
    """``POST https://login.{domain}/oauth/token`` response (reference §2.2).

    :ivar expires_in: lifetime of the token in seconds.
    """

    __wire_names__ = "snake"  # the OAuth endpoint uses snake_case, unlike the Platform API

    access_token: str
    token_type: str = "bearer"
    expires_in: int = 86399


@attrs.frozen
class Channel:
    """``POST /api/v2/notifications/channels`` response (SDK model ``Channel``).

    :ivar connect_uri: the WebSocket URI to connect to, used as-is (reference §1).
    """

    id: str
    connect_uri: str
    expires: datetime | None = None


@attrs.frozen
class ChannelTopic:
    """One entry of a subscription list (SDK model ``ChannelTopic``, reference §3.3)."""

    id: str
    state: str | None = None
    rejection_reason: str | None = None
    missing_permissions: tuple[str, ...] = ()


@attrs.frozen
class Queue:
    """A routing queue, from ``GET /api/v2/routing/queues``."""

    id: str
    name: str


@attrs.frozen
class QueueListing:
    """A page of ``GET /api/v2/routing/queues`` (``QueueEntityListing``)."""

    entities: tuple[Queue, ...] = ()
    page_number: int = 1
    page_count: int = 1


# --- Notification envelope and topic payloads (reference §3.5-§5) ----------------------


@attrs.frozen
class ChannelMetadata:
    """``channel.metadata`` body: ``"WebSocket Heartbeat"`` or ``"pong"`` (reference §3.6)."""

    message: str | None = None


@attrs.frozen
class SystemMessage:
    """``v2.system.*`` body, SDK model ``SystemMessageSystemMessage`` (reference §3.7)."""

    channel_id: str | None = None
    system_topic_type: str | None = None
    correlation_id: str | None = None
    organization_id: str | None = None
    user_id: str | None = None
    oauth_client_id: str | None = None
    reason: str | None = None
    message: str | None = None
    data: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Word:
    """One recognised word (``TranscriptionTopicTranscriptWord``).

    :ivar offset_ms: offset from the start of the transcription session, in ms.
    :ivar start_time_ms: epoch ms, when present (semantics unconfirmed, reference §4.4).
    """

    word: str
    offset_ms: int | None = None
    duration_ms: int | None = None
    confidence: float | None = None
    start_time_ms: int | None = None


@attrs.frozen
class TranscriptAlternative:
    """One hypothesis of an utterance (``TranscriptionTopicTranscriptAlternative``).

    :ivar transcript: raw ASR text: lower case, no sentence punctuation.
    :ivar decorated_transcript: formatted text, when the engine provides it.
    """

    transcript: str
    offset_ms: int
    duration_ms: int = 0
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    decorated_transcript: str | None = None
    decorated_words: tuple[Word, ...] = ()


@attrs.frozen
class TranscriptResult:
    """One utterance (``TranscriptionTopicTranscriptResult``).

    :ivar channel: ``INTERNAL`` (agent), ``EXTERNAL`` (customer), ``BOTH`` or ``UNKNOWN``.
    """

    utterance_id: str
    alternatives: tuple[TranscriptAlternative, ...]
    channel: str = "UNKNOWN"
    is_final: bool | None = None
    agent_assistant_id: str | None = None
    engine_provider: str | None = None
    engine_id: str | None = None
    engine_name: str | None = None
    dialect: str | None = None
    speech_text_analytics_program_id: str | None = None
    agent_assist_enabled: bool | None = None
    voice_transcription_enabled: bool | None = None


@attrs.frozen
class TranscriptionStatus:
    """``status`` of a transcription message: ``SESSION_ONGOING``, ``SESSION_ENDED`` or ``UNKNOWN``."""

    status: str
    offset_ms: int | None = None


@attrs.frozen
class TranscriptionMessage:
    """``v2.conversations.{id}.transcription`` body (``TranscriptionTopicTranscriptionMessage``, §4.3).

    ``transcripts`` is empty on status-only keep-alives and on ``SESSION_ENDED``.
    """

    conversation_id: str
    communication_id: str
    event_time: datetime | None = None
    organization_id: str | None = None
    session_start_time_ms: int | None = None
    transcription_start_time_ms: int | None = None
    transcripts: tuple[TranscriptResult, ...] = ()
    status: TranscriptionStatus | None = None
    speech_text_analytics_program_id: str | None = None


@attrs.frozen
class AfterCallWork:
    """``afterCallWork`` of a call: state ``unknown|skipped|pending|complete|notApplicable``."""

    state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@attrs.frozen
class Call:
    """A voice communication of a participant (``ConversationEventTopicCall``, §5.2).

    :ivar state: ``alerting``, ``dialing``, ``contacting``, ``offering``, ``connected``,
        ``disconnected``, ``terminated`` …
    """

    id: str
    state: str | None = None
    initial_state: str | None = None
    direction: str | None = None
    disconnect_type: str | None = None
    connected_time: datetime | None = None
    disconnected_time: datetime | None = None
    held: bool | None = None
    muted: bool | None = None
    recording: bool | None = None
    peer_id: str | None = None
    after_call_work: AfterCallWork | None = None
    after_call_work_required: bool | None = None


@attrs.frozen
class RoutingData:
    """``conversationRoutingData``: the queue a participant was routed through."""

    queue: Queue | None = None


@attrs.frozen
class Participant:
    """A participant of a conversation event (``ConversationEventTopicParticipant``, §5.2).

    Names and addresses are deliberately not modelled: they are PII the index never holds.

    :ivar purpose: ``customer``, ``agent``, ``acd``, ``ivr``, ``external`` …
    """

    id: str
    purpose: str | None = None
    user_id: str | None = None
    queue_id: str | None = None
    team_id: str | None = None
    connected_time: datetime | None = None
    end_time: datetime | None = None
    wrapup_required: bool | None = None
    start_acw_time: datetime | None = None
    end_acw_time: datetime | None = None
    conversation_routing_data: RoutingData | None = None
    calls: tuple[Call, ...] = ()


@attrs.frozen
class ConversationEvent:
    """``v2.routing.queues.{id}.conversations`` body (``ConversationEventTopicConversation``, §5.2).

    Each event is a snapshot of the whole conversation; there is no conversation-level
    ``endTime`` on this topic.
    """

    id: str
    participants: tuple[Participant, ...] = ()
    external_tag: str | None = None
    recording_state: str | None = None


EventBody = ChannelMetadata | SystemMessage | TranscriptionMessage | ConversationEvent


@attrs.frozen
class Envelope:
    """A notification as received on the WebSocket (reference §3.5).

    :ivar topic_name: the concrete topic, e.g. ``v2.conversations.<uuid>.transcription``.
    :ivar correlation_id: ``metadata.CorrelationId``.
    """

    topic_name: str
    event_body: EventBody
    version: str | None = None
    correlation_id: str | None = None
