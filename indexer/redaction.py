"""Applying redaction rules to a transcript document, and checking the result.

A rule finds spans (findings) in a text; the rule set merges overlapping findings and
replaces each with what its **operator** makes of it:

=========  =======================================  ==========================
operator   ``4111 1111 1111 1111`` becomes           use
=========  =======================================  ==========================
mask       ``[CREDIT_CARD]``                         the default
partial    ``[CREDIT_CARD ****1111]``                last 4 characters kept (values
                                                     under 8 characters are masked)
hash       ``[CREDIT_CARD #kdofbhcaplnegjim]``       HMAC-SHA256 with a secret key of
                                                     the value's canonical form, as 16
                                                     letters: the same card links across
                                                     conversations, written or spoken
=========  =======================================  ==========================

Texts are scanned by **passage**: the utterances of one speaker in one communication,
each starting within ``PASSAGE_GAP_MS`` of the previous one's end (the other party may
speak in between), joined with spaces. A card number read out over two utterances is
found in the passage and redacted in both. Words are redacted on the text they spell
when joined with spaces, so a value spoken over several words is caught and every word
of it is replaced.

After redaction every rule re-scans the redacted document (the verification gate),
with the operators' own replacements blanked out; any residual finding, or any rule
that raises, fails the transcript closed with :class:`~indexer.errors.RedactionFailed`,
whose message names rule ids, never values. Each redacted span is recorded as an
:class:`~indexer.document.AuditEntry` (rule, entity type, utterance, offsets, operator).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

import attrs

from indexer.document import AuditEntry, DocUtterance, RedactionSummary, TranscriptDocument
from indexer.errors import RedactionFailed, ResidualPII

__all__ = [
    "OPERATORS",
    "PASSAGE_GAP_MS",
    "Finding",
    "Operators",
    "RedactionRule",
    "RuleSet",
    "canonical",
    "join_text",
    "passages",
]

#: The operators a rule's findings can be replaced with.
OPERATORS: Final = ("mask", "partial", "hash")
#: Utterances of one speaker this close (end to next start, ms) are scanned together.
PASSAGE_GAP_MS: Final = 15_000
#: Values shorter than this (alphanumeric characters) are masked, not partially masked.
PARTIAL_MIN_CHARS: Final = 8
#: What the operators write; the verification re-scan blanks these out first.
REPLACEMENT: Final = re.compile(r"\[[A-Z][A-Z0-9_]*(?: \*\*\*\*[0-9A-Za-z]{1,4}| #[a-p]{16})?\]")


@attrs.frozen
class Finding:
    """A span of PII: ``text[start:end]`` is a value of ``entity_type`` found by ``rule_id``.

    :ivar value: the value as the rule read it when that differs from the span's text
        (``"4111111111111111"`` for ``"four one one one ..."``); operators that keep part
        of a value or hash it use this. Never shown in ``repr``, so never in a log.
    """

    start: int
    end: int
    entity_type: str
    rule_id: str
    value: str | None = attrs.field(default=None, repr=False, eq=False)


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


def canonical(value: str) -> str:
    """The form a value is hashed in: lower case, letters, digits and ``@._+`` only.

    ``"4111 1111-1111 1111"`` and the spoken ``"4111111111111111"`` give the same form.
    """
    return "".join(ch for ch in value.lower() if ch.isalnum() or ch in "@._+")


_HEX_TO_LETTERS: Final = str.maketrans("0123456789", "ghijklmnop")


@attrs.frozen
class Operators:
    """Which operator replaces the findings of each rule (see the module docs).

    :ivar by_rule: rule id or entity type → operator name (:data:`OPERATORS`); a rule id
        wins over its entity type; anything else is masked.
    :ivar hmac_key: the secret of ``hash`` (``INDEXER_REDACTION_HMAC_KEY``).
    """

    by_rule: Mapping[str, str] = attrs.field(factory=dict)
    hmac_key: bytes | None = attrs.field(default=None, repr=False)

    def name_for(self, finding: Finding) -> str:
        """The operator for ``finding``."""
        return self.by_rule.get(finding.rule_id) or self.by_rule.get(finding.entity_type) or "mask"

    def replacement(self, finding: Finding, span: str) -> str:
        """What replaces ``finding``, whose text is ``span``."""
        operator = self.name_for(finding)
        value = canonical(finding.value if finding.value is not None else span)
        if operator == "hash" and self.hmac_key is not None:
            digest = hmac.new(self.hmac_key, value.encode(), hashlib.sha256).hexdigest()[:16]
            return f"[{finding.entity_type} #{digest.translate(_HEX_TO_LETTERS)}]"
        alnum = [ch for ch in value if ch.isalnum()]
        if operator == "partial" and len(alnum) >= PARTIAL_MIN_CHARS:
            return f"[{finding.entity_type} ****{''.join(alnum[-4:])}]"
        return f"[{finding.entity_type}]"


def passages(utterances: Sequence[DocUtterance]) -> list[list[int]]:
    """Indices of ``utterances`` grouped into passages (see the module docs), in order."""
    groups: list[list[int]] = []
    open_group: dict[tuple[str, str], int] = {}
    for index, utterance in enumerate(utterances):
        key = (utterance.speaker, utterance.communication_id)
        group = open_group.get(key)
        if group is not None:
            previous = utterances[groups[group][-1]]
            if utterance.offset_ms - (previous.offset_ms + previous.duration_ms) <= PASSAGE_GAP_MS:
                groups[group].append(index)
                continue
        open_group[key] = len(groups)
        groups.append([index])
    return groups


def _parts(findings: Sequence[Finding], lengths: Sequence[int]) -> list[list[tuple[int, int, Finding]]]:
    """Findings in texts of ``lengths`` joined by one space, as (start, end, finding) per text."""
    parts: list[list[tuple[int, int, Finding]]] = [[] for _ in lengths]
    offset = 0
    for k, length in enumerate(lengths):
        for finding in findings:
            start, end = max(finding.start, offset), min(finding.end, offset + length)
            if start < end:
                parts[k].append((start - offset, end - offset, finding))
        offset += length + 1
    return parts


def _word_hits(words: Sequence[str], found: Sequence[Finding]) -> list[Finding | None]:
    """Per word, the finding it overlaps in the space-joined words, or ``None``."""
    hits, start = [], 0
    for word in words:
        end = start + len(word)
        hits.append(next((f for f in found if f.start < end and start < f.end), None))
        start = end + 1
    return hits


def _blank_replacements(text: str) -> str:
    return REPLACEMENT.sub(lambda m: " " * len(m.group()), text)


@attrs.frozen
class RuleSet:
    """The rules of every plugin, applied together, and the operators that replace findings."""

    rules: tuple[RedactionRule, ...]
    operators: Operators = Operators()

    @property
    def version(self) -> str:
        """12 hex digits identifying the rule ids and versions and the operators in this set."""
        key = "\n".join(sorted(f"{rule.id}@{rule.version}" for rule in self.rules))
        key += "\n" + "\n".join(f"{k}={v}" for k, v in sorted(self.operators.by_rule.items()))
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

    def _replacement(self, finding: Finding, scanned: str) -> str:
        """What replaces ``finding``, found in the text ``scanned``."""
        return self.operators.replacement(finding, scanned[finding.start : finding.end])

    def _replace(self, text: str, spans: Sequence[tuple[int, int, Finding]], scanned: str) -> str:
        parts, position = [], 0
        for start, end, finding in sorted(spans, key=lambda s: s[0]):
            parts += [text[position:start], self._replacement(finding, scanned)]
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every finding replaced by its operator's output, and the findings."""
        found = self.findings(text)
        return self._replace(text, [(f.start, f.end, f) for f in found], text), found

    def redact_words(self, words: Sequence[str]) -> tuple[list[str], list[Finding]]:
        """Each word that overlaps a finding in the space-joined words is replaced."""
        joined = " ".join(words)
        found = self.findings(joined)
        if not found:
            return list(words), []
        hits = _word_hits(words, found)
        return [
            word if f is None else self._replacement(f, joined) for word, f in zip(words, hits, strict=True)
        ], found

    def redact(self, document: TranscriptDocument, *, verify: bool = True) -> TranscriptDocument:
        """The document with every utterance text and word redacted, and a redaction summary.

        ``document.text`` is rebuilt from the redacted utterances; the summary holds the
        counts per entity type and an audit entry per redacted span.

        :param verify: re-scan the result (:meth:`verify`); ``False`` only to inspect what
            a rule set does (``plugins check``), never before indexing.
        :raises RedactionFailed: a rule raised, or the re-scan still finds PII.
        """
        utterances = list(document.utterances)
        counts: Counter[str] = Counter()
        audit: list[AuditEntry] = []
        for group in passages(utterances):
            members = [utterances[i] for i in group]
            joined = " ".join(u.text for u in members)
            text_found = self.findings(joined)
            for index, utterance, spans in zip(
                group, members, _parts(text_found, [len(u.text) for u in members]), strict=True
            ):
                if spans:
                    utterances[index] = attrs.evolve(
                        utterance, text=self._replace(utterance.text, spans, joined)
                    )
                    audit += [self._entry(f, utterance, "text", s, e) for s, e, f in spans]
            word_lists = [[w.word for w in u.words] for u in members]
            all_words = [w for words in word_lists for w in words]
            word_found = self.findings(" ".join(all_words)) if all_words else []
            if word_found:
                audit += self._redact_words(utterances, group, word_lists, all_words, word_found)
            per_type = Counter(f.entity_type for f in text_found)
            per_type |= Counter(f.entity_type for f in word_found)  # max of the two views
            counts.update(per_type)
        redacted = attrs.evolve(
            document,
            utterances=tuple(utterances),
            text=join_text(utterances),
            redaction=RedactionSummary(
                rule_set_version=self.version, counts=dict(sorted(counts.items())), findings=tuple(audit)
            ),
        )
        if verify:
            self.verify(redacted)
        return redacted

    def _entry(
        self, finding: Finding, utterance: DocUtterance, field: str, start: int, end: int
    ) -> AuditEntry:
        return AuditEntry(
            rule_id=finding.rule_id,
            entity_type=finding.entity_type,
            utterance_id=utterance.utterance_id,
            field=field,
            start=start,
            end=end,
            operator=self.operators.name_for(finding),
        )

    def _redact_words(
        self,
        utterances: list[DocUtterance],
        group: Sequence[int],
        word_lists: Sequence[Sequence[str]],
        all_words: Sequence[str],
        found: Sequence[Finding],
    ) -> list[AuditEntry]:
        """Replace the words of ``group`` that overlap ``found``; their audit entries."""
        joined = " ".join(all_words)
        hits = _word_hits(all_words, found)
        audit: list[AuditEntry] = []
        position = 0
        for index, words in zip(group, word_lists, strict=True):
            utterance = utterances[index]
            mine = hits[position : position + len(words)]
            position += len(words)
            if not any(mine):
                continue
            utterances[index] = attrs.evolve(
                utterance,
                words=tuple(
                    word if f is None else attrs.evolve(word, word=self._replacement(f, joined))
                    for word, f in zip(utterance.words, mine, strict=True)
                ),
            )
            # one entry per run of words of one finding
            for finding, run in itertools.groupby(enumerate(mine), key=lambda pair: pair[1]):
                if finding is not None:
                    indices = [k for k, _ in run]
                    audit.append(self._entry(finding, utterance, "words", indices[0], indices[-1] + 1))
        return audit

    def verify(self, document: TranscriptDocument) -> None:
        """Re-scan every text field of ``document``, by passage, with every rule.

        The operators' replacements are blanked out first (they are the only text a
        partial mask leaves, and hold no whole value).

        :raises ResidualPII: naming the rules that still find something.
        """
        residual: set[str] = set()
        utterances = document.utterances
        for group in passages(utterances):
            members = [utterances[i] for i in group]
            for text in (
                " ".join(u.text for u in members),
                " ".join(w.word for u in members for w in u.words),
            ):
                residual.update(f.rule_id for f in self.findings(_blank_replacements(text)))
        residual.update(f.rule_id for f in self.findings(_blank_replacements(document.text)))
        if residual:
            raise ResidualPII(sorted(residual))


def join_text(utterances: Iterable[DocUtterance]) -> str:
    """The whole transcript for simple search: utterance texts, one per line, in order."""
    return "\n".join(u.text for u in utterances)
