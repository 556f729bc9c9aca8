"""The live view: redacted utterances as they arrive, for ``watch`` and for plugins.

Supervisors follow calls as they happen (a transcript viewer, live captions), and a
plugin may want the same stream (an agent-assist dashboard). The detector offers each
new voice utterance here as it arrives, and each message of a digital conversation once
it is indexed (their text comes from the Platform API at the end, reference §10); the
feed redacts it and hands the :class:`LiveUtterance` to every listener plugins contribute
(``transcript_indexer_live_listeners``) and to every ``watch`` connected to
``GET /live`` (:mod:`indexer.monitoring`).

Nothing unredacted leaves the worker this way: a voice utterance is redacted off the
event loop, in the redaction worker processes, with the conversation's two utterances
before it as context (a value read out over several utterances is only whole in the
finished transcript, so every run of three or more digits, written or spoken in English,
is masked ``[NUMBER]`` besides); when that fails or times out, the utterance is not
shown. Each utterance has a sequence number per conversation (1, 2, …), so a number
missing (not shown, or dropped because a listener or watcher fell behind: the view is
best effort, the indexed transcript is the record) is a gap a reader can mark. With no
listener and no watcher, nothing is redacted or kept.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

import attrs
import trio

from indexer.stats import Statistics

__all__ = ["LiveFeed", "LiveListener", "LiveUtterance", "event_data", "format_event", "mask_numbers"]

log = logging.getLogger(__name__)

#: Utterances waiting for redaction; more are dropped (a gap in their sequence).
PENDING: Final = 1_000
#: Events waiting for one watcher; more are dropped for that watcher.
WATCHER_BUFFER: Final = 1_000
#: Utterances of a conversation kept (unredacted, in memory) as context for the next one.
CONTEXT_UTTERANCES: Final = 2
#: Conversations whose sequence and context are kept (least recently heard go first).
CONVERSATIONS_KEPT: Final = 20_000

_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
#: Three or more digits, with spaces, dots or dashes between; or three or more spoken digits.
_NUMBERS: Final = re.compile(
    rf"\d(?:[\s.\-]?\d){{2,}}|\b(?:{_DIGIT_WORDS})(?:[\s,-]+(?:{_DIGIT_WORDS})){{2,}}\b", re.IGNORECASE
)


def mask_numbers(text: str) -> str:
    """``text`` with every run of three or more digits, written or spoken, as ``[NUMBER]``."""
    return _NUMBERS.sub("[NUMBER]", text)


@attrs.frozen
class LiveUtterance:
    """One redacted utterance (voice) or message (digital) as it arrives.

    :ivar sequence: 1, 2, … per conversation in arrival order; a number missing is an
        utterance not shown (redaction failed, or a reader fell behind).
    :ivar offset_ms: from the start of its transcription session (voice) or of the
        conversation (digital), in ms.
    :ivar queues: names (ids when the name is unknown) of the conversation's queues so far.
    """

    conversation_id: str
    sequence: int
    utterance_id: str
    speaker: str
    text: str
    media_type: str
    queues: tuple[str, ...]
    offset_ms: int
    spoken_at: datetime | None = None


@runtime_checkable
class LiveListener(Protocol):
    """What ``transcript_indexer_live_listeners`` contributes."""

    @property
    def name(self) -> str: ...

    def on_utterance(self, utterance: LiveUtterance) -> None:
        """Called for each redacted utterance, in order, in a worker thread (never on the
        event loop); should return quickly. An exception is logged and counted, and the
        listener goes on receiving."""
        ...


@attrs.define
class _Pending:
    utterance: LiveUtterance  # text still unredacted
    context: tuple[tuple[str, str], ...]  # (speaker, text) of the utterances before it
    redacted: bool  # already redacted (a digital message from the finished document)


@attrs.define(eq=False)
class _Watcher:
    send: trio.MemorySendChannel[LiveUtterance]
    queue: str | None
    conversation_id: str | None

    def wants(self, event: LiveUtterance) -> bool:
        if self.conversation_id is not None and event.conversation_id != self.conversation_id:
            return False
        return self.queue is None or self.queue.casefold() in (q.casefold() for q in event.queues)


@attrs.define
class _Heard:
    sequence: int = 0
    context: tuple[tuple[str, str], ...] = ()


class LiveFeed:
    """Fan-out of redacted live utterances; see the module docstring.

    :param redact: ``(context, speaker, text) -> redacted text`` run off the event loop
        (:meth:`indexer.isolation.Finalizer.redact_live`).
    :raises: nothing: a failure is contained to its utterance or listener.
    """

    def __init__(
        self,
        listeners: Sequence[LiveListener],
        redact: Callable[[Sequence[tuple[str, str]], str, str], Awaitable[str]],
        stats: Statistics,
    ) -> None:
        self.listeners = tuple(listeners)
        self.redact = redact
        self.stats = stats
        self._watchers: set[_Watcher] = set()
        self._heard: OrderedDict[str, _Heard] = OrderedDict()
        self._send, self._receive = trio.open_memory_channel[_Pending](PENDING)

    def wanted(self) -> bool:
        """Anyone listens: a plugin's listener or a connected watcher."""
        return bool(self.listeners or self._watchers)

    def _next(self, conversation_id: str) -> _Heard:
        heard = self._heard.pop(conversation_id, None) or _Heard()
        self._heard[conversation_id] = heard
        while len(self._heard) > CONVERSATIONS_KEPT:
            self._heard.popitem(last=False)
        heard.sequence += 1
        return heard

    def offer(self, utterance: LiveUtterance, *, redacted: bool = False) -> None:
        """Take one utterance (its ``sequence`` is set here); never blocks: when the feed is
        behind, the utterance is dropped (a gap in its sequence). ``redacted``: its text
        went through the whole pipeline already (a digital message)."""
        if not self.wanted():
            return
        heard = self._next(utterance.conversation_id)
        pending = _Pending(attrs.evolve(utterance, sequence=heard.sequence), heard.context, redacted)
        if not redacted:
            heard.context = (*heard.context, (utterance.speaker, utterance.text))[-CONTEXT_UTTERANCES:]
        try:
            self._send.send_nowait(pending)
        except trio.WouldBlock:
            self.stats.live_dropped += 1

    async def run(self) -> None:
        """Redact what is offered and hand it on, until cancelled."""
        async for pending in self._receive:
            event = pending.utterance
            if not pending.redacted:
                try:
                    text = await self.redact(pending.context, event.speaker, event.text)
                except Exception as exc:  # fail closed: the utterance is not shown
                    log.warning(
                        "live view: an utterance of %s not shown (redaction failed: %s)",
                        event.conversation_id,
                        type(exc).__name__,
                        extra={"conversation_id": event.conversation_id},
                    )
                    self.stats.live_dropped += 1
                    continue
                event = attrs.evolve(event, text=mask_numbers(text))
            self.stats.live_utterances += 1
            for watcher in list(self._watchers):
                if watcher.wants(event):
                    try:
                        watcher.send.send_nowait(event)
                    except trio.WouldBlock:
                        self.stats.live_dropped += 1
            if self.listeners:
                await trio.to_thread.run_sync(self._tell_listeners, event)

    def _tell_listeners(self, event: LiveUtterance) -> None:
        for listener in self.listeners:
            try:
                listener.on_utterance(event)
            except Exception as exc:
                self.stats.live_listener_errors += 1
                log.warning("live listener %s raised %s", listener.name, type(exc).__name__)

    @asynccontextmanager
    async def watch(
        self, *, queue: str | None = None, conversation_id: str | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[LiveUtterance]]:
        """The events for one watcher (of one queue, in any case, or one conversation) while
        the block runs."""
        send, receive = trio.open_memory_channel[LiveUtterance](WATCHER_BUFFER)
        watcher = _Watcher(send, queue, conversation_id)
        self._watchers.add(watcher)
        try:
            yield receive
        finally:
            self._watchers.discard(watcher)
            send.close()


