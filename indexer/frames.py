"""What every source does with one received notification frame."""

from __future__ import annotations

import trio

from indexer.deadletter import DeadLetterStore
from indexer.errors import MalformedMessage, UnusedTopic
from indexer.models import Envelope
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from indexer.topics import topic_kind

__all__ = ["accept_frame"]


async def accept_frame(
    text: str,
    envelopes: trio.MemorySendChannel[Envelope],
    *,
    stats: Statistics,
    dead_letters: DeadLetterStore,
) -> Envelope | None:
    """Parse ``text``, count it by topic kind and pass conversation data downstream.

    Conversation and transcription envelopes are sent to ``envelopes``; a frame that
    does not parse is counted as ``malformed`` and dead-lettered with its reason.

    :returns: the envelope, or ``None`` for a malformed frame.
    """
    try:
        envelope = parse_envelope(text)
    except UnusedTopic as exc:
        stats.messages[exc.kind] += 1
        return None
    except MalformedMessage as exc:
        stats.messages["malformed"] += 1
        await dead_letters.add("malformed_message", exc.reason, text)
        return None
    kind = topic_kind(envelope.topic_name) or "unknown"
    stats.messages[kind] += 1
    if kind in ("conversation", "transcription"):
        await envelopes.send(envelope)
    return envelope
