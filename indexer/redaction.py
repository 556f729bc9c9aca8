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

Rules scan a normalised view of each text (:func:`normalised`: NFKC, Unicode spaces and
dashes, every decimal digit, zero-width characters removed), and their findings are
mapped back to the text's own offsets: ``415\u00a0555\u00a00123`` or a card number
written with full-width or Arabic-Indic digits is found and replaced like its ASCII form.

Every utterance is also scanned once more after its **lead**: the last words of the
transcript before it (``LEAD_CHARS``), so a rule that needs context words finds them in
the other party's question: "what number can we reach you on?" makes "it's five five
five ..." a phone number. Only findings within the utterance count: the lead is context,
and a value never spans two speakers.

After redaction every rule re-scans the redacted document (the verification gate),
with the operators' own replacements blanked out; any residual finding, or any rule
that raises, fails the transcript closed with :class:`~indexer.errors.RedactionFailed`,
whose message names rule ids, never values. Each redacted span is recorded as an
:class:`~indexer.document.AuditEntry` (rule, entity type, utterance, offsets, operator).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

import attrs

from indexer.document import AuditEntry, DocUtterance, DocWord, RedactionSummary, TranscriptDocument
from indexer.errors import RedactionFailed, ResidualPII

__all__ = [
    "LEAD_CHARS",
    "OPERATORS",
    "PASSAGE_GAP_MS",
    "Finding",
    "Operators",
    "Prefilter",
    "RedactionRule",
    "RuleSet",
    "canonical",
    "join_text",
    "last_words",
    "leads",
    "normalised",
    "passages",
    "turns_document",
]

#: The operators a rule's findings can be replaced with.
OPERATORS: Final = ("mask", "partial", "hash")
#: Utterances of one speaker this close (end to next start, ms) are scanned together.
PASSAGE_GAP_MS: Final = 15_000
#: Characters of the transcript before an utterance that the rules see as its context (at
#: most; cut at a word start).
LEAD_CHARS: Final = 64
#: Values shorter than this (alphanumeric characters) are masked, not partially masked.
PARTIAL_MIN_CHARS: Final = 8
_SPACE: Final = re.compile(r"\s")
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


#: A rule's optional quick test of a text (see :class:`RedactionRule`).
Prefilter = Callable[[str], bool]


