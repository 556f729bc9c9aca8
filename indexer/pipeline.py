"""Finishing a transcript: validators, redaction, verification; then writing to sinks.

:func:`finalize_transcripts` reads unredacted documents, runs :meth:`Pipeline.finalize`
on each (a failure sends the transcript to the dead-letter store, never to a sink) and
stores the result in the durable outbox; :func:`deliver_transcripts` writes outbox
entries to every sink in batches and removes them once every sink has them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import attrs
import trio

from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import RedactionFailed, ResidualPII, SinkError
from indexer.live import LiveFeed, LiveUtterance
from indexer.outbox import Outbox
from indexer.redaction import RuleSet
from indexer.serialization import unstructure
from indexer.sinks import Sink
from indexer.stats import Statistics

__all__ = ["Pipeline", "ValidationFailed", "Validator", "deliver_transcripts", "finalize_transcripts"]

#: How long a batch for the sinks waits for more documents once it has one, in s: at
#: 100 conversations a second, one bulk request then carries about ten instead of one or two.
BULK_LINGER_S: Final = 0.1
#: Backoff between attempts to deliver a batch to a sink that gave up, in s.
RETRY_INITIAL_S: Final = 1.0
RETRY_MAX_S: Final = 60.0

log = logging.getLogger(__name__)


@runtime_checkable
class Validator(Protocol):
    """What ``transcript_indexer_validators`` contributes."""

    @property
    def name(self) -> str: ...

    def validate(self, document: TranscriptDocument) -> Sequence[str]:
        """Problems with ``document`` (unredacted), one line each; empty when it is fine.

        Problems must not quote transcript text.
        """
        ...


class ValidationFailed(Exception):
    """Raised by :meth:`Pipeline.finalize` with every validator's problems."""


@attrs.frozen
class Pipeline:
    """The validators and redaction rules contributed by plugins."""

    validators: tuple[Validator, ...]
    rules: RuleSet

    def finalize(self, document: TranscriptDocument) -> TranscriptDocument:
        """Validate, redact and verify ``document``.

        :raises ValidationFailed: a validator reported problems (or raised).
        :raises RedactionFailed: redaction raised or left PII behind.
        """
        problems: list[str] = []
        for validator in self.validators:
            try:
                problems += [f"{validator.name}: {p}" for p in validator.validate(document)]
            except Exception as exc:
                problems.append(f"{validator.name} raised {type(exc).__name__}")
        if problems:
            raise ValidationFailed("; ".join(problems))
        return self.rules.redact(document)


def _payload(document: TranscriptDocument) -> Any:
    """The document as JSON data for the dead-letter store (its id alone if even that fails)."""
    try:
        return unstructure(document)
    except Exception:
        return {"conversation_id": document.conversation_id}


async def _finalize_failed(
    document: TranscriptDocument, exc: Exception, dead_letters: DeadLetterStore
) -> None:
    log.error(
        "conversation %s not indexed: %s while finalizing",
        document.conversation_id,
        type(exc).__name__,
        extra={"conversation_id": document.conversation_id},
    )
    await dead_letters.add(
        "finalize_failed",
        f"{type(exc).__name__} while finalizing",
        _payload(document),
        conversation_id=document.conversation_id,
    )


async def finalize_transcripts(
    documents: trio.MemoryReceiveChannel[TranscriptDocument],
    finalize: Callable[[TranscriptDocument], Awaitable[TranscriptDocument]],
    outbox: Outbox,
    dead_letters: DeadLetterStore,
    stats: Statistics,
    *,
    concurrency: int = 1,
    live: LiveFeed | None = None,
) -> None:
    """Finalize each document and store it in the outbox, until ``documents`` closes.

    :param finalize: :meth:`Pipeline.finalize` run off the event loop
        (:meth:`indexer.isolation.Finalizer.finalize`).
    :param concurrency: documents finalized at once (the worker passes its number of
        redaction processes, so redaction uses every core). Documents may then reach the
        outbox out of order; the outbox keeps the newest version of a conversation.
    :param live: the live view, offered each message of a digital conversation once its
        finished (redacted) document is stored (their text comes at the end).

    A document that fails validation or redaction goes to the dead-letter store, never to
    the outbox. Resources: closes the outbox (no more documents) when it returns.
    """
    async with documents:
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(max(1, concurrency)):
                    nursery.start_soon(
                        _finalize_each, documents.clone(), finalize, outbox, dead_letters, stats, live
                    )
        finally:
            outbox.close()


