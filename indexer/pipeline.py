"""Finishing a transcript: validators, redaction, verification; then writing to sinks.

The indexing task :func:`index_transcripts` is the consumer end of the flow. It reads
unredacted documents, runs :meth:`Pipeline.finalize` on each (a failure sends the
transcript to the dead-letter store, never to a sink), collects redacted documents into
batches and writes each batch to every sink.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs
import trio

from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import RedactionFailed, SinkError
from indexer.redaction import RuleSet
from indexer.serialization import unstructure
from indexer.sinks import Sink
from indexer.stats import Statistics

__all__ = ["Pipeline", "ValidationFailed", "Validator", "index_transcripts"]

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


async def _write(
    batch: list[TranscriptDocument], sinks: Sequence[Sink], dead_letters: DeadLetterStore, stats: Statistics
) -> None:
    rejected: dict[str, str] = {}
    for sink in sinks:
        try:
            results = await sink.write(batch)
        except SinkError as exc:
            results = []
            rejected.update({d.conversation_id: f"{sink.name}: {exc}" for d in batch})
        for result in results:
            if result.error is not None:
                rejected[result.conversation_id] = f"{sink.name}: {result.error}"
            stats.version_conflicts += result.conflict
    for document in batch:
        reason = rejected.get(document.conversation_id)
        if reason is None:
            stats.indexed += 1
        else:
            await dead_letters.add(
                "sink_rejected", reason, unstructure(document), conversation_id=document.conversation_id
            )


async def index_transcripts(
    documents: trio.MemoryReceiveChannel[TranscriptDocument],
    pipeline: Pipeline,
    sinks: Sequence[Sink],
    dead_letters: DeadLetterStore,
    stats: Statistics,
    *,
    batch_size: int = 1000,
    flush_interval_s: float = 1.0,
) -> None:
    """Finalize each document and write batches to every sink until ``documents`` closes.

    A batch is written when it holds ``batch_size`` documents, or ``flush_interval_s``
    after its first document arrived, or when the channel closes.

    Cancellation: a batch being written is abandoned with the task; callers drain by
    closing the channel rather than cancelling.
    """
    batch: list[TranscriptDocument] = []
    deadline = math.inf
    async with documents:
        while True:
            closed = False
            with trio.move_on_at(deadline):
                try:
                    document = await documents.receive()
                except trio.EndOfChannel:
                    closed = True
                else:
                    try:
                        batch.append(pipeline.finalize(document))
                    except (ValidationFailed, RedactionFailed) as exc:
                        kind = (
                            "validation_failed" if isinstance(exc, ValidationFailed) else "redaction_failed"
                        )
                        log.warning("conversation %s not indexed: %s", document.conversation_id, kind)
                        await dead_letters.add(
                            kind, str(exc), unstructure(document), conversation_id=document.conversation_id
                        )
                    if len(batch) == 1:
                        deadline = trio.current_time() + flush_interval_s
            if batch and (closed or len(batch) >= batch_size or trio.current_time() >= deadline):
                await _write(batch, sinks, dead_letters, stats)
                batch, deadline = [], math.inf
            if closed:
                return