@runtime_checkable
class RedactionRule(Protocol):
    """What ``transcript_indexer_redaction_rules`` contributes.

    :ivar id: stable, unique rule id, e.g. ``pii.credit_card``; used in audits and errors.
    :ivar entity_type: upper-case entity type, e.g. ``CREDIT_CARD``; the replacement text.
    :ivar version: changes whenever what the rule matches changes.

    A rule may also have a ``prefilter`` attribute: a quick test of a text, one function
    object shared by several rules, that returns ``False`` only when none of them can
    find anything in it. The rule set calls it once per text for all of them and skips
    them when it is ``False`` (:class:`indexer_pii.PatternRule` rules share one).
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


def last_words(text: str) -> str:
    """The last words of ``text`` within :data:`LEAD_CHARS` characters."""
    if len(text) <= LEAD_CHARS:
        return text
    space = _SPACE.search(text, len(text) - LEAD_CHARS - 1)
    return text[space.end() :] if space else ""


def leads(texts: Sequence[str]) -> list[str]:
    """Per text of a transcript, the :func:`last_words` of the texts before it joined by
    newlines (as in :func:`join_text`); ``""`` for the first."""
    found, before = [], None
    for text in texts:
        found.append("" if before is None else last_words(before))
        before = text if before is None else f"{before}\n{text}"[-LEAD_CHARS - 1 :]
    return found


#: Characters removed from the view rules scan: zero-width spaces and joiners, the word
#: joiner, the byte-order mark and the soft hyphen (invisible, so they may split a value).
_INVISIBLE: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")


def _view_of(char: str) -> str:
    """What one character is in the view rules scan (see :func:`normalised`)."""
    if char in _INVISIBLE:
        return ""
    category = unicodedata.category(char)
    if category == "Zs" or char in "\t\n\r\x0b\x0c\u2028\u2029":
        return " "
    if category == "Pd" or char == "\u2212":  # every dash, and the minus sign
        return "-"
    if category == "Nd":
        return str(unicodedata.decimal(char))
    return unicodedata.normalize("NFKC", char)


def normalised(text: str) -> tuple[str, list[int] | None]:
    """The view of ``text`` that rules scan, and where each of its characters comes from.

    NFKC (full-width letters and digits, ligatures), every Unicode space a space, every dash
    a hyphen-minus, every decimal digit (Arabic-Indic, Devanagari, …) its ASCII digit,
    zero-width characters removed: ``415\u00a0555\u00a00123`` is scanned as
    ``415 555 0123``. The list maps each view position to its offset in ``text``
    (``None`` when the view is ``text`` itself: plain ASCII, the common case).
    """
    if text.isascii():
        return text, None
    parts, origin = [], []
    for index, char in enumerate(text):
        view = char if char.isascii() else _view_of(char)
        parts.append(view)
        origin += [index] * len(view)
    view_text = "".join(parts)
    return (text, None) if view_text == text else (view_text, origin)


def _with_value(finding: Finding, scanned: str, start: int, end: int) -> Finding:
    """``finding`` moved to ``[start, end)``, keeping its whole value as read in ``scanned``."""
    value = scanned[finding.start : finding.end] if finding.value is None else finding.value
    return attrs.evolve(finding, start=start, end=end, value=value)


def _parts(findings: Sequence[Finding], texts: Sequence[str], joined: str) -> list[list[Finding]]:
    """Findings in ``joined`` (``texts`` joined by one space) cut to each text, in its offsets.

    Linear in texts and findings: each finding visits only the texts it overlaps.
    """
    parts: list[list[Finding]] = [[] for _ in texts]
    starts = list(itertools.accumulate((len(text) + 1 for text in texts[:-1]), initial=0))
    for finding in findings:
        k = max(bisect.bisect_right(starts, finding.start) - 1, 0)
        while k < len(texts) and starts[k] < finding.end:
            offset = starts[k]
            start, end = max(finding.start, offset), min(finding.end, offset + len(texts[k]))
            if start < end:
                parts[k].append(_with_value(finding, joined, start - offset, end - offset))
            k += 1
    return parts


def _word_hits(words: Sequence[str], found: Sequence[Finding]) -> list[Finding | None]:
    """Per word, the finding it overlaps in the space-joined words, or ``None``."""
    hits, start = [], 0
    for word in words:
        end = start + len(word)
        hits.append(next((f for f in found if f.start < end and start < f.end), None))
        start = end + 1
    return hits


_VIEW_TOKEN: Final = re.compile(r"\w+")


def _aligned(text: str, spoken: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """The word tokens of ``text`` and of ``spoken`` (the utterance's words joined), when
    both say the same words, case and punctuation aside; ``None`` when they do not."""
    in_text = list(_VIEW_TOKEN.finditer(text))
    in_words = list(_VIEW_TOKEN.finditer(spoken))
    if [m.group().lower() for m in in_text] != [m.group().lower() for m in in_words]:
        return None
    return [m.span() for m in in_text], [m.span() for m in in_words]


def _projected(
    found: Sequence[Finding], source: list[tuple[int, int]], target: list[tuple[int, int]]
) -> list[Finding]:
    """``found`` (offsets of one view) moved onto the same tokens of the other view."""
    moved = []
    for finding in found:
        covered = [k for k, (start, end) in enumerate(source) if start < finding.end and finding.start < end]
        if covered:
            moved.append(attrs.evolve(finding, start=target[covered[0]][0], end=target[covered[-1]][1]))
    return moved


def _reconcile_views(
    utterance: DocUtterance, in_text: list[Finding], in_words: list[Finding]
) -> tuple[list[Finding], list[Finding]]:
    """The text and the words of one utterance are two views of what was said. When rules
    find an entity type in one and not the other (a name read from its capital letter, an
    address clause ended by a full stop), and both views say the same words, the findings
    of each are carried over to the other, so both are redacted alike. When the views say
    different words, one of them may hide a value from the rules: fail closed.

    :raises ResidualPII: the views disagree and do not say the same words; naming the
        rules whose findings are in one view only.
    """
    if not utterance.words:
        return in_text, in_words
    text_types = {f.entity_type for f in in_text}
    word_types = {f.entity_type for f in in_words}
    if text_types == word_types:
        return in_text, in_words
    only = text_types ^ word_types
    tokens = _aligned(utterance.text, _spoken(utterance))
    if tokens is None:
        rules = {f.rule_id for f in (*in_text, *in_words) if f.entity_type in only}
        raise ResidualPII(sorted(rules), reason="the text and the words of an utterance disagree")
    text_tokens, word_tokens = tokens
    to_words = _projected([f for f in in_text if f.entity_type not in word_types], text_tokens, word_tokens)
    to_text = _projected([f for f in in_words if f.entity_type not in text_types], word_tokens, text_tokens)
    return _merge([*in_text, *to_text]), _merge([*in_words, *to_words])


def _blank_replacements(text: str) -> str:
    return REPLACEMENT.sub(lambda m: " " * len(m.group()), text)


@attrs.frozen
class RuleSet:
    """The rules of every plugin, applied together, and the operators that replace findings."""

    rules: tuple[RedactionRule, ...]
    operators: Operators = Operators()
    #: the rules grouped by their prefilter (``None``: none), in order of first appearance
    _groups: tuple[tuple[Prefilter | None, tuple[RedactionRule, ...]], ...] = attrs.field(
        init=False, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        groups: dict[Prefilter | None, list[RedactionRule]] = {}
        for rule in self.rules:
            groups.setdefault(getattr(rule, "prefilter", None), []).append(rule)
        object.__setattr__(self, "_groups", tuple((key, tuple(rules)) for key, rules in groups.items()))

    @property
    def version(self) -> str:
        """12 hex digits identifying the rule ids and versions and the operators in this set."""
        key = "\n".join(sorted(f"{rule.id}@{rule.version}" for rule in self.rules))
        key += "\n" + "\n".join(f"{k}={v}" for k, v in sorted(self.operators.by_rule.items()))
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def findings(self, text: str, lead: str = "") -> list[Finding]:
        """Merged findings of every rule in ``text``.

        :param lead: the last words said before ``text`` (:func:`leads`, the module docs):
            the rules see it before ``text`` as context; only findings within ``text``
            count (a value never spans two speakers).
        :raises RedactionFailed: a rule raised; the message names the rule.
        """
        if lead:
            scanned, shift = f"{lead} {text}", len(lead) + 1
            return [
                _with_value(f, scanned, f.start - shift, f.end - shift)
                for f in self.findings(scanned)
                if f.start >= shift
            ]
        view, origin = normalised(text)
        if origin is not None:  # rules scan the view; findings are mapped back to ``text``
            return _merge(
                attrs.evolve(f, start=origin[f.start], end=origin[f.end - 1] + 1, value=view[f.start : f.end])
                for f in self._scan(view)
                if f.end > f.start
            )
        return self._scan(text)

    def _scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for prefilter, rules in self._groups:
            try:
                if prefilter is not None and not prefilter(text):
                    continue
            except Exception as exc:
                names = ", ".join(rule.id for rule in rules)
                raise RedactionFailed(f"the prefilter of rules {names} raised {type(exc).__name__}") from exc
            for rule in rules:
                try:
                    results = list(rule.find(text))
                except Exception as exc:
                    raise RedactionFailed(f"rule {rule.id} raised {type(exc).__name__}") from exc
                for result in results:
                    if not (
                        isinstance(result, Finding)
                        and type(result.start) is int
                        and type(result.end) is int
                        and 0 <= result.start <= result.end <= len(text)
                    ):
                        raise RedactionFailed(
                            f"rule {rule.id} returned something that is not a finding in the text"
                        )
                found += results
        return _merge(found) if found else found

    def passage_findings(
        self, texts: Sequence[str], leads: Sequence[str]
    ) -> tuple[list[list[Finding]], Counter[str]]:
        """Findings in each of ``texts``, the utterances of one passage, and the values found
        per entity type.

        The texts are scanned joined by spaces, and each one with a lead (``""``: none)
        again after it (:meth:`findings`). Findings are in the offsets of their text and
        carry their whole value (:attr:`Finding.value`), also when they run into the next.

        :raises RedactionFailed: a rule raised.
        """
        joined = " ".join(texts)
        found = self.findings(joined)
        counts = Counter(f.entity_type for f in found)
        per_text = _parts(found, texts, joined)
        for k, (text, lead) in enumerate(zip(texts, leads, strict=True)):
            after_lead = self.findings(text, lead) if lead else []
            mine = per_text[k]
            counts.update(  # values the passage scan did not find
                f.entity_type
                for f in after_lead
                if not any(f.start < m.end and m.start < f.end for m in mine)
            )
            if after_lead:
                per_text[k] = _merge([*mine, *after_lead])
        return per_text, counts

    def _replace(self, text: str, found: Sequence[Finding]) -> str:
        parts, position = [], 0
        for finding in found:
            parts += [
                text[position : finding.start],
                self.operators.replacement(finding, text[finding.start : finding.end]),
            ]
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every finding replaced by its operator's output, and the findings."""
        found = self.findings(text)
        return self._replace(text, found), found

    def redact_words(self, words: Sequence[str]) -> tuple[list[str], list[Finding]]:
        """Each word that overlaps a finding in the space-joined words is replaced."""
        joined = " ".join(words)
        found = [_with_value(f, joined, f.start, f.end) for f in self.findings(joined)]
        hits = _word_hits(words, found)
        return [
            word if f is None else self.operators.replacement(f, word)
            for word, f in zip(words, hits, strict=True)
        ], found

    def redact(self, document: TranscriptDocument, *, verify: bool = True) -> TranscriptDocument:
        """The document with every utterance text and word redacted, and a redaction summary.

        ``document.text`` is rebuilt from the redacted utterances; the summary holds the
        counts per entity type and an audit entry per redacted span.

        :param verify: re-scan the result (:meth:`verify`); ``False`` only to inspect what
            a rule set does (``plugins check``), never before indexing.
        :raises RedactionFailed: a rule raised, or the re-scan still finds PII.
        """
        original = document.utterances
        utterances = list(original)
        counts: Counter[str] = Counter()
        audit: list[AuditEntry] = []
        texts = [u.text for u in original]
        spoken = [_spoken(u) for u in original]
        text_leads, word_leads = leads(texts), leads(spoken)
        for group in passages(original):
            members = [original[i] for i in group]
            text_found, per_type = self.passage_findings(
                [texts[i] for i in group], [text_leads[i] for i in group]
            )
            word_found: list[list[Finding]] = [[] for _ in group]
            if any(u.words for u in members):
                word_found, word_types = self.passage_findings(
                    [spoken[i] for i in group], [word_leads[i] for i in group]
                )
                for k, utterance in enumerate(members):
                    text_found[k], word_found[k] = _reconcile_views(utterance, text_found[k], word_found[k])
                per_type |= word_types  # the larger count of the two views
            for index, utterance, in_text, in_words in zip(
                group, members, text_found, word_found, strict=True
            ):
                if in_text:
                    utterances[index] = attrs.evolve(utterance, text=self._replace(utterance.text, in_text))
                    audit += [self._entry(f, utterance, "text", f.start, f.end) for f in in_text]
                if in_words:
                    utterances[index], entries = self._redact_words(utterances[index], in_words)
                    audit += entries
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
        self, utterance: DocUtterance, found: Sequence[Finding]
    ) -> tuple[DocUtterance, list[AuditEntry]]:
        """``utterance`` with the words that overlap ``found`` (in its spoken words) replaced,
        and one audit entry per run of words of one finding."""
        hits = _word_hits([w.word for w in utterance.words], found)
        redacted = attrs.evolve(
            utterance,
            words=tuple(
                word if f is None else attrs.evolve(word, word=self.operators.replacement(f, word.word))
                for word, f in zip(utterance.words, hits, strict=True)
            ),
        )
        audit = []
        for finding, run in itertools.groupby(enumerate(hits), key=lambda pair: pair[1]):
            if finding is not None:
                indices = [k for k, _ in run]
                audit.append(self._entry(finding, utterance, "words", indices[0], indices[-1] + 1))
        return redacted, audit

    def verify(self, document: TranscriptDocument) -> None:
        """Re-scan every text field of ``document``, by passage and with leads, with every rule.

        The operators' replacements are blanked out first (they are the only text a
        partial mask leaves, and hold no whole value).

        :raises ResidualPII: naming the rules that still find something.
        """
        residual: set[str] = set()
        utterances = document.utterances
        for text_of in (_text, _spoken):
            texts = [_blank_replacements(text_of(u)) for u in utterances]
            text_leads = leads(texts)
            for group in passages(utterances):
                found, _ = self.passage_findings([texts[i] for i in group], [text_leads[i] for i in group])
                residual.update(f.rule_id for part in found for f in part)
        residual.update(f.rule_id for f in self.findings(_blank_replacements(document.text)))
        if residual:
            raise ResidualPII(sorted(residual))


