"""The loaded redaction rules run over sample text: ``transcript-indexer plugins check``.

Each input line is one sample: plain text (one customer utterance), or a conversation of
the emulator's corpus format (``{"turns": [{"speaker": ..., "text": ...}, ...]}``; a line
starting with ``{`` that is not one is reported as malformed, not taken as text), whose
turns become the utterances of one transcript, each speaker's turns one passage, as the
worker scans them. The sample is redacted exactly as the worker redacts a transcript
(texts and words, the configured operators), then re-scanned by the verification gate.
Results name rules, entity types, offsets and operators; never a value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from indexer.document import AuditEntry, TranscriptDocument
from indexer.emulator.corpus import CorpusConversation
from indexer.errors import MalformedMessage, RedactionFailed, ResidualPII
from indexer.redaction import RuleSet, turns_document
from indexer.serialization import structure

__all__ = ["SampleResult", "check_samples", "format_result", "format_summary"]

#: Milliseconds between a sample's turns: well inside one passage (PASSAGE_GAP_MS).
_TURN_MS = 1_000


@attrs.frozen
class SampleResult:
    """What the rules did to one input line.

    :ivar line: 1-based line number in the input.
    :ivar speakers: the speaker of each utterance.
    :ivar redacted: each utterance's text after redaction.
    :ivar findings: the audit entries (``utterance_id`` is ``<line>.<utterance index>``).
    :ivar residual: rule ids the verification re-scan still matches (the worker would
        quarantine this transcript).
    :ivar error: a rule raised (the worker would dead-letter the transcript), or the line
        is a malformed corpus conversation.
    """

    line: int
    speakers: tuple[str, ...]
    redacted: tuple[str, ...]
    findings: tuple[AuditEntry, ...]
    residual: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Redacted and verified, as the worker would index it."""
        return not self.residual and self.error is None


def _turns(line: str) -> list[tuple[str, str]]:
    """``(speaker, text)`` of each turn: a corpus conversation's turns, or the line as one.

    :raises MalformedMessage: the line starts with ``{`` and is not a corpus conversation.
    """
    if line.lstrip().startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            raise MalformedMessage("not valid JSON") from None
        except RecursionError:
            raise MalformedMessage("JSON nested too deeply") from None
        conversation = structure(data, CorpusConversation, what="conversation")
        return [(turn.speaker, turn.text) for turn in conversation.turns]
    return [("customer", line)]


def _document(line: int, turns: list[tuple[str, str]]) -> TranscriptDocument:
    return turns_document(f"sample-{line}", turns, utterance_ids=f"{line}.")


def check_samples(lines: Iterable[str], rules: RuleSet) -> Iterator[SampleResult]:
    """Redact and verify each non-blank line of ``lines`` (see the module docs)."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            turns = _turns(line)
        except MalformedMessage as exc:
            yield SampleResult(
                number, (), (), (), error=f"malformed input line (a corpus conversation?): {exc}"
            )
            continue
        speakers = tuple(speaker for speaker, _ in turns)
        residual: tuple[str, ...] = ()
        try:
            redacted = rules.redact(_document(number, turns), verify=False)
            rules.verify(redacted)
        except ResidualPII as exc:  # raised by verify only: redacted is set
            residual = tuple(exc.rule_ids)
        except RedactionFailed as exc:  # a rule raised
            yield SampleResult(number, speakers, tuple(t for _, t in turns), (), error=str(exc))
            continue
        assert redacted.redaction is not None
        yield SampleResult(
            number,
            speakers,
            tuple(u.text for u in redacted.utterances),
            redacted.redaction.findings,
            residual,
        )


def format_result(result: SampleResult, *, as_json: bool = False) -> str:
    """One sample for people (its text findings and redacted utterances) or as a JSON line."""
    if as_json:
        data: dict[str, Any] = {
            "line": result.line,
            "ok": result.ok,
            "findings": [attrs.asdict(f) for f in result.findings],
            "redacted": [
                {"speaker": s, "text": t} for s, t in zip(result.speakers, result.redacted, strict=True)
            ],
            "residual": list(result.residual),
            "error": result.error,
        }
        return json.dumps(data)
    if result.error is not None:
        return f"line {result.line}: FAILED: {result.error}"
    in_text = [f for f in result.findings if f.field == "text"]
    lines = [f"line {result.line}: {len(in_text)} finding{'s' * (len(in_text) != 1)}"]
    lines += [
        f"  {f.rule_id}  {f.entity_type}  utterance {f.utterance_id.split('.')[1]}"
        f"  chars {f.start}-{f.end}  {f.operator}"
        for f in in_text
    ]
    touched = {f.utterance_id for f in result.findings}
    for index, (speaker, text) in enumerate(zip(result.speakers, result.redacted, strict=True)):
        if len(result.redacted) == 1 or f"{result.line}.{index}" in touched:
            lines.append(f"  {speaker}: {text}")
    if result.residual:
        lines.append(f"  RESIDUAL after redaction (would be quarantined): {', '.join(result.residual)}")
    return "\n".join(lines)


def format_summary(results: Iterable[SampleResult], rules: RuleSet) -> str:
    """Samples, findings per entity type, failures and the rule set checked."""
    results = list(results)
    counts = Counter(f.entity_type for r in results for f in r.findings if f.field == "text")
    failed = sum(not r.ok for r in results)
    per_type = ", ".join(f"{t} {n}" for t, n in sorted(counts.items())) or "none"
    return (
        f"{len(results)} samples, {sum(counts.values())} findings ({per_type}), "
        f"{failed} failed; rule set {rules.version}: {len(rules.rules)} rules"
    )
