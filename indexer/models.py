"""Genesys Cloud wire models: frozen attrs classes, one per payload shape.

Python attribute names are snake_case; the converter in :mod:`indexer.serialization`
maps them to the camelCase wire names (``session_start_time_ms`` ↔ ``sessionStartTimeMs``).
Field lists follow the official Python SDK models (``purecloudplatformclientv2``) named
in each docstring; the SDK is the reference, not our emulator. In the SDK every field is
optional, so here too: a field may be absent, ``null`` or empty (``{}``, ``[]``), and
unknown fields are ignored (Genesys adds fields). The only **required fields**, because
the worker cannot act without them, are:

========================================  ==============================================
field                                      why
========================================  ==============================================
``topicName`` of an envelope               it says which model the body is
``id`` of a conversation event             the document's ``_id``
``participants[].id``                      participants are merged across snapshots by it
``conversationId`` of a transcription      the document; taken from the topic name when
message                                    the body lacks it
``communicationId`` of a transcription     the session it ends (``SESSION_ENDED``) and the
message                                    post-call transcript to fetch
``id`` and ``connectUri`` of a channel     where to subscribe and connect
``access_token`` of a token response       every API call
``id`` of a queue and of a channel topic   what is followed
``conversationId`` of an analytics row     the conversation to rebuild (a row without it
                                           is logged and left out, the others are used)
``participants[].id`` of a messaging       the participant the message ids belong to
conversation
========================================  ==============================================

Where an optional field the worker uses is missing, it falls back: queue names come from
the queues resolved at start-up or the REST ``participants[].queueName``; an utterance
without ``utteranceId`` is keyed by its offset and text; without ``offsetMs`` it keeps
its arrival order; without ``transcript`` its decorated text or words are used, and an
utterance with no text at all is counted (``unusable_utterances``), never the message
dropped. ``tests/test_sdk_conformance.py`` drops optional fields from real-shaped
payloads to prove it.

Epoch-millisecond fields are Python ints (64-bit safe, reference §8 item 14); ISO-8601
times are timezone-aware :class:`datetime.datetime` values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import attrs

__all__ = [
    "AfterCallWork",
    "AnalyticsConversation",
    "AnalyticsParticipant",
    "AnalyticsQueryResponse",
    "AnalyticsSegment",
    "AnalyticsSession",
    "Call",
    "Channel",
    "ChannelMetadata",
    "ChannelTopic",
    "ChannelTopicListing",
    "ChatMessage",
    "Communication",
    "ConversationEvent",
    "EmailAddress",
    "Envelope",
    "EventBody",
    "MessageData",
    "MessageDetails",
    "MessagingConversation",
    "MessagingParticipant",
    "Milliseconds",
    "NormalizedMessage",
    "Participant",
    "Phrase",
    "PhraseWord",
    "PostCallPart",
    "PostCallTranscript",
    "Queue",
    "QueueListing",
    "QueueRef",
    "Recording",
    "RecordingEmailMessage",
    "RecordingMessagingMessage",
    "RoutingData",
    "SystemMessage",
    "TextMessageListing",
    "TokenResponse",
    "TranscriptAlternative",
    "TranscriptResult",
    "TranscriptUrl",
    "TranscriptionMessage",
    "TranscriptionStatus",
    "Word",
    "Wrapup",
]


#: Epoch-millisecond times accepted: 1970 up to 2200 (a larger value cannot be a real time
#: and would overflow date arithmetic later).
MAX_EPOCH_MS: Final = 7_258_118_400_000
#: Offsets and durations accepted, in ms: within ±30 days of the session start.
MAX_OFFSET_MS: Final = 30 * 86_400_000


def _within(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An attrs validator: ``None``, or ``low <= value <= high``.

    One call per field (attrs' ``optional(and_(ge, le))`` makes four, and a transcription
    frame has about 50 such fields: a quarter of its parsing time).

    :raises ValueError: out of range (the message names the field, never the value).
    """

    def within(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not low <= value <= high:
            raise ValueError(f"{attribute.name} must be within {low} and {high}")

    return within


_EPOCH_MS = _within(0, MAX_EPOCH_MS)
_OFFSET_MS = _within(-MAX_OFFSET_MS, MAX_OFFSET_MS)
_DURATION_MS = _within(0, MAX_OFFSET_MS)


# --- OAuth and notification REST API (reference §2, §3) --------------------------------


@attrs.frozen
class TokenResponse:
    """``POST https://login.{domain}/oauth/token`` response (reference §2.2).

    :ivar expires_in: lifetime of the token in seconds.
    """

    __wire_names__ = "snake"  # the OAuth endpoint uses snake_case, unlike the Platform API

    access_token: str
    token_type: str | None = None
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
class ChannelTopicListing:
    """A subscription list (SDK ``ChannelTopicEntityListing``)."""

    entities: tuple[ChannelTopic, ...] = ()


@attrs.frozen
class Queue:
    """A routing queue, from ``GET /api/v2/routing/queues`` (SDK ``Queue``; ``name`` optional there)."""

    id: str
    name: str | None = None


@attrs.frozen
class QueueListing:
    """A page of ``GET /api/v2/routing/queues`` (``QueueEntityListing``)."""

    entities: tuple[Queue, ...] = ()
    page_number: int | None = None
    page_count: int | None = None


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
    """One recognised word (``TranscriptionTopicTranscriptWord``); every field optional in the SDK.

    :ivar offset_ms: offset from the start of the transcription session, in ms.
    :ivar start_time_ms: epoch ms, when present (semantics unconfirmed, reference §4.4).
    """

    word: str = ""
    offset_ms: int | None = attrs.field(default=None, validator=_OFFSET_MS)
    duration_ms: int | None = attrs.field(default=None, validator=_DURATION_MS)
    confidence: float | None = None
    start_time_ms: int | None = attrs.field(default=None, validator=_EPOCH_MS)


@attrs.frozen
class TranscriptAlternative:
    """One hypothesis of an utterance (``TranscriptionTopicTranscriptAlternative``).

    Every field is optional in the SDK: the tracker falls back to the decorated text or
    the words when ``transcript`` is absent, and to arrival order when ``offsetMs`` is.

    :ivar transcript: raw ASR text: lower case, no sentence punctuation.
    :ivar decorated_transcript: formatted text, when the engine provides it.
    """

    transcript: str | None = None
    offset_ms: int | None = attrs.field(default=None, validator=_OFFSET_MS)
    duration_ms: int | None = attrs.field(default=None, validator=_DURATION_MS)
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    decorated_transcript: str | None = None
    decorated_words: tuple[Word, ...] = ()


@attrs.frozen
class TranscriptResult:
    """One utterance (``TranscriptionTopicTranscriptResult``).

    :ivar utterance_id: the de-duplication key; when absent the tracker derives one from
        the offset and the text (see :func:`indexer.tracker.utterance_key`).
    :ivar channel: ``INTERNAL`` (agent), ``EXTERNAL`` (customer), ``BOTH`` or ``UNKNOWN``.
    """

    utterance_id: str | None = None
    alternatives: tuple[TranscriptAlternative, ...] = ()
    channel: str | None = None
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

    status: str | None = None
    offset_ms: int | None = attrs.field(default=None, validator=_OFFSET_MS)


@attrs.frozen
class TranscriptionMessage:
    """``v2.conversations.{id}.transcription`` body (``TranscriptionTopicTranscriptionMessage``, §4.3).

    ``transcripts`` is empty (absent or null) on status-only keep-alives and on
    ``SESSION_ENDED``. ``conversation_id`` is taken from the topic name when the body
    lacks it (:func:`indexer.serialization.parse_envelope`).
    """

    conversation_id: str
    communication_id: str
    event_time: datetime | None = None
    organization_id: str | None = None
    session_start_time_ms: int | None = attrs.field(default=None, validator=_EPOCH_MS)
    transcription_start_time_ms: int | None = attrs.field(default=None, validator=_EPOCH_MS)
    transcripts: tuple[TranscriptResult, ...] = ()
    status: TranscriptionStatus | None = None
    speech_text_analytics_program_id: str | None = None


@attrs.frozen
class AfterCallWork:
    """``afterCallWork`` of a communication: state ``unknown|skipped|pending|complete|notApplicable``."""

    state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@attrs.frozen
class Wrapup:
    """``wrapup`` of a participant or communication.

    SDK ``QueueConversationEventTopicWrapup`` on the topic, ``Wrapup`` in REST.
    """

    code: str | None = None
    name: str | None = None
    duration_seconds: int | None = None
    end_time: datetime | None = None


@attrs.frozen
class MessageDetails:
    """One entry of ``messages[].messages`` (``QueueConversationEventTopicMessageDetails``): no text."""

    message_id: str | None = None
    message_time: datetime | None = None
    message_status: str | None = None


@attrs.frozen
class Communication:
    """One communication of a participant: a call, callback, chat, email or message.

    The same fields are read from ``QueueConversationEventTopicCall`` / ``…Callback`` /
    ``…Chat`` / ``…Email`` / ``…Message`` and their REST counterparts (``Call``,
    ``Callback``, ``ConversationChat``, ``Email``, ``Message``); all optional in the SDK.

    :ivar state: ``alerting``, ``dialing``, ``contacting``, ``offering``, ``connected``,
        ``disconnected``, ``terminated`` …
    :ivar type: messages only: ``sms``, ``webmessaging``, ``whatsapp``, ``open`` …
    :ivar messages: messages only: message ids and times (never their text).
    """

    id: str | None = None
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
    type: str | None = None
    subject: str | None = None
    messages: tuple[MessageDetails, ...] = ()


#: Kept for callers of the voice-only name.
Call = Communication


@attrs.frozen
class QueueRef:
    """A queue reference: ``QueueConversationEventTopicUriReference{id, name}`` on the topic,
    ``AddressableEntityRef{id, selfUri}`` in REST; both fields optional.
    """

    id: str | None = None
    name: str | None = None


@attrs.frozen
class RoutingData:
    """``conversationRoutingData``: the queue a participant was routed through (``{}`` for agents)."""

    queue: QueueRef | None = None


@attrs.frozen
class Participant:
    """A participant of a conversation (``QueueConversationEventTopicParticipant``; REST ``Participant``).

    Names and addresses are deliberately not modelled: they are PII the index never holds.

    :ivar purpose: ``customer``, ``agent``, ``acd``, ``ivr``, ``external`` …; may be absent.
    :ivar queue_name: REST only (``GET /api/v2/conversations/{id}``).
    """

    id: str
    purpose: str | None = None
    user_id: str | None = None
    queue_id: str | None = None
    queue_name: str | None = None
    team_id: str | None = None
    start_time: datetime | None = None
    connected_time: datetime | None = None
    end_time: datetime | None = None
    wrapup_required: bool | None = None
    wrapup: Wrapup | None = None
    start_acw_time: datetime | None = None
    end_acw_time: datetime | None = None
    conversation_routing_data: RoutingData | None = None
    calls: tuple[Communication, ...] = ()
    callbacks: tuple[Communication, ...] = ()
    chats: tuple[Communication, ...] = ()
    emails: tuple[Communication, ...] = ()
    messages: tuple[Communication, ...] = ()

    def communications(self) -> tuple[tuple[str, Communication], ...]:
        """``(media type, communication)`` for each communication, media types as in the
        document: ``voice``, ``callback``, ``chat``, ``email``, ``message``."""
        return (
            *(("voice", c) for c in self.calls),
            *(("callback", c) for c in self.callbacks),
            *(("chat", c) for c in self.chats),
            *(("email", c) for c in self.emails),
            *(("message", c) for c in self.messages),
        )


@attrs.frozen
class ConversationEvent:
    """A conversation snapshot: ``v2.routing.queues.{id}.conversations`` body
    (``QueueConversationEventTopicConversation``, §5.2), or the REST ``Conversation``
    (``GET /api/v2/conversations/{id}``, §6.3), which adds ``startTime``/``endTime``.

    Each event is a snapshot of the whole conversation; there is no conversation-level
    ``endTime`` on the topic.
    """

    id: str
    participants: tuple[Participant, ...] = ()
    external_tag: str | None = None
    recording_state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


EventBody = ChannelMetadata | SystemMessage | TranscriptionMessage | ConversationEvent


@attrs.frozen
class Envelope:
    """A notification as received on the WebSocket (reference §3.5).

    :ivar topic_name: the concrete topic, e.g. ``v2.conversations.<uuid>.transcription``.
    :ivar correlation_id: ``metadata.CorrelationId``.
    :ivar frame: the text frame it was parsed from, kept for the journal (which records
        frames as received rather than serializing each again); ``None`` when built in code.
    """

    topic_name: str
    event_body: EventBody
    version: str | None = None
    correlation_id: str | None = None
    frame: str | None = attrs.field(default=None, eq=False, repr=False)


# --- Digital conversations' text: recordings and messaging APIs (reference §10) --------


@attrs.frozen
class RecordingMessagingMessage:
    """One message of ``Recording.messagingTranscript`` (SDK ``RecordingMessagingMessage``).

    :ivar purpose: the sender's participant purpose (``customer``, ``agent``, ``acd`` …).
    """

    id: str | None = None
    timestamp: datetime | None = None
    purpose: str | None = None
    participant_id: str | None = None
    message_text: str | None = None
    content_type: str | None = None


@attrs.frozen
class EmailAddress:
    """``EmailAddress{email, name}``: compared, never indexed (it is PII)."""

    email: str | None = None


@attrs.frozen
class RecordingEmailMessage:
    """One email of ``Recording.emailTranscript`` (SDK ``RecordingEmailMessage``).

    :ivar from_: the sender (wire name ``from``), used only to tell the senders apart.
    """

    id: str | None = None
    from_: EmailAddress | None = None
    time: datetime | None = None
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None


@attrs.frozen
class ChatMessage:
    """One line of ``Recording.transcript``, an ACD web chat (SDK ``ChatMessage``).

    :ivar utc: the time, as a string (ISO-8601 or epoch ms, the SDK types it ``str``).
    :ivar participant_purpose: the sender's purpose (``customer``, ``agent`` …).
    """

    id: str | None = None
    body: str | None = None
    utc: str | None = None
    type: str | None = None
    body_type: str | None = None
    participant_purpose: str | None = None


@attrs.frozen
class Recording:
    """One entry of ``GET /api/v2/conversations/{id}/recordings`` (SDK ``Recording``).

    :ivar media: ``audio``, ``email``, ``chat``, ``messaging`` …
    """

    id: str | None = None
    media: str | None = None
    media_subtype: str | None = None
    transcript: tuple[ChatMessage, ...] = ()
    email_transcript: tuple[RecordingEmailMessage, ...] = ()
    messaging_transcript: tuple[RecordingMessagingMessage, ...] = ()


@attrs.frozen
class MessagingParticipant:
    """A participant of ``GET /api/v2/conversations/messages/{id}`` (SDK ``MessageMediaParticipant``)."""

    id: str
    purpose: str | None = None
    direction: str | None = None
    type: str | None = None
    messages: tuple[MessageDetails, ...] = ()


@attrs.frozen
class MessagingConversation:
    """``GET /api/v2/conversations/messages/{id}`` (SDK ``MessageConversation``)."""

    id: str | None = None
    participants: tuple[MessagingParticipant, ...] = ()


@attrs.frozen
class NormalizedMessage:
    """``MessageData.normalizedMessage`` (SDK ``ConversationNormalizedMessage``): ``text`` holds the text."""

    type: str | None = None
    text: str | None = None
    direction: str | None = None


@attrs.frozen
class MessageData:
    """One entity of ``POST …/messages/{id}/messages/bulk`` (SDK ``MessageData`` in ``TextMessageListing``).

    The SDK (v269) carries the text in ``normalizedMessage.text``; older API versions sent
    ``textBody``, which is read too. An entry without text is an event (typing, presence,
    receipt), not a message.

    :ivar direction: ``inbound`` (from the customer) or ``outbound``.
    """

    id: str | None = None
    timestamp: datetime | None = None
    direction: str | None = None
    messenger_type: str | None = None
    status: str | None = None
    text_body: str | None = None
    normalized_message: NormalizedMessage | None = None


@attrs.frozen
class TextMessageListing:
    """``TextMessageListing{entities: MessageData[]}``."""

    entities: tuple[MessageData, ...] = ()


# --- Gap recovery: analytics, transcript URL, post-call transcript (reference §6) ------


@attrs.frozen
class AnalyticsSegment:
    """A segment of an analytics session (SDK ``AnalyticsConversationSegment``)."""

    segment_type: str | None = None
    queue_id: str | None = None


@attrs.frozen
class AnalyticsSession:
    """A session of an analytics participant (SDK ``AnalyticsSession``).

    :ivar session_id: the communication id (what ``transcripturl`` is asked for).
    :ivar media_type: ``voice``, ``callback``, ``chat``, ``email``, ``message`` …
    """

    session_id: str | None = None
    media_type: str | None = None
    message_type: str | None = None
    direction: str | None = None
    segments: tuple[AnalyticsSegment, ...] = ()


@attrs.frozen
class AnalyticsParticipant:
    """A participant of an analytics conversation (SDK ``AnalyticsParticipantWithoutAttributes``)."""

    participant_id: str | None = None
    purpose: str | None = None
    sessions: tuple[AnalyticsSession, ...] = ()


@attrs.frozen
class AnalyticsConversation:
    """One row of the details query, or ``GET …/analytics/conversations/{id}/details``
    (SDK ``AnalyticsConversationWithoutAttributes``)."""

    conversation_id: str
    conversation_start: datetime | None = None
    conversation_end: datetime | None = None
    originating_direction: str | None = None
    participants: tuple[AnalyticsParticipant, ...] = ()

    def voice_sessions(self) -> tuple[str, ...]:
        """Session ids of the customer's and agents' voice sessions, the customer's first."""
        ordered = sorted(self.participants, key=lambda p: p.purpose != "customer")
        return tuple(
            dict.fromkeys(
                s.session_id
                for p in ordered
                if p.purpose in ("customer", "agent")
                for s in p.sessions
                if s.session_id and (s.media_type or "voice") == "voice"
            )
        )


@attrs.frozen
class AnalyticsQueryResponse:
    """A page of ``POST /api/v2/analytics/conversations/details/query``
    (SDK ``AnalyticsConversationQueryResponse``)."""

    conversations: tuple[AnalyticsConversation, ...] = ()
    total_hits: int | None = None


@attrs.frozen
class TranscriptUrl:
    """``GET …/communications/{id}/transcripturl`` (SDK ``TranscriptUrl``): a pre-signed URL."""

    url: str | None = None


@attrs.frozen
class Milliseconds:
    """``duration`` / ``offset`` of the post-call transcript: ``{"milliseconds": n}``."""

    milliseconds: int | None = attrs.field(default=None, validator=_DURATION_MS)


@attrs.frozen
class PhraseWord:
    """A word of a post-call transcript phrase."""

    word: str | None = None
    confidence: float | None = None


@attrs.frozen
class Phrase:
    """A phrase of the post-call transcript (reference §6.2; no SDK model).

    :ivar participant_purpose: ``internal`` (agent) or ``external`` (customer).
    """

    phrase_index: int | None = None
    participant_purpose: str | None = None
    text: str | None = None
    decorated_text: str | None = None
    confidence: float | None = None
    start_time_ms: int | None = attrs.field(default=None, validator=_EPOCH_MS)
    duration: Milliseconds | None = None
    words: tuple[PhraseWord, ...] = ()


@attrs.frozen
class PostCallPart:
    """One ``transcripts[]`` entry of the post-call transcript."""

    transcript_id: str | None = None
    language: str | None = None
    phrases: tuple[Phrase, ...] = ()


@attrs.frozen
class PostCallTranscript:
    """The post-call transcript JSON behind ``transcripturl`` (reference §6.2; no SDK model).

    :ivar conversation_start_time: epoch ms; phrase offsets count from it.
    """

    conversation_id: str | None = None
    communication_id: str | None = None
    conversation_start_time: int | None = attrs.field(default=None, validator=_EPOCH_MS)
    transcripts: tuple[PostCallPart, ...] = ()