def _text(utterance: DocUtterance) -> str:
    return utterance.text


def _spoken(utterance: DocUtterance) -> str:
    """The utterance's recognised words joined by spaces."""
    return " ".join(w.word for w in utterance.words)


def join_text(utterances: Iterable[DocUtterance]) -> str:
    """The whole transcript for simple search: utterance texts, one per line, in order."""
    return "\n".join(u.text for u in utterances)


#: Milliseconds between the turns of :func:`turns_document`: well inside one passage.
TURN_MS: Final = 1_000


def turns_document(
    conversation_id: str, turns: Sequence[tuple[str, str]], *, utterance_ids: str = ""
) -> TranscriptDocument:
    """A transcript of ``(speaker, text)`` turns, one second apart (so one passage per
    speaker), words split on spaces: what ``plugins check`` and the live view redact."""
    utterances = tuple(
        DocUtterance(
            utterance_id=f"{utterance_ids}{index}",
            communication_id=f"sample-{speaker}",
            speaker=speaker,
            text=text,
            offset_ms=index * TURN_MS,
            duration_ms=TURN_MS // 2,
            confidence=None,
            spoken_at=None,
            words=tuple(DocWord(word, None, None, None) for word in text.split()),
        )
        for index, (speaker, text) in enumerate(turns)
    )
    return TranscriptDocument(
        conversation_id=conversation_id,
        version=0,
        started_at=None,
        ended_at=None,
        duration_ms=None,
        queues=(),
        direction=None,
        language=None,
        participants=(),
        utterances=utterances,
        text=join_text(utterances),
        complete=True,
        completion_reason="ended",
    )
