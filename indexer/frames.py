"""What every source does with one received notification frame, and what the WebSocket
source does when it is behind (:class:`Shedding`)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Final

import attrs
import trio

from indexer.completion import Shed
from indexer.deadletter import DeadLetterStore
from indexer.errors import MalformedMessage, UnusedTopic
from indexer.models import Envelope, TranscriptionMessage
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from indexer.topics import topic_kind

__all__ = ["Shedding", "accept_frame"]

log = logging.getLogger(__name__)

#: Shed conversations remembered (their later messages are dropped too).
SHED_MEMORY: Final = 100_000
#: How long (s) the detector's input must stay three quarters full before shedding.
BEHIND_FOR_S: Final = 10.0
#: While shedding, a warning at most this often (s), with the count since the last one.
LOG_EVERY_S: Final = 60.0


@attrs.define
class Shedding:
    """Control before data, for a source that cannot slow its sender (the WebSocket).

    When the detector's input has held ``threshold`` items or more for
    :data:`BEHIND_FOR_S`, the detector is behind: a transcription message is not passed
    on, and its conversation is shed: the detector is
    told once (:class:`~indexer.completion.Shed`), the conversation's later transcription
    messages are dropped too (counted ``messages{kind="shed"}``), and it is completed from
    its post-call transcript by recovery, as after a gap. Conversation events always pass
    (the rest of the input's room is theirs), so new conversations are still seen and
    subscribed, and the lag stays bounded by the input's size.
    """

    threshold: int
    conversations: OrderedDict[str, None] = attrs.field(factory=OrderedDict)
    _behind_since: float | None = None
    _logged_at: float | None = None
    _unlogged: int = 0

    def _behind(self, envelopes: trio.MemorySendChannel[Any]) -> bool:
        """The input has held ``threshold`` items or more for :data:`BEHIND_FOR_S` (a burst
        that the detector works off is no reason to shed)."""
        now = trio.current_time()
        if envelopes.statistics().current_buffer_used < self.threshold:
            self._behind_since = None
            return False
        if self._behind_since is None:
            self._behind_since = now
        return now - self._behind_since >= BEHIND_FOR_S

    async def send(
        self, envelope: Envelope, envelopes: trio.MemorySendChannel[Any], stats: Statistics
    ) -> None:
        """Pass ``envelope`` on, or shed its conversation, as the class says."""
        body = envelope.event_body
        if not isinstance(body, TranscriptionMessage):
            await envelopes.send(envelope)
            return
        conversation_id = body.conversation_id
        if conversation_id in self.conversations:
            stats.messages["shed"] += 1
            return
        if not self._behind(envelopes):
            await envelopes.send(envelope)
            return
        self.conversations[conversation_id] = None
        while len(self.conversations) > SHED_MEMORY:
            self.conversations.popitem(last=False)
        stats.messages["shed"] += 1
        stats.shed_conversations += 1
        self._unlogged += 1
        now = trio.current_time()
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "behind: %d conversations go on without their live transcript (from the post-call "
                "transcript instead); add CPU or a replica",
                self._unlogged,
            )
            self._logged_at, self._unlogged = now, 0
        await envelopes.send(Shed(conversation_id))


async def accept_frame(
    text: str,
    envelopes: trio.MemorySendChannel[Any],
    *,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    shedding: Shedding | None = None,
) -> Envelope | None:
    """Parse ``text``, count it by topic kind and pass conversation data downstream.

    Conversation and transcription envelopes are sent to ``envelopes`` (through
    ``shedding`` when given); a frame that does not parse is counted as ``malformed`` and
    dead-lettered with its reason.

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
        if shedding is not None:
            await shedding.send(envelope, envelopes, stats)
        else:
            await envelopes.send(envelope)
    return envelope
