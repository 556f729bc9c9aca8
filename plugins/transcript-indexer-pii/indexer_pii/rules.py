"""The PII rules and their validators."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import ClassVar, Final, Generic, TypeVar

import ahocorasick
import attrs

from indexer.redaction import Finding, Prefilter
from indexer_pii.spoken import Normalized, normalize, word_windows

__all__ = [
    "RULES",
    "CueFinder",
    "IbanRule",
    "PatternRule",
    "any_words",
    "card_brand",
    "iban_valid",
    "lowered_in_place",
    "luhn_valid",
    "may_find",
    "may_find_spelled",
    "ssn_valid",
    "windows",
    "with_spoken_forms",
]


_Kind = TypeVar("_Kind")
_LOOK_BEHINDS: Final = re.compile(r"^(?:\(\?<[!=][^)]*\))+")


def any_words(*phrases: str) -> re.Pattern[str]:
    """A pattern for any of ``phrases`` (regular expressions, each starting with a letter,
    after look-behind assertions if any) as whole words, in any case; for
    :attr:`PatternRule.context`.

    The pattern starts with the class of the phrases' first letters, which lets the regular
    expression engine skip other characters: several times faster to search than the
    plain alternation.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for phrase in phrases:
        behind = _LOOK_BEHINDS.match(phrase)
        lead = behind.group() if behind else ""
        first, rest = phrase[len(lead)], phrase[len(lead) + 1 :]
        groups.setdefault((lead, first.lower()), []).append(rest)
    firsts = "".join(sorted({first.lower() + first.upper() for _, first in groups}))
    alternatives = "|".join(
        rf"(?<=\b{lead}{first})(?:{'|'.join(rests)})" for (lead, first), rests in groups.items()
    )
    return re.compile(rf"[{firsts}](?i:{alternatives})\b")