async def _finalize_each(
    documents: trio.MemoryReceiveChannel[TranscriptDocument],
    finalize: Callable[[TranscriptDocument], Awaitable[TranscriptDocument]],
    outbox: Outbox,
    dead_letters: DeadLetterStore,
    stats: Statistics,
    live: LiveFeed | None,
) -> None:
    async with documents:
        async for document in documents:
            try:
                finished = await finalize(document)
            except (ValidationFailed, RedactionFailed) as exc:
                if isinstance(exc, ValidationFailed):
                    kind = "validation_failed"
                elif isinstance(exc, ResidualPII):
                    kind = "quarantined"  # redaction ran, and PII was still found
                else:
                    kind = "redaction_failed"
                log.warning(
                    "conversation %s not indexed: %s",
                    document.conversation_id,
                    kind,
                    extra={"conversation_id": document.conversation_id},
                )
                await dead_letters.add(
                    kind, str(exc), _payload(document), conversation_id=document.conversation_id
                )
                continue
            except Exception as exc:  # contained to this conversation
                await _finalize_failed(document, exc, dead_letters)
                continue
            if finished.redaction is not None:
                stats.redactions.update(finished.redaction.counts)
            try:
                await outbox.put(finished)
            except (ValueError, TypeError, OverflowError) as exc:  # it cannot be written as JSON
                await _finalize_failed(document, exc, dead_letters)
                continue
            if live is not None and finished.media_type != "voice":
                _offer_messages(live, finished)


def _offer_messages(live: LiveFeed, document: TranscriptDocument) -> None:
    """A finished digital conversation's messages (redacted) to the live view."""
    queues = tuple(q.name or q.id for q in document.queues)
    for utterance in document.utterances:
        event = LiveUtterance(
            conversation_id=document.conversation_id,
            sequence=0,
            utterance_id=utterance.utterance_id,
            speaker=utterance.speaker,
            text=utterance.text,
            media_type=document.media_type,
            queues=queues,
            offset_ms=utterance.offset_ms,
            spoken_at=utterance.spoken_at,
        )
        live.offer(event, redacted=True)


async def deliver_transcripts(
    outbox: Outbox,
    sinks: Sequence[Sink],
    dead_letters: DeadLetterStore,
    stats: Statistics,
    *,
    batch_size: int = 1000,
    service_now_ms: Callable[[], int] | None = None,
    give_up_after_s: float | None = None,
    linger_s: float = BULK_LINGER_S,
) -> None:
    """Write outbox entries to every sink in batches until the outbox is closed and empty.

    :param service_now_ms: the Genesys service's clock, epoch ms
        (:meth:`GenesysClient.server_now_ms`), on which a conversation's ``ended_at`` is
        read for the ``hangup_to_indexed_seconds`` histogram; ``None``: the local clock.
    :param give_up_after_s: stop when a sink has failed every batch for this long, in s
        (``replay``); ``None``: retry until cancelled (``run``).
    :param linger_s: how long a batch of fewer than ``batch_size`` waits for more
        documents, in s (:meth:`Outbox.next_batch`).
    :raises SinkError: with ``give_up_after_s``, naming the sink's error and how many
        transcripts wait in the outbox (they stay there for the next run).

    An entry leaves the outbox when every sink has it (a version conflict counts), or when
    a sink rejects it permanently (then it is dead-lettered with the sink's reason). When
    a sink gives up on a batch (an outage), the batch is retried after a backoff of
    ``RETRY_INITIAL_S`` doubling to ``RETRY_MAX_S``; entries stay on disk meanwhile. After
    a partial failure, only the items a sink marked ``retry`` stay, for the next batch after
    the same backoff.

    Cancellation: entries being written stay in the outbox and are delivered at the next start.
    """
    backoff = RETRY_INITIAL_S
    failing_since: float | None = None
    while batch := await outbox.next_batch(batch_size, linger_s=linger_s):
        rejected: dict[str, str] = {}
        again: set[str] = set()  # transient item errors: written again after the backoff
        failed: str | None = None
        for sink in sinks:
            stats.sink_requests += 1
            stats.sink_items += len(batch)
            try:
                results = await sink.write(batch)
            except SinkError as exc:
                failed = f"{sink.name}: {exc}"
                break
            stats.sink_item_failures += sum(not r.ok for r in results)
            for result in results:
                if result.error is not None and result.retry:
                    again.add(result.conversation_id)
                elif result.error is not None:
                    rejected[result.conversation_id] = f"{sink.name}: {result.error}"
                stats.version_conflicts += result.conflict
        stats.sink_available = failed is None
        if failed is None:
            failing_since = None
        elif failing_since is None:
            failing_since = trio.current_time()
        elif give_up_after_s is not None and trio.current_time() - failing_since >= give_up_after_s:
            raise SinkError(
                f"{failed}; gave up after {give_up_after_s:.0f} s: {outbox.usage().entries} "
                "transcripts wait in the outbox for the next run"
            )
        if failed is not None or again:
            stats.sink_retries += 1
            if failed is not None:
                log.warning("sink unavailable, %d documents wait in the outbox: %s", len(batch), failed)
                again = {d.conversation_id for d in batch}
            else:
                log.warning("%d documents not written (transient errors); retrying them", len(again))
        done = []
        for document in batch:
            if document.conversation_id in again:
                continue
            reason = rejected.get(document.conversation_id)
            if reason is None:
                stats.indexed += 1
                if document.ended_at is not None:
                    now_s = service_now_ms() / 1000 if service_now_ms is not None else time.time()
                    stats.hangup_to_indexed.observe(max(0.0, now_s - document.ended_at.timestamp()))
            else:
                await dead_letters.add(
                    "sink_rejected", reason, unstructure(document), conversation_id=document.conversation_id
                )
            done.append(document)
        await outbox.remove(*done)
        if again:
            await trio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)
        else:
            backoff = RETRY_INITIAL_S
