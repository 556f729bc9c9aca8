"""The text of messaging, chat and email conversations, from the Platform API.

Digital conversations never produce transcription messages: the queue topic carries only
message ids and times (``QueueConversationEventTopicMessage.messages[]``, reference §5.5).
Once such a conversation has ended, its text is fetched and each message becomes one
utterance of the same document shape as a voice call's:

- messaging (SMS, web messaging, WhatsApp, open messaging): ``GET
  /api/v2/conversations/messages/{id}`` lists the message ids of every participant, and
  ``POST …/messages/bulk`` (at most 1,000 ids a call) returns them; entries without text
  are events (typing, presence, receipts). When that yields nothing (no permission, or
  the conversation is gone), the recordings' ``messagingTranscript`` is used;
- chat and email: ``GET /api/v2/conversations/{id}/recordings`` (``transcript`` for ACD
  chat, ``emailTranscript`` for email; the chat API itself is deprecated and needs the
  caller in the conversation).

Speakers: an agent's message is ``agent``, the customer's ``customer`` (from the
sender's ``purpose``, or the message ``direction``: inbound is the customer's). An email
utterance's text is its subject, a blank line and its plain-text body, so redaction
covers both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from indexer.document import DocUtterance
from indexer.genesys import GenesysClient
from indexer.models import ChatMessage, MessageData, Recording
from indexer.serialization import parse_time

__all__ = ["fetch_messages", "utterances_from_messages", "utterances_from_recordings"]

_AGENT_PURPOSES = frozenset({"agent", "user", "internal", "workflow", "bot", "acd"})
_CUSTOMER_PURPOSES = frozenset({"customer", "external", "client"})


def _speaker(purpose: str | None, direction: str | None = None) -> str:
    if purpose and purpose.lower() in _AGENT_PURPOSES:
        return "agent"
    if purpose and purpose.lower() in _CUSTOMER_PURPOSES:
        return "customer"
    if direction:
        return "customer" if direction.lower() == "inbound" else "agent"
    return "unknown"


def _chat_time(value: str | None) -> datetime | None:
    """``ChatMessage.utc`` is typed ``str``: ISO-8601, or epoch ms as digits."""
    if not value:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        return parse_time(value)
    except ValueError:
        return None


def _utterance(
    uid: str, conversation_id: str, speaker: str, text: str, at: datetime | None, started: datetime | None
) -> DocUtterance:
    offset = int((at - started).total_seconds() * 1000) if at and started else 0
    return DocUtterance(
        utterance_id=uid,
        communication_id=conversation_id,
        speaker=speaker,
        text=text,
        offset_ms=max(offset, 0),
        duration_ms=0,
        confidence=None,
        spoken_at=at,
    )


def _in_order(utterances: Iterable[DocUtterance]) -> list[DocUtterance]:
    unique = {u.utterance_id: u for u in utterances}
    return sorted(unique.values(), key=lambda u: (u.spoken_at or datetime.min.replace(tzinfo=UTC),))


def utterances_from_messages(
    conversation_id: str, messages: Iterable[MessageData], started: datetime | None = None
) -> list[DocUtterance]:
    """One utterance per message with text, in time order (events without text are left out)."""
    found = []
    for index, message in enumerate(messages):
        normalized = message.normalized_message
        text = (normalized.text if normalized else None) or message.text_body
        if not text or not text.strip():
            continue
        direction = message.direction or (normalized.direction if normalized else None)
        found.append(
            _utterance(
                message.id or f"{conversation_id}:message:{index}",
                conversation_id,
                _speaker(None, direction),
                text,
                message.timestamp,
                started,
            )
        )
    return _in_order(found)


def _chat_utterances(
    conversation_id: str, lines: Iterable[ChatMessage], started: datetime | None
) -> list[DocUtterance]:
    found = []
    for index, line in enumerate(lines):
        if not line.body or not line.body.strip() or (line.body_type or "standard").lower() != "standard":
            continue  # notices (member joined, typing) are not messages
        found.append(
            _utterance(
                line.id or f"{conversation_id}:chat:{index}",
                conversation_id,
                _speaker(line.participant_purpose),
                line.body,
                _chat_time(line.utc),
                started,
            )
        )
    return found


def utterances_from_recordings(
    conversation_id: str,
    recordings: Iterable[Recording],
    started: datetime | None = None,
    *,
    inbound: bool = True,
) -> list[DocUtterance]:
    """The messages, chat lines and emails of ``recordings`` as utterances, in time order.

    :param inbound: the conversation's direction (tells who wrote the first email).
    """
    found: list[DocUtterance] = []
    for recording in recordings:
        for index, message in enumerate(recording.messaging_transcript):
            if message.message_text and message.message_text.strip():
                found.append(
                    _utterance(
                        message.id or f"{conversation_id}:messaging:{index}",
                        conversation_id,
                        _speaker(message.purpose),
                        message.message_text,
                        message.timestamp,
                        started,
                    )
                )
        found += _chat_utterances(conversation_id, recording.transcript, started)
        emails = sorted(recording.email_transcript, key=lambda e: e.time or datetime.min.replace(tzinfo=UTC))
        # RecordingEmailMessage has no purpose: the first sender of an inbound email
        # conversation is the customer (of an outbound one, the agent); the rest reply.
        first_sender = next((e.from_.email for e in emails if e.from_ and e.from_.email), None)
        first, other = ("customer", "agent") if inbound else ("agent", "customer")
        for index, email in enumerate(emails):
            body = (email.text_body or "").strip()
            subject = (email.subject or "").strip()
            if not body and not subject:
                continue
            sender = email.from_.email if email.from_ else None
            found.append(
                _utterance(
                    email.id or f"{conversation_id}:email:{index}",
                    conversation_id,
                    "unknown" if sender is None else first if sender == first_sender else other,
                    f"{subject}\n\n{body}" if subject else body,
                    email.time,
                    started,
                )
            )
    return _in_order(found)


async def fetch_messages(
    client: GenesysClient,
    conversation_id: str,
    media_type: str,
    started: datetime | None = None,
    *,
    inbound: bool = True,
) -> list[DocUtterance] | None:
    """The utterances of an ended digital conversation, or ``None`` while none can be had yet.

    :param media_type: ``message``, ``chat`` or ``email`` (the document's ``media_type``).
    :param started: the conversation's start; offsets count from it.
    :param inbound: the conversation's direction.
    :raises GenesysError: a Platform API call failed after its retries (callers retry).
    """
    if media_type == "message":
        conversation = await client.messaging_conversation(conversation_id)
        if conversation is not None:
            ids = [m.message_id for p in conversation.participants for m in p.messages if m.message_id]
            if ids:
                found = utterances_from_messages(
                    conversation_id, await client.messages(conversation_id, ids), started
                )
                if found:
                    return found
    recordings = await client.recordings(conversation_id)
    if recordings is None:
        return None
    return utterances_from_recordings(conversation_id, recordings, started, inbound=inbound) or None