def lowered_in_place(text: str) -> str:
    """``text`` in lower case, character for character: a character whose lower case is
    longer ("İ") is kept as it is, so offsets into the result are offsets into ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)


class CueFinder(Generic[_Kind]):
    """Whole-word cue phrases found in one pass over a text (Aho-Corasick automaton,
    ``pyahocorasick``): for rules with many cues, where :func:`any_words` and substring
    searches are slow.

    :param cues: each cue (lower case, plain text) and its kind, returned with it.
    :param endings: word endings (lower case) and their kinds: found at the end of a word,
        whatever begins it (``straße`` in ``Hauptstraße``).
    """

    def __init__(self, cues: Mapping[str, _Kind], endings: Mapping[str, _Kind] | None = None) -> None:
        self._automaton = ahocorasick.Automaton()
        for cue, kind in cues.items():
            self._automaton.add_word(cue, (len(cue), kind))
        for ending, kind in (endings or {}).items():
            self._automaton.add_word(ending, (0, kind))  # length 0: no word start asked for
        self._automaton.make_automaton()

    def ends(self, text: str) -> list[tuple[int, _Kind]]:
        """The end of every whole-word cue and word ending in ``text`` (any case), and its kind."""
        lowered = lowered_in_place(text)
        last = len(lowered) - 1
        found: list[tuple[int, _Kind]] = []
        for end, (length, kind) in self._automaton.iter(lowered):
            # ``end``: the index of the cue's last character
            if end != last and lowered[end + 1].isalnum():
                continue
            start = end - length + 1
            if length == 0 or start == 0 or not lowered[start - 1].isalnum():
                found.append((end + 1, kind))
        return found


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a digit string holds."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# (brand, lengths, IIN prefix ranges as (low, high) over the first len(low) digits)
_BRANDS: Final[tuple[tuple[str, frozenset[int], tuple[tuple[str, str], ...]], ...]] = (
    ("visa", frozenset({13, 16, 19}), (("4", "4"),)),
    ("mastercard", frozenset({16}), (("51", "55"), ("2221", "2720"))),
    ("amex", frozenset({15}), (("34", "34"), ("37", "37"))),
    (
        "discover",
        frozenset({16, 17, 18, 19}),
        (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")),
    ),
    # JCB issues 3528-3589; the rest of 35xx is accepted too (recall first: Faker and other
    # generators of test data issue JCB numbers anywhere in 35xx).
    ("jcb", frozenset({16, 17, 18, 19}), (("35", "35"),)),
    ("jcb", frozenset({15}), (("1800", "1800"), ("2131", "2131"))),
    (
        "diners",
        frozenset({14, 15, 16, 17, 18, 19}),
        (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")),
    ),
    ("unionpay", frozenset({16, 17, 18, 19}), (("62", "62"), ("81", "81"))),
    ("maestro", frozenset(range(12, 20)), (("50", "50"), ("56", "69"))),
    ("mir", frozenset({16, 17, 18, 19}), (("2200", "2204"),)),
)


def card_brand(digits: str) -> str | None:
    """The card brand whose issuer range and length ``digits`` fits, or ``None``."""
    for brand, lengths, ranges in _BRANDS:
        if len(digits) in lengths and any(low <= digits[: len(low)] <= high for low, high in ranges):
            return brand
    return None


def _card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return card_brand(digits) is not None and luhn_valid(digits)


def ssn_valid(value: str) -> bool:
    """A plausible US SSN: area not 000/666/9xx, group not 00, serial not 0000."""
    digits = re.sub(r"\D", "", value)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


#: What every match of a windowed rule contains: two digits at most one character apart,
#: an ``@``, or a colon before a hex digit or a colon (IPv6). All built-in rules are.
CANDIDATE: Final = re.compile(r"[\d@:](?:(?<=\d)\D?\d|(?<=@)|(?<=:)[0-9A-Fa-f:])")
#: How far before its candidate a windowed rule's match may start (a month name).
MATCH_LEAD: Final = 24
#: How far before its match a windowed rule may look for context words.
MAX_CONTEXT_CHARS: Final = 40
#: Characters before a candidate a windowed rule may see: its context words and the start
#: of its match.
WINDOW_BEFORE: Final = MAX_CONTEXT_CHARS + MATCH_LEAD
#: Characters after a candidate that a windowed rule's match may reach (an IBAN's letters).
WINDOW_AFTER: Final = 48


def windows(text: str) -> list[tuple[int, int]]:
    """The spans around every :data:`CANDIDATE` in ``text``, merged and widened to spaces.

    A window begins at the start of ``text`` or after a space and ends before a space or at
    the end, so look-behinds and look-aheads see in it what they see in ``text``.
    """
    if text.isascii() and not any(map(text.__contains__, "0123456789@:")):
        return []  # the common case, found faster than by the regular expression
    spans = [match.span() for match in CANDIDATE.finditer(text)]
    return word_windows(text, spans, WINDOW_BEFORE, WINDOW_AFTER)


#: A window: its start in the text, its text and how many digits it holds (-1: not counted).
_Window = tuple[int, str, int]
_DIGIT: Final = re.compile(r"\d")


@attrs.frozen
class _Scan:
    """Where windowed rules look in one text: its windows, and those of its spoken forms
    rewritten that hold a rewrite."""

    windows: list[_Window]
    spoken: Normalized | None
    spoken_windows: list[_Window]


_NOTHING: Final = _Scan([], None, [])


def _pieces(text: str, spans: Iterable[tuple[int, int]]) -> list[_Window]:
    return [(start, text[start:end], len(_DIGIT.findall(text, start, end))) for start, end in spans]


#: ``normalize`` once per text and mode: windowed rules and whole-text rules ask in turn.
_normalize: Final = functools.lru_cache(maxsize=64)(normalize)


@functools.lru_cache(maxsize=64)
def _scan(text: str, letters: bool = False) -> _Scan:
    # every rule calls this with the same text in turn; the cache makes it once per text
    spoken = _normalize(text, letters=letters)
    found = windows(text)
    if spoken is None:
        return _Scan(_pieces(text, found), None, []) if found else _NOTHING
    edited = spoken.edited
    spoken_found = [(s, e) for s, e in windows(spoken.text) if any(s < b and a < e for a, b in edited)]
    return _Scan(_pieces(text, found), spoken, _pieces(spoken.text, spoken_found))


def may_find(text: str) -> bool:
    """``text`` holds a :data:`CANDIDATE` or a spoken form: a windowed rule may find
    something in it. The prefilter of windowed rules (:class:`indexer.redaction.RedactionRule`)."""
    return _scan(text) is not _NOTHING


def may_find_spelled(text: str) -> bool:
    """:func:`may_find` counting short spoken alphanumeric values too: the prefilter of
    windowed rules with :attr:`PatternRule.alphanumeric`."""
    return _scan(text, True) is not _NOTHING


@functools.lru_cache(maxsize=64)
def _whole(text: str, letters: bool = False) -> _Scan:
    # as _scan: every rule that is not windowed reads the same text in turn
    spoken = _normalize(text, letters=letters)
    return _Scan([(0, text, -1)], spoken, [(0, spoken.text, -1)] if spoken else [])


def with_spoken_forms(
    find: Callable[[str], Iterable[Finding]],
    text: str,
    *,
    windowed: bool = True,
    min_digits: int = 0,
    letters: bool = False,
) -> Iterable[Finding]:
    """``find`` over ``text``, then over its spoken forms rewritten, mapped back to ``text``.

    A finding in the rewritten text covers the original words it came from and carries
    the rewritten value (``"4111111111111111"``) in :attr:`Finding.value`.

    :param windowed: ``find`` matches only around a :data:`CANDIDATE`; then only the
        :func:`windows` of both texts are searched (most text is skipped). ``False``:
        both texts are searched whole.
    :param min_digits: texts and windows with fewer digits are skipped
        (:attr:`PatternRule.min_digits`).
    :param letters: also rewrite short spoken alphanumeric values (``s w one a one a a``;
        :attr:`PatternRule.alphanumeric`).
    """
    scan = _scan(text, letters) if windowed else _whole(text, letters)
    return () if scan is _NOTHING else _found(find, text, scan, min_digits)


def _enough(window: str, digits: int, min_digits: int) -> bool:
    """``window`` holds ``min_digits`` digits or more (``digits``: its count, -1 if not counted)."""
    if not min_digits:
        return True
    return (digits if digits >= 0 else len(_DIGIT.findall(window))) >= min_digits


def _found(
    find: Callable[[str], Iterable[Finding]], text: str, scan: _Scan, min_digits: int = 0
) -> list[Finding]:
    found = [
        attrs.evolve(finding, start=finding.start + start, end=finding.end + start) if start else finding
        for start, window, digits in scan.windows
        if _enough(window, digits, min_digits)
        for finding in find(window)
    ]
    spoken = scan.spoken
    if spoken is None:
        return found
    for start, window, digits in scan.spoken_windows:
        if not _enough(window, digits, min_digits):
            continue
        for finding in find(window):
            value = window[finding.start : finding.end]
            source_start, source_end = spoken.source_span(finding.start + start, finding.end + start)
            if text[source_start:source_end] != value:
                found.append(attrs.evolve(finding, start=source_start, end=source_end, value=value))
    return found


@attrs.frozen
class PatternRule:
    """Findings are matches of ``pattern`` that ``validate`` accepts (all when it is ``None``).

    :ivar validate: called with the matched text; ``False`` drops the match (a checksum).
    :ivar context: when set, a match counts only if this pattern occurs in the
        ``context_chars`` characters before it (at most 40 when ``windowed``).
    :ivar windowed: every match contains a :data:`CANDIDATE` (two digits at most one
        character apart, an ``@``, a colon before a hex digit), starts at most 24
        characters before it and ends at most 48 after it; only the text around
        candidates is searched, which makes the rule fast. Set ``False`` for a pattern
        without them (a postcode like ``SW1A 1AA``, a list of names): the whole text is
        searched.
    :ivar min_digits: the fewest digits (``\\d``) a match holds; text with fewer is not
        searched (a card number: 12). Too high a value makes the rule miss values.
    :ivar alphanumeric: the values mix letters and digits and may hold only one or two
        digits (a postcode ``SW1A 1AA``, a licence plate): their spoken forms are read too
        (``s w one a one a a`` → ``sw1a1aa``; :func:`indexer_pii.spoken.normalize` with
        ``letters``), and a spelled ``a`` or ``i`` said last is a letter unless a word
        follows it.
    :ivar prefilter: a quick test of a text, ``False`` when the rule cannot find anything
        in it (a module-level function, so the rule pickles); rules that share one are
        skipped at once. Default: :func:`may_find` (:func:`may_find_spelled` if
        ``alphanumeric``) when ``windowed``, else none. A rule that is not windowed but
        needs a word to match (a street type) is much faster with one.
    :raises ValueError: ``context_chars`` over 40 for a windowed rule.
    """

    id: str
    entity_type: str
    version: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    context: re.Pattern[str] | None = None
    context_chars: int = attrs.field(default=40)
    windowed: bool = True
    min_digits: int = 0
    alphanumeric: bool = False
    prefilter: Prefilter | None = attrs.field(kw_only=True, repr=False, eq=False)

    @prefilter.default
    def _prefilter(self) -> Prefilter | None:
        if not self.windowed:
            return None
        return may_find_spelled if self.alphanumeric else may_find

    @context_chars.validator
    def _check_context_chars(self, attribute: attrs.Attribute[int], value: int) -> None:
        if self.windowed and value > MAX_CONTEXT_CHARS:
            raise ValueError(f"rule {self.id}: context_chars is at most {MAX_CONTEXT_CHARS} when windowed")

    def find(self, text: str) -> Iterable[Finding]:
        """Every validated match in ``text``, written or spoken (:mod:`indexer_pii.spoken`)."""
        return with_spoken_forms(
            self._find, text, windowed=self.windowed, min_digits=self.min_digits, letters=self.alphanumeric
        )

    def _find(self, text: str) -> list[Finding]:
        context, validate = self.context, self.validate
        if context is not None and not context.search(text):
            return []  # no context word anywhere in this text, so no match can count
        return [
            Finding(match.start(), match.end(), self.entity_type, self.id)
            for match in self.pattern.finditer(text)
            if (validate is None or validate(match.group()))
            and (
                context is None
                or context.search(text, max(0, match.start() - self.context_chars), match.start())
            )
        ]


# IBAN lengths per country (ISO 13616 registry, common countries).
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
    "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(value: str) -> bool:
    """A well-formed IBAN: known country length and mod-97 remainder 1 (ISO 13616)."""
    compact = re.sub(r"\s", "", value).upper()
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _iban_read_valid(value: str) -> bool:
    """``value`` is an IBAN, or one with a zero after the check digits read as the letter O:
    recognisers write "o" for both (an Italian CIN ``O`` said between digits), and the
    checksum tells the readings apart."""
    if iban_valid(value):
        return True
    return any(
        iban_valid(f"{value[:i]}O{value[i + 1 :]}") for i, ch in enumerate(value) if ch == "0" and i >= 4
    )


@attrs.frozen
class IbanRule:
    """IBANs written compact (``GB82WEST1234…``) or in groups of four, any case."""

    id: str = "pii.iban"
    entity_type: str = "IBAN_CODE"
    version: str = "3"

    prefilter: ClassVar[Prefilter] = staticmethod(may_find)
    #: the check digits after a two-letter country code at a word start (digits first:
    #: the regular expression engine skips to them)
    _check_digits: ClassVar[re.Pattern[str]] = re.compile(r"\d(?<=(?<![A-Za-z0-9])[A-Za-z]{2}\d)\d")

    def find(self, text: str) -> Iterable[Finding]:
        """Every IBAN, written or spoken: from each candidate start, the stretch that validates."""
        return with_spoken_forms(self._find, text)

    def _find(self, text: str) -> Iterator[Finding]:
        position = 0
        for match in self._check_digits.finditer(text):
            start = match.start() - 2
            if start < position:
                continue
            expected = IBAN_LENGTHS.get(text[start : start + 2].upper())
            if expected is None:
                continue
            end, count, i = None, 0, start
            while i < len(text) and count < expected:
                ch = text[i]
                if ch.isalnum():
                    count += 1
                elif not (ch == " " and i + 1 < len(text) and text[i + 1].isalnum() and count % 4 == 0):
                    break
                i += 1
            if count == expected and (i >= len(text) or not text[i].isalnum()):
                end = i
            if end is not None and _iban_read_valid(text[start:end]):
                position = end
                yield Finding(start, end, self.entity_type, self.id)


_FLAGS = re.IGNORECASE


def _international_length(value: str) -> bool:
    """An international number has 8 to 15 digits (E.164)."""
    return 8 <= len(re.sub(r"\D", "", value)) <= 15


def _uk_length(value: str) -> bool:
    """A UK national number has 10 or 11 digits."""
    return len(re.sub(r"\D", "", value)) in (10, 11)


def _card_digits_valid(value: str) -> bool:
    """The digits of ``value`` pass the Luhn check."""
    return luhn_valid(re.sub(r"\D", "", value))


# Patterns begin with a character class and check the character before it in a look-behind
# after it ("\d(?<![\d-]\d)" rather than "(?<![\d-])\d"), so the regular expression engine
# can skip to candidate characters.
#: 12 to 19 digits, single spaces or dashes between them: a card number's shape.
_CARD_DIGITS: Final = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){11,18}(?!\d)")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
RULES: Final[tuple[PatternRule | IbanRule, ...]] = (
    PatternRule(
        id="pii.credit_card",
        entity_type="CREDIT_CARD",
        version="2",
        pattern=_CARD_DIGITS,
        validate=_card,
        min_digits=12,
    ),
    PatternRule(
        id="pii.us_ssn",
        entity_type="US_SSN",
        version="2",
        pattern=re.compile(r"\d(?<![\d-]\d)\d\d([- ])\d{2}\1\d{4}(?![\d-])"),
        validate=ssn_valid,
        min_digits=9,
    ),
    PatternRule(
        id="pii.email",
        entity_type="EMAIL_ADDRESS",
        version="2",
        pattern=re.compile(
            r"[\w.%+-](?<![\w.%+-][\w.%+-])[\w.%+-]*+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
            re.ASCII | _FLAGS,
        ),
    ),
    PatternRule(
        id="pii.phone_number",
        entity_type="PHONE_NUMBER",
        version="2",
        pattern=re.compile(
            r"(?=[+(\d])(?<![\w+])(?:(?:\+|00)\d{1,3}[-. ]?|001[-. ]?|1[-. ])?"
            r"(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?: ?(?:x|ext\.?) ?\d{1,5})?(?!\d)",
            _FLAGS,
        ),
        min_digits=10,
    ),
    PatternRule(
        id="pii.phone_number_international",
        entity_type="PHONE_NUMBER",
        version="3",
        # +44 20 7946 0958, +44(0)121 4960260, +1-321-299-3518
        pattern=re.compile(
            r"\+(?<![\w+]\+)\d{1,3}[ -]?(?:\(0\)[ -]?|0[ -])?\d{2,5}(?:[ -]?\d{2,7}){1,4}(?!\d)"
        ),
        validate=_international_length,
        min_digits=8,
    ),
    PatternRule(
        id="pii.phone_number_uk",
        entity_type="PHONE_NUMBER",
        version="1",
        # national format with the trunk 0: 0161 4960371, (029) 2018 0678, 01174960265
        pattern=re.compile(r"(?=[(0])(?<![\w+])(?:\(0\d{2,4}\) ?|0\d{2,4}[ -]?)\d{3,4}[ -]?\d{3,4}(?![\d-])"),
        validate=_uk_length,
        min_digits=10,
    ),
    IbanRule(),
    PatternRule(
        id="pii.ip_address",
        entity_type="IP_ADDRESS",
        version="2",
        # IPv4, or IPv6: hex digits and at least two colons (the first character is
        # matched first, then what follows it in each case)
        pattern=re.compile(
            r"[0-9a-fA-F:](?:(?<=\d)(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w.]*\d)"
            r"|(?<![\w:][0-9a-fA-F:])(?:(?<=:)|(?<=[0-9a-fA-F])[0-9a-fA-F]*:)[0-9a-fA-F:]*:[0-9a-fA-F:]*(?![\w:]))"
        ),
        validate=_ip,
    ),
    # Numbers that count as PII because of what was said just before them.
    PatternRule(
        id="pii.credit_card_context",
        entity_type="CREDIT_CARD",
        version="1",
        pattern=_CARD_DIGITS,
        validate=_card_digits_valid,
        context=any_words("card", "credit", "debit", "visa", "mastercard", "amex"),
        min_digits=12,
    ),
    PatternRule(
        id="pii.us_ssn_context",
        entity_type="US_SSN",
        version="1",
        pattern=re.compile(r"\d(?<![\d-]\d)\d\d[ -]?\d{2}[ -]?\d{4}(?![\d-])"),
        validate=ssn_valid,
        context=any_words("social", "security", "ssn", "s s n"),
        min_digits=9,
    ),
    PatternRule(
        id="pii.cvv",
        entity_type="CVV",
        version="1",
        pattern=re.compile(r"\d(?<![\d-]\d)\d{2,3}(?![\d-])"),
        context=any_words(r"cvv2?", "cvc", "cv2", "security code", "card verification"),
        context_chars=30,
        min_digits=3,
    ),
    PatternRule(
        id="pii.card_expiry",
        entity_type="CARD_EXPIRY",
        version="1",
        pattern=re.compile(
            r"(?<![\d/-])(?:0?[1-9]|1[0-2]) ?[/-]? ?(?:20)?\d{2}(?![\d/-])"
            rf"|\b{_MONTH},? (?:20)?\d{{2}}\b",
            _FLAGS,
        ),
        context=any_words(r"expir\w*", "exp", r"valid (?:thru|through|until)"),
        context_chars=30,
        min_digits=2,
    ),
    PatternRule(
        id="pii.date_of_birth",
        entity_type="DATE_OF_BIRTH",
        version="1",
        pattern=re.compile(
            r"(?<![\d/.-])\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)?\d{2}(?![\d/.-])"
            r"|\b(?:19|20)\d{2}-\d{2}-\d{2}\b"
            rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH},? (?:19|20)\d{{2}}\b",
            _FLAGS,
        ),
        context=any_words("date of birth", r"birth ?date", "dob", "d o b", "born"),
        min_digits=4,
    ),
)
