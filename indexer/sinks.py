"""What an indexing sink is: the protocol plugins implement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from indexer.document import TranscriptDocument

__all__ = ["Sink", "WriteResult"]


@attrs.frozen
class WriteResult:
    """The outcome of writing one document.

    :ivar error: ``None`` when written (a version conflict with a newer copy counts as
        written); otherwise a one line, e.g. ``"400 mapper_parsing_exception"``.
    :ivar retry: the error is transient (429, 5xx for this item): the document stays in the
        outbox and is written again after a backoff. Otherwise the rejection is permanent
        and the document goes to the dead-letter store.
    """

    conversation_id: str
    error: str | None = None
    conflict: bool = False
    retry: bool = False

    @property
    def ok(self) -> bool:
        """Whether the document is in the sink (written now, or a newer version already was)."""
        return self.error is None


@runtime_checkable
class Sink(Protocol):
    """What ``transcript_indexer_sinks`` contributes.

    The worker calls :meth:`open` once, :meth:`write` for every batch, then
    :meth:`aclose`, all from its own trio tasks. A sink retries transient failures
    (429, 5xx, connection errors) itself and raises :class:`~indexer.errors.SinkError`
    only when it gives up. Blocking clients must run in ``trio.to_thread.run_sync``.
    """

    @property
    def name(self) -> str: ...

    async def open(self) -> None:
        """Prepare the destination (index template, alias); called once before any write.

        :raises indexer.errors.SinkError: the destination cannot be prepared now (it is
            unreachable): the worker starts all the same and reports itself not ready
            (``/readyz``) until a write succeeds; the sink prepares at its next write.
        """
        ...

    async def write(self, documents: Sequence[TranscriptDocument]) -> Sequence[WriteResult]:
        """Write a batch; one result per document, in any order.

        :raises indexer.errors.SinkError: the sink gave up after its retries.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
        ...
