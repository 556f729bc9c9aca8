"""Applying redaction rules to a transcript document, and checking the result.

A rule finds spans (findings) in a text; the rule set merges overlapping findings and
replaces each with its entity type in brackets (the ``replace`` operator):
``"my card is 4111 1111 1111 1111"`` → ``"my card is [CREDIT_CARD]"``. Words are
redacted on the text they spell when joined with spaces, so a value spoken over several
words is caught and every word of it is replaced.

After redaction every rule re-scans the redacted document (the verification gate); any
residual finding, or any rule that raises, fails the transcript closed with
:class:`~indexer.errors.RedactionFailed`, whose message names rule ids, never values.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from indexer.document import DocUtterance, RedactionSummary, TranscriptDocument
from indexer.errors import RedactionFailed

__all__ = ["Finding", "RedactionRule", "RuleSet", "join_text"]


@attrs.frozen
class Finding:
    """A span of PII: ``text[start:end]`` is a value of ``entity_type`` found by ``rule_id``."""

    start: int
    end: int
    entity_type: str
    rule_id: str


@runtime_checkable
class RedactionRule(Protocol):
    """What ``transcript_indexer_redaction_rules`` contributes.

    :ivar id: stable, unique rule id, e.g. ``pii.credit_card``; used in audits and errors.
    :ivar entity_type: upper-case entity type, e.g. ``CREDIT_CARD``; the replacement text.
    :ivar version: changes whenever what the rule matches changes.
    """

    @property
    def id(self) -> str: ...

    @property
    def entity_type(self) -> str: ...

    @property
    def version(self) -> str: ...

    def find(self, text: str) -> Iterable[Finding]:
        """Every finding in ``text``; offsets are character offsets into ``text``."""
        ...


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order; of overlapping ones the earliest-longest wins."""
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            if finding.end > last.end:
                merged[-1] = attrs.evolve(last, end=finding.end)
            continue
        merged.append(finding)
    return merged


@attrs.frozen
class RuleSet:
    """The rules of every plugin, applied together."""

    rules: tuple[RedactionRule, ...]

    @property
    def version(self) -> str:
        """12 hex digits identifying the rule ids and versions in this set."""
        key = "\n".join(sorted(f"{rule.id}@{rule.version}" for rule in self.rules))
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def findings(self, text: str) -> list[Finding]:
        """Merged findings of every rule in ``text``.

        :raises RedactionFailed: a rule raised; the message names the rule.
        """
        found: list[Finding] = []
        for rule in self.rules:
            try:
                found.extend(rule.find(text))
            except Exception as exc:
                raise RedactionFailed(f"rule {rule.id} raised {type(exc).__name__}") from exc
        return _merge(found)

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every finding replaced by ``[ENTITY_TYPE]``, and the findings."""
        found = self.findings(text)
        parts, position = [], 0
        for finding in found:
            parts += [text[position : finding.start], f"[{finding.entity_type}]"]
            position = finding.end
        parts.append(text[position:])
        return "".join(parts), found

    def redact_words(self, words: Sequence[str]) -> tuple[list[str], list[Finding]]:
        """Each word that overlaps a finding in the space-joined words becomes ``[ENTITY_TYPE]``."""
        joined = " ".join(words)
        found = self.findings(joined)
        if not found:
            return list(words), []
        result, start = [], 0
        for word in words:
            end = start + len(word)
            hit = next((f for f in found if f.start < end and start < f.end), None)
            result.append(f"[{hit.entity_type}]" if hit else word)
            start = end + 1
        return result, found

    def redact(self, document: TranscriptDocument) -> TranscriptDocument:
        """The document with every utterance text and word redacted, and a redaction summary.

        ``document.text`` is rebuilt from the redacted utterances.

        :raises RedactionFailed: a rule raised, or the re-scan still finds PII.
        """
        counts: Counter[str] = Counter()
        utterances = []
        for utterance in document.utterances:
            text, text_found = self.redact_text(utterance.text)
            words, word_found = self.redact_words([w.word for w in utterance.words])
            per_type = Counter(f.entity_type for f in text_found)
            per_type |= Counter(f.entity_type for f in word_found)  # max of the two views
            counts.update(per_type)
            utterances.append(
                attrs.evolve(
                    utterance,
                    text=text,
                    words=tuple(
                        attrs.evolve(w, word=new) if new != w.word else w
                        for w, new in zip(utterance.words, words, strict=True)
                    ),
                )
            )
        redacted = attrs.evolve(
            document,
            utterances=tuple(utterances),
            text=join_text(utterances),
            redaction=RedactionSummary(rule_set_version=self.version, counts=dict(sorted(counts.items()))),
        )
        self.verify(redacted)
        return redacted

    def verify(self, document: TranscriptDocument) -> None:
        """Re-scan every text field of ``document`` with every rule.

        :raises RedactionFailed: naming the rules that still find something.
        """
        residual: set[str] = set()
        for utterance in document.utterances:
            for text in (utterance.text, " ".join(w.word for w in utterance.words)):
                residual.update(f.rule_id for f in self.findings(text))
        residual.update(f.rule_id for f in self.findings(document.text))
        if residual:
            raise RedactionFailed(f"verification re-scan still matches rules: {', '.join(sorted(residual))}")


def join_text(utterances: Iterable[DocUtterance]) -> str:
    """The whole transcript for simple search: utterance texts, one per line, in order."""
    return "\n".join(u.text for u in utterances)
