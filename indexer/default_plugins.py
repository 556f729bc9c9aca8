"""The core's own plugin: registered like any other, after the installed ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from indexer.config import Config
from indexer.document import TranscriptDocument
from indexer.hookspecs import hookimpl
from indexer.pipeline import Validator


@attrs.frozen
class StructureValidator:
    """Checks what the tracker promises: known speakers, spoken order, consistent times."""

    name: str = "core.structure"

    def validate(self, document: TranscriptDocument) -> Sequence[str]:
        """Problems with the document's structure (never its text)."""
        problems = []
        if any(u.speaker not in ("agent", "customer", "unknown") for u in document.utterances):
            problems.append("an utterance has an unknown speaker value")
        keys = [(u.spoken_at, u.offset_ms) for u in document.utterances if u.spoken_at is not None]
        if keys != sorted(keys):
            problems.append("utterances are not in spoken order")
        if document.started_at and document.ended_at and document.ended_at < document.started_at:
            problems.append("ended_at is before started_at")
        return problems


@hookimpl(trylast=True)
def transcript_indexer_validators(config: Config) -> Iterable[Validator]:
    """The structure validator, always on."""
    return [StructureValidator()]
