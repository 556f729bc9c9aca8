"""Plugins' redaction runs off the event loop, in worker processes, with a time limit.

A rule is code a compliance team wrote: it may be slow, hang, return junk, or raise
``KeyboardInterrupt``/``SystemExit``. None of that may stall the sockets, heartbeats and
health endpoints of the worker, or stop other conversations. So :meth:`Pipeline.finalize`
(validators, redaction, verification) runs in worker processes (``trio-parallel``; the
work also spreads over every core), each loaded once with the pipeline, and every
conversation gets ``redaction.time_limit_s``: past it the process is killed and the
conversation is quarantined (``redaction_failed``, the reason says it timed out); a
process that dies is replaced.

The pipeline is sent to the processes pickled. When a plugin's rules cannot be pickled
(a lambda, say), the worker says so at start-up and runs redaction in threads instead:
still off the event loop and under the time limit (a thread that does not stop is left
behind), without the kill.
"""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio
import trio_parallel

from indexer.document import DocUtterance, RedactionSummary, TranscriptDocument
from indexer.errors import RedactionFailed
from indexer.pipeline import Pipeline
from indexer.redaction import turns_document

__all__ = ["DEFAULT_TIME_LIMIT_S", "Finalizer", "open_finalizer"]

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT_S: Final = 120.0
#: Time limit of one live utterance's redaction, in s (at most ``redaction.time_limit_s``).
LIVE_TIME_LIMIT_S: Final = 10.0
#: How long an idle worker process waits for work before it exits, in s.
IDLE_TIMEOUT_S: Final = 600.0

_PIPELINE: Pipeline | None = None  # in a worker process: the pipeline it was loaded with


def _load(pipeline: bytes) -> None:
    global _PIPELINE
    _PIPELINE = pickle.loads(pipeline)


def _finalize(document: TranscriptDocument, pipeline: Pipeline | None = None) -> TranscriptDocument:
    """:meth:`Pipeline.finalize` in a worker; a plugin's ``KeyboardInterrupt`` or
    ``SystemExit`` fails this conversation, not the worker."""
    pipeline = pipeline or _PIPELINE
    if pipeline is None:
        raise RedactionFailed("the redaction worker was not loaded")
    try:
        return pipeline.finalize(document)
    except (KeyboardInterrupt, SystemExit) as exc:
        raise RedactionFailed(f"a plugin raised {type(exc).__name__}") from None


@attrs.frozen
class _Changes:
    """What finalizing changed in a document, sent back from a worker process instead of
    the whole document (the utterances and words redaction left alone were half the cost
    of sending, 0.2 ms a document on each side).

    :ivar utterances: ``(index, redacted utterance)`` of each utterance redaction changed.
    """

    utterances: tuple[tuple[int, DocUtterance], ...]
    text: str
    redaction: RedactionSummary | None


def _finalize_changes(document: TranscriptDocument) -> _Changes:
    """:func:`_finalize` in a worker process, as the :class:`_Changes` to ``document``."""
    finished = _finalize(document)
    if len(finished.utterances) != len(document.utterances):
        raise RedactionFailed("redaction added or dropped utterances")
    changed = tuple(
        (index, after)
        for index, (before, after) in enumerate(zip(document.utterances, finished.utterances, strict=True))
        if after != before
    )
    return _Changes(changed, finished.text, finished.redaction)


def _apply(document: TranscriptDocument, changes: _Changes) -> TranscriptDocument:
    utterances = list(document.utterances)
    for index, utterance in changes.utterances:
        utterances[index] = utterance
    return attrs.evolve(
        document, utterances=tuple(utterances), text=changes.text, redaction=changes.redaction
    )


def _redact_live(
    context: Sequence[tuple[str, str]], speaker: str, text: str, pipeline: Pipeline | None = None
) -> str:
    """The redacted text of one live utterance: the rules over it and the ``context``
    utterances before it (``(speaker, text)``), as for a transcript, verified."""
    pipeline = pipeline or _PIPELINE
    if pipeline is None:
        raise RedactionFailed("the redaction worker was not loaded")
    try:
        document = pipeline.rules.redact(turns_document("live", [*context, (speaker, text)]))
    except (KeyboardInterrupt, SystemExit) as exc:
        raise RedactionFailed(f"a plugin raised {type(exc).__name__}") from None
    return document.utterances[-1].text


class Finalizer:
    """Runs :meth:`Pipeline.finalize` off the event loop; see the module docstring."""

    def __init__(
        self,
        pipeline: Pipeline,
        context: trio_parallel.WorkerContext | None,
        time_limit_s: float,
    ) -> None:
        self.pipeline = pipeline
        self._context = context
        self.time_limit_s = time_limit_s
        #: Conversations worth finalizing at once: one per worker process (trio-parallel
        #: starts one per core); in threads, one (the GIL runs one at a time).
        self.concurrency = trio_parallel.current_default_worker_limiter().total_tokens if context else 1

    async def finalize(self, document: TranscriptDocument) -> TranscriptDocument:
        """The finalized document.

        :raises ValidationFailed: a validator reported problems.
        :raises RedactionFailed: a rule raised, returned junk or left PII behind, the
            time limit passed, or the worker process died.
        """
        with trio.move_on_after(self.time_limit_s):
            try:
                if self._context is not None:
                    changes: _Changes = await self._context.run_sync(
                        _finalize_changes, document, kill_on_cancel=True
                    )
                    return _apply(document, changes)
                return await trio.to_thread.run_sync(
                    functools.partial(_finalize, document, self.pipeline), abandon_on_cancel=True
                )
            except trio_parallel.BrokenWorkerError:
                raise RedactionFailed("the redaction worker process died") from None
        raise RedactionFailed(
            f"redaction did not finish within {self.time_limit_s:g} s (redaction.time_limit_s)"
        )

    async def redact_live(self, context: Sequence[tuple[str, str]], speaker: str, text: str) -> str:
        """One live utterance redacted (:func:`_redact_live`) off the event loop, within
        :data:`LIVE_TIME_LIMIT_S`.

        :raises RedactionFailed: as :meth:`finalize`.
        """
        limit = min(self.time_limit_s, LIVE_TIME_LIMIT_S)
        with trio.move_on_after(limit):
            try:
                if self._context is not None:
                    redacted: str = await self._context.run_sync(
                        _redact_live, context, speaker, text, kill_on_cancel=True
                    )
                    return redacted
                return await trio.to_thread.run_sync(
                    functools.partial(_redact_live, context, speaker, text, self.pipeline),
                    abandon_on_cancel=True,
                )
            except trio_parallel.BrokenWorkerError:
                raise RedactionFailed("the redaction worker process died") from None
        raise RedactionFailed(f"live redaction did not finish within {limit:g} s")


@asynccontextmanager
async def open_finalizer(
    pipeline: Pipeline, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> AsyncIterator[Finalizer]:
    """A :class:`Finalizer` with its worker processes, stopped when the block ends."""
    try:
        loaded = pickle.dumps(pipeline)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        log.warning(
            "the redaction rules cannot be sent to worker processes (%s): redaction runs in threads",
            type(exc).__name__,
        )
        yield Finalizer(pipeline, None, time_limit_s)
        return
    async with trio_parallel.open_worker_context(
        init=functools.partial(_load, loaded), idle_timeout=IDLE_TIMEOUT_S, grace_period=5.0
    ) as context:
        yield Finalizer(pipeline, context, time_limit_s)
