"""Counters the worker keeps while it runs; logged at shutdown and readable by tests."""

from __future__ import annotations

from collections import Counter
from typing import Final

import attrs
from prometheus_client import Histogram

#: Buckets (s) of the hang-up-to-indexed latency: the grace period is 5 s by default, and
#: a target of grace + 2 s should fall between two bounds, not inside a wide bucket.
LATENCY_BUCKETS_S: Final = (
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
    90.0, 120.0, 300.0, 600.0, 1800.0,
)  # fmt: skip

#: Buckets (s) of the stream lag: a worker that keeps up reads a message well within a second.
LAG_BUCKETS_S: Final = (
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0,
    300.0, 600.0,
)  # fmt: skip

__all__ = ["Statistics"]


def _histogram(name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
    """A histogram ``transcript_indexer_<name>`` of its own (the metrics endpoint collects it
    from :class:`Statistics`, not from a registry)."""
    return Histogram(f"transcript_indexer_{name}", documentation, registry=None, buckets=buckets)


@attrs.define
class Statistics:
    """Counts since start-up. Mutated only from trio tasks of one run, so no locking.

    :ivar messages: received notifications by topic kind (``transcription``, ``conversation``,
        ``metadata``, ``system``, ``malformed``).
    :ivar completed: conversations closed, by completion reason.
    :ivar recovered: gap recovery: ``reconciled`` (post-call transcript used), ``missed``
        (conversation rebuilt that the stream never showed), ``unavailable`` (no post-call
        transcript came; the live one is indexed with ``complete: false``), ``failed`` (a
        conversation that could not be rebuilt), ``gap_unrecovered`` (the analytics query
        was refused, or the worker stopped before it answered).
    :ivar live_incomplete: voice conversations closed without the whole transcript from the
        stream, by why (:meth:`indexer.tracker.ConversationState.holes`: ``joined_late``,
        ``no_session``, ``gap``, ``not_ended``); recovery completes them.
    """

    messages: Counter[str] = attrs.field(factory=Counter)
    redactions: Counter[str] = attrs.field(factory=Counter)
    completed: Counter[str] = attrs.field(factory=Counter)
    recovered: Counter[str] = attrs.field(factory=Counter)
    live_incomplete: Counter[str] = attrs.field(factory=Counter)
    utterances: int = 0
    duplicate_utterances: int = 0
    #: Utterances with no text in any field (SDK-optional ``transcript`` and words absent).
    unusable_utterances: int = 0
    late_messages: int = 0
    limited_utterances: int = 0
    indexed: int = 0
    version_conflicts: int = 0
    dead_letters: int = 0
    subscriptions: int = 0
    reconnects: int = 0
    open_conversations: int = 0
    channels: int = 0
    waiting_for_room: int = 0
    handovers: int = 0
    sink_retries: int = 0
    #: Live view (:mod:`indexer.live`): utterances shown, dropped or not shown (a gap in
    #: their sequence), and exceptions raised by plugins' listeners.
    live_utterances: int = 0
    live_dropped: int = 0
    live_listener_errors: int = 0
    #: SQS source: messages received (a redelivered one counts again), and API requests.
    sqs_messages: int = 0
    sqs_requests: int = 0
    #: Replicas sharing a queue: conversations closed here without their end, left to
    #: the replica that saw it (``sqs.shared``).
    left_to_other_replicas: int = 0
    #: Where notifications come from: ``websocket`` or ``sqs`` (no sockets to be ready).
    source: str = "websocket"
    sink_requests: int = 0
    sink_items: int = 0
    sink_item_failures: int = 0
    #: The last write to every sink succeeded (or none was tried yet).
    sink_available: bool = True
    sockets_open: int = 0
    #: Base URL of the metrics and health endpoints, once they listen.
    http_url: str | None = None
    #: Seconds from a conversation's end (``ended_at``) to its document being in every sink,
    #: both on the Genesys service's clock (so an emulator's faster clock counts alike).
    hangup_to_indexed: Histogram = attrs.field(
        factory=lambda: _histogram(
            "hangup_to_indexed_seconds",
            "Seconds from a conversation's end to its document being in every sink",
            LATENCY_BUCKETS_S,
        )
    )
    #: Seconds from a transcription message's ``eventTime`` to the detector applying it,
    #: on the service's clock: how far the worker runs behind the stream (live sources).
    stream_lag: Histogram = attrs.field(
        factory=lambda: _histogram(
            "stream_lag_seconds",
            "Seconds from a transcription message's eventTime to the worker applying it",
            LAG_BUCKETS_S,
        )
    )
    restored: int = 0
    reopened: int = 0
    #: Control before data (``completion.max_transcript_backlog``): transcription messages
    #: waiting to be tracked now, those not tracked because the backlog was full or their
    #: conversation was shed, and the conversations shed (followed no more; rebuilt from
    #: the post-call transcript).
    transcript_backlog: int = 0
    transcripts_shed: int = 0
    conversations_shed: int = 0

    def summary(self) -> dict[str, object]:
        """Plain data for a log line or ``--json`` output (counts only, never content)."""
        return {
            "messages": dict(self.messages),
            "completed": dict(self.completed),
            "recovered": dict(self.recovered),
            "live_incomplete": dict(self.live_incomplete),
            "utterances": self.utterances,
            "duplicate_utterances": self.duplicate_utterances,
            "unusable_utterances": self.unusable_utterances,
            "late_messages": self.late_messages,
            "limited_utterances": self.limited_utterances,
            "indexed": self.indexed,
            "version_conflicts": self.version_conflicts,
            "dead_letters": self.dead_letters,
            "reconnects": self.reconnects,
            "handovers": self.handovers,
            "sink_retries": self.sink_retries,
            "restored": self.restored,
            "left_to_other_replicas": self.left_to_other_replicas,
            "sqs_messages": self.sqs_messages,
            "sqs_requests": self.sqs_requests,
            "reopened": self.reopened,
            "transcripts_shed": self.transcripts_shed,
            "conversations_shed": self.conversations_shed,
        }
