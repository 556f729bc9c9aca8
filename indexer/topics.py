"""Notification topic names (reference §3.5, §4, §5.1).

Topic names carry concrete ids, never ``{id}``; these helpers build them and tell which
payload model a received topic carries.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CHANNEL_METADATA",
    "SOCKET_CLOSING",
    "conversation_id_of_transcription_topic",
    "queue_conversations_topic",
    "topic_kind",
    "transcription_topic",
]

CHANNEL_METADATA: Final = "channel.metadata"
SOCKET_CLOSING: Final = "v2.system.socket_closing"

_TRANSCRIPTION = re.compile(r"^v2\.conversations\.(?P<id>[^.]+)\.transcription$")
_CONVERSATIONS = re.compile(r"^v2\.(?:routing\.queues|users)\.[^.]+\.conversations(?:\.calls)?$")


def transcription_topic(conversation_id: str) -> str:
    """``v2.conversations.{conversationId}.transcription`` (reference §4)."""
    return f"v2.conversations.{conversation_id}.transcription"


def queue_conversations_topic(queue_id: str) -> str:
    """``v2.routing.queues.{queueId}.conversations`` (reference §5.1)."""
    return f"v2.routing.queues.{queue_id}.conversations"


def conversation_id_of_transcription_topic(topic: str) -> str | None:
    """The conversation id in a transcription topic, or ``None`` for any other topic."""
    match = _TRANSCRIPTION.match(topic)
    return match["id"] if match else None


def topic_kind(topic: str) -> str | None:
    """Classify a topic: ``metadata``, ``system``, ``transcription``, ``conversation``,
    ``detail`` (``v2.detail.events.conversation.{id}.<event>``, the analytics detail events
    an EventBridge rule may carry, reference §5.1) or ``None``."""
    if topic == CHANNEL_METADATA:
        return "metadata"
    if topic.startswith("v2.detail.events."):
        return "detail"
    if topic.startswith("v2.system."):
        return "system"
    if _TRANSCRIPTION.match(topic):
        return "transcription"
    if _CONVERSATIONS.match(topic):
        return "conversation"
    return None