def event_data(event: LiveUtterance) -> dict[str, Any]:
    """``event`` as JSON data (``GET /live`` lines)."""
    data: dict[str, Any] = attrs.asdict(event)
    data["spoken_at"] = event.spoken_at.isoformat() if event.spoken_at else None
    data["queues"] = list(event.queues)
    return data


def format_event(data: dict[str, Any], shown: dict[str, int]) -> str:
    """One ``GET /live`` line for a terminal: time, conversation, queues, media, speaker and
    text; preceded by a line marking the utterances not shown since the last one of the
    conversation in ``shown`` (conversation → last sequence, updated here)."""
    conversation, sequence = data["conversation_id"], data["sequence"]
    missing = sequence - shown.get(conversation, sequence - 1) - 1
    shown[conversation] = sequence
    at = (data.get("spoken_at") or "")[11:19] or f"+{data['offset_ms'] // 1000}s"
    text = " / ".join(part.strip() for part in str(data["text"]).splitlines() if part.strip())
    line = (
        f"{at:>8}  {conversation}  {','.join(data['queues']) or '-'}  {data['media_type']}  "
        f"{data['speaker']}: {text}"
    )
    if missing > 0:
        return f"{'':>8}  {conversation}  ... {missing} utterance{'s' * (missing > 1)} not shown\n{line}"
    return line
