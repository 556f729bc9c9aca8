"""What every source does with one received notification frame, and what the WebSocket
source does when it is behind (:class:`Shedding`)."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any, Final

import attrs
import trio

from indexer.completion import Shed
from indexer.deadletter import DeadLetterStore
from indexer.errors import MalformedMessage, UnusedTopic
from indexer.models import Envelope
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from indexer.topics import topic_kind

__all__ = ["Shedding", "accept_frame"]

log = logging.getLogger(__name__)

#: Shed conversations remembered (their later messages are dropped too).
SHED_MEMORY: Final = 100_000
#: Transcription frames waiting to be parsed, at most (about 3 KB each).
RAW_BUFFER: Final = 4096
#: While shedding, a warning at most this often (s), with the count since the last one.
LOG_EVERY_S: Final = 60.0
#: The conversation id in a transcription frame's topic name, read without parsing it.
_TRANSCRIPTION_TOPIC: Final = re.compile(r'"topicName"\s*:\s*"v2\.conversations\.([^".]+)\.transcription"')


@attrs.define
class Shedding:
    """Control before data, for a source that cannot slow its sender (the WebSocket).

    The socket readers hand transcription frames, unparsed, to a queue of
    :data:`RAW_BUFFER` frames that :meth:`parse` works off; conversation events and the
    rest are parsed by the readers at once. Reading a frame costs a fraction of parsing
    it, so the readers keep up with the socket, and conversation events (hence
    subscriptions) are never stuck behind transcripts. When the queue is full, the worker
    is behind: the frame's conversation is shed. The detector is told once
    (:class:`~indexer.completion.Shed`), its later transcription frames are dropped
    unparsed (counted ``messages{kind="shed"}``), and recovery completes it from its
    post-call transcript, as after a gap.
    """

    envelopes: trio.MemorySendChannel[Any]
    stats: Statistics
    dead_letters: DeadLetterStore
    raw_buffer: int = RAW_BUFFER
    conversations: OrderedDict[str, None] = attrs.field(factory=OrderedDict)
    _raw: tuple[trio.MemorySendChannel[str], trio.MemoryReceiveChannel[str]] = attrs.field(init=False)
    _logged_at: float | None = None
    _unlogged: int = 0

    def __attrs_post_init__(self) -> None:
        self._raw = trio.open_memory_channel[str](self.raw_buffer)

    async def offer(self, text: str) -> bool:
        """Take ``text`` if it is a transcription frame (queued, or dropped for a shed
        conversation); whether it did. Anything else is for :func:`accept_frame`."""
        found = _TRANSCRIPTION_TOPIC.search(text, 0, 400)
        if found is None:
            return False
        conversation_id = found.group(1)
        if conversation_id in self.conversations:
            self.stats.messages["shed"] += 1
            return True
        try:
            self._raw[0].send_nowait(text)
            return True
        except trio.WouldBlock:
            pass
        self.conversations[conversation_id] = None
        while len(self.conversations) > SHED_MEMORY:
            self.conversations.popitem(last=False)
        self.stats.messages["shed"] += 1
        self.stats.shed_conversations += 1
        self._unlogged += 1
        now = trio.current_time()
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "behind: %d conversations go on without their live transcript (from the post-call "
                "transcript instead); add CPU or a replica",
                self._unlogged,
            )
            self._logged_at, self._unlogged = now, 0
        await self.envelopes.send(Shed(conversation_id))
        return True

    async def parse(self) -> None:
        """Parse the queued transcription frames into the detector's input, until cancelled;
        then those still queued (at most 5 s): what was read is applied, not lost."""
        try:
            async for text in self._raw[1]:
                await self._accept(text)
        finally:
            with trio.move_on_after(5, shield=True):
                while True:
                    try:
                        text = self._raw[1].receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    await self._accept(text)

    async def _accept(self, text: str) -> None:
        await accept_frame(text, self.envelopes, stats=self.stats, dead_letters=self.dead_letters)


async def accept_frame(
    text: str,
    envelopes: trio.MemorySendChannel[Any],
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
