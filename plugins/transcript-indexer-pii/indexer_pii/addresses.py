"""Postal addresses and postcodes (entity types ``STREET_ADDRESS`` and ``POSTCODE``).

Rules, each over the written text and its spoken form (:mod:`indexer_pii.spoken`):

- ``pii.street_address``: a house number, one to four words of street name and a street
  type (``221b Baker Street``, ``1600 Pennsylvania Ave NW``, ``forty two Oak Road``), an
  optional unit (``Apt 4``, ``Suite 200``, ``Flat 3``, ``#12``); German and Dutch compounds
  with the number after them (``Hauptstraße 5``, ``Kerkstraat 12a``); French, Spanish,
  Italian and Portuguese ones with the type first (``12, rue de la Paix``, ``Calle Mayor
  7``, ``Via Roma 10``, ``Rua Augusta 3``).
- ``pii.address_context``: after "my address is", "I live at", "I'm at", "send it to",
  "deliver it to", "ship it to" (and "meine Adresse ist", "mon adresse est", "mi
  dirección es"), the words up to the end of the clause, when they hold a number.
- ``pii.postcode``: UK (``SW1A 1AA``, ``s w one a one a a``), Canadian (``K1A 0B1``) and
  Dutch (``1012 AB``) postcodes anywhere; US ZIP and ZIP+4, German, French, Spanish and
  Italian five-digit codes only after "zip", "zip code", "postcode", "postal code",
  "post code", "PLZ", "Postleitzahl", "code postal", "código postal", "CAP".

Limits: an address with no house number and no cue ("I'm on Baker Street") is not found;
a bare five-digit code with no cue is not taken for a ZIP (it may be a quantity).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, Final

import attrs

from indexer.redaction import Finding, Prefilter
from indexer_pii.cues import address_cues
from indexer_pii.rules import (
    CueFinder,
    PatternRule,
    any_words,
    with_spoken_forms,
)
from indexer_pii.spoken import spoken_number_spans, word_alternatives, word_windows

__all__ = [
    "AddressContextRule",
    "NearNumberRule",
    "address_rules",
    "has_address_cue",
    "may_hold_number",
]

_NUMBER_WORDS: Final = word_alternatives(frozenset({
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
}))  # fmt: skip
#: A house number: digits with an optional letter, or two to five number words ("forty
#: two"; one number word alone is too often a word: "one person caught up").
_HOUSE: Final = rf"(?:\d{{1,5}}(?:[ -]?[a-z]\b)?|{_NUMBER_WORDS}(?:[ -]{_NUMBER_WORDS}){{1,4}})"
_TYPES: Final = (
    r"(?:street|st|avenue|ave|av|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl|"
    r"terrace|terr|crescent|cres|close|square|sq|parkway|pkwy|highway|hwy|circle|cir|trail|"
    r"alley|row|grove|gardens|mews|walk|hill|park|end|green|broadway|plaza|pike|loop|run|path)"
)
_UNIT: Final = r"(?:,? (?:apt|apartment|suite|ste|unit|flat|room|floor|#) ?\.? ?[0-9a-z]{1,5})?"
_NAME_WORD: Final = (
    r"(?!(?:and|or|but|the|is|was|on|in|at|to|i|we|you|he|she|it|they|my|your|a|an|of|for|with|"
    r"where|when|what|that|this|there|can|will|went|go|just|so|not|be|have|had|do|did|"
    r"hours?|minutes?|mins?|miles?|days?|weeks?|months?|years?|seconds?|km|feet|foot|times?)\b)"
    r"[^\W\d_][\w'.-]*"
)
_STREET_EN: Final = (
    rf"(?<![\w-]){_HOUSE},? (?:{_NAME_WORD} ){{1,4}}{_TYPES}\b\.?(?: (?:n|s|e|w|ne|nw|se|sw)\b\.?)?{_UNIT}"
)
#: Endings of compound street names (``Hauptstraße``, ``Kerkstraat``, ``Strandvejen``).
_STREET_ENDINGS: Final = (
    "straße", "strasse", "str", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer", "straat", "laan",
    "gracht", "plein", "kade", "singel", "dijk", "steenweg", "dreef", "vej", "vejen", "gade", "gatan",
    "vägen", "torget",
)  # fmt: skip
#: A compound street name: a word that ends, after one letter or more, in a street ending
#: (checked once at the word's end by look-behinds, not at each of its letters).
_STREET_NUMBER_AFTER: Final = (
    r"(?<![\w-])[^\W\d_][\w-]*+(?:"
    + "|".join(f"(?<=[\\w-]{ending})" for ending in _STREET_ENDINGS if ending != "str")
    + r"|(?<=[\w-]str)\.)"
    + rf" ?{_HOUSE}(?:[ -/]\d{{1,4}}[a-z]?)?"
)
#: A house number in digits (type-first streets are read written, or spoken in English
#: when the number has three digits or more and the normaliser rewrites it).
_HOUSE_DIGITS: Final = r"\d{1,5}(?:[ -]?[a-z]\b)?"
_STREET_TYPE_FIRST: Final = (
    rf"(?<![\w-])(?:{_HOUSE_DIGITS},? )?(?:rue|boulevard|bd|chemin|allée|allee|impasse|quai|"
    r"calle|avenida|paseo|camino|carrer|viale|piazza|vicolo|rua|travessa|praça|praca|estrada|alameda|"
    r"ul\.|ulica|al\.|aleja|plac|osiedle|os\.|callejón|pasaje|travesía|glorieta|rambla|cañada|vía|"
    # English words too, capitalised only
    r"contrada|borgo|strada|(?-i:Avenue|Place|Route|Via|Plaza|Largo|Corso|Ronda))"
    rf"(?: (?:{_NAME_WORD})){{1,5}}(?:,? (?:n\.? ?|nº ?|no\.? ?)?{_HOUSE_DIGITS})?"
)
_DIGIT: Final = re.compile(r"\d")
#: Street types said as words, and words that begin a street (``rue``, ``calle``).
_STREET_WORDS: Final = frozenset(_TYPES[3:-1].split("|")) | frozenset({
    "rue", "avenue", "boulevard", "bd", "chemin", "allée", "allee", "impasse", "quai", "route", "place",
    "calle", "avenida", "paseo", "plaza", "camino", "carrer", "via", "viale", "piazza", "corso", "vicolo",
    "rua", "travessa", "largo", "praça", "praca", "estrada", "alameda", "ul", "ulica", "al", "aleja",
    "plac", "osiedle", "os", "callejón", "ronda", "pasaje", "travesía", "glorieta", "rambla", "cañada",
    "vía", "contrada", "borgo", "strada",
})  # fmt: skip


def may_hold_number(text: str) -> bool:
    """``text`` holds a digit, or spoken numbers close together: the prefilter shared by the
    street, address and postcode rules (an address has a house number, a postcode digits)."""
    return _has_digit(text) or bool(spoken_number_spans(text))


def _has_digit(text: str) -> bool:
    if text.isascii():  # ten substring searches: several times faster than the regular expression
        return any(map(text.__contains__, "0123456789"))
    return _DIGIT.search(text) is not None


def _holds_number(value: str) -> bool:
    return _DIGIT.search(value) is not None or re.search(rf"\b{_NUMBER_WORDS}\b", value, re.I) is not None


UK_POSTCODE: Final = re.compile(
    r"(?<![a-z0-9])(?:[a-pr-uwyz][a-hk-y]?\d[a-z\d]?) ?\d(?!st|nd|rd|th)[abd-hjlnp-uw-z]{2}(?![a-z0-9])", re.I
)
CA_POSTCODE: Final = re.compile(
    r"(?<![a-z0-9])[abceghj-nprstvxy]\d[abceghj-nprstv-z] ?\d[abceghj-nprstv-z]\d(?![a-z0-9])", re.I
)
#: Dutch: four digits and two capitals (lower-case letters after a year are words: "2019 at").
NL_POSTCODE: Final = re.compile(r"(?<![\w-])[1-9]\d{3} ?(?-i:(?!SA|SD|SS)[A-Z]{2})(?![\w-])")
_CODE_CUES: Final = (
    "zip", "zip code", "zipcode", "postcode", "post code", "postal code", "plz", "postleitzahl",
    "code postal", "código postal", "codigo postal", "cap", "c p",
)  # fmt: skip


_STARTS_WITH_HOUSE: Final = re.compile(
    rf"(?:\d{{1,5}}[a-z]?|{_NUMBER_WORDS}(?: {_NUMBER_WORDS})+),? [^\W\d_]", re.I
)


def has_address_cue(text: str) -> bool:
    """``text`` says an address follows: the prefilter of ``pii.address_context``."""
    return bool(address_cues(text))


#: What follows a cue up to the end of its clause (never past a line: another utterance).
_CLAUSE: Final = re.compile(
    r"(?:[^.!?;\n]|\.(?=[ \t]*[\da-z])){3,100}?"  # a full stop inside: "Apt. 4", "St. Mary's"
    r"(?=[!?;\n]|\.(?![ \t]*[\da-z])|,? (?:and|thanks|thank|please|but)\b|$)",
    re.IGNORECASE,
)


@attrs.frozen
class AddressContextRule:
    """``pii.address_context``: the clause after an address cue, when it holds a number."""

    id: str = "pii.address_context"
    entity_type: str = "STREET_ADDRESS"
    version: str = "1"
    prefilter: ClassVar[Prefilter] = staticmethod(has_address_cue)

    def find(self, text: str) -> Iterable[Finding]:
        """The clause after each cue in ``text`` (see the module), written or spoken."""
        return with_spoken_forms(self._find, text, windowed=False)

    def _find(self, text: str) -> list[Finding]:
        found = []
        for cue_end, kind in address_cues(text):
            head = text[cue_end : cue_end + 3]
            clause = _CLAUSE.match(text, cue_end + len(head) - len(head.lstrip(" ,:")))
            if clause is None:
                continue
            value = clause.group()
            # after a strong cue a number is enough; after any, a house number first or a street word
            strong_enough = kind == "strong" and _holds_number(value)
            if strong_enough or _STARTS_WITH_HOUSE.match(value) or _has_street_word(value):
                found.append(Finding(clause.start(), clause.end(), self.entity_type, self.id))
        return found


def _code_length(value: str) -> bool:
    return 4 <= len(_DIGIT.findall(value)) <= 9 or re.fullmatch(r"\d\d[ -]\d{3}", value) is not None


#: Irish Eircodes (``D02 X285``): a routing key and four characters.
IE_EIRCODE: Final = re.compile(r"(?<![a-z0-9])[ac-fhknprtv-y]\d[\dw] ?[ac-fhknprtv-y\d]{4}(?![a-z0-9])", re.I)


_DIGITS: Final = re.compile(r"\d+")
#: Street words and the endings of compound street names, found in one pass.
_STREET_CUES: Final = CueFinder(dict.fromkeys(_STREET_WORDS, None), dict.fromkeys(_STREET_ENDINGS, None))


@functools.lru_cache(maxsize=64)
def _digit_runs(text: str) -> tuple[tuple[int, int], ...]:
    """The span of every run of digits in ``text``; cached, as the street and postcode rules
    ask in turn."""
    return tuple(match.span() for match in _DIGITS.finditer(text)) if _has_digit(text) else ()


@functools.lru_cache(maxsize=64)
def _street_windows(text: str) -> tuple[tuple[int, int], ...]:
    """The text around every house number (digits, or spoken numbers close together), 90
    characters before it and 120 after, that holds a street word; cached, as both street
    rules ask in turn."""
    windows = word_windows(text, [*_digit_runs(text), *spoken_number_spans(text)], 90, 120)
    return tuple((start, end) for start, end in windows if _has_street_word(text[start:end]))


def _code_windows(text: str) -> list[tuple[int, int]]:
    """The words around every run of digits: where a postcode may be (each holds a digit)."""
    return word_windows(text, list(_digit_runs(text)), 6, 6)


def _has_street_word(value: str) -> bool:
    """``value`` holds a street word (``road``, ``avenue``, ``Rua``) or ending (``Hauptstraße``)."""
    return bool(_STREET_CUES.ends(value))


@attrs.frozen
class NearNumberRule:
    """A pattern searched, in the text and its spoken form, only in the windows around
    numbers that ``windows`` gives (most text holds none, and is skipped).

    :ivar letters: the spoken form rewrites short alphanumeric values too
        (:attr:`PatternRule.alphanumeric`).
    """

    id: str
    entity_type: str
    pattern: re.Pattern[str]
    windows: Callable[[str], Sequence[tuple[int, int]]]
    validate: Callable[[str], bool] | None = None
    letters: bool = False
    version: str = "1"
    prefilter: ClassVar[Prefilter] = staticmethod(may_hold_number)

    def find(self, text: str) -> Iterable[Finding]:
        """Every match in ``text``, written or spoken, that ``validate`` accepts."""
        return with_spoken_forms(self._find, text, windowed=False, letters=self.letters)

    def _find(self, text: str) -> list[Finding]:
        return [
            Finding(match.start(), match.end(), self.entity_type, self.id)
            for start, end in self.windows(text)
            for match in self.pattern.finditer(text, start, end)
            if self.validate is None or self.validate(match.group())
        ]


def address_rules() -> list[PatternRule | AddressContextRule | NearNumberRule]:
    """The street address, address context and postcode rules (see the module)."""
    flags = re.IGNORECASE
    return [
        AddressContextRule(),
        NearNumberRule(
            "pii.street_address",
            "STREET_ADDRESS",
            re.compile(f"{_STREET_EN}|{_STREET_NUMBER_AFTER}", flags),
            _street_windows,
        ),
        NearNumberRule(
            "pii.street_address_type_first",
            "STREET_ADDRESS",
            re.compile(_STREET_TYPE_FIRST, flags),
            _street_windows,
            _holds_number,  # with its house number only
        ),
        NearNumberRule(
            "pii.postcode",
            "POSTCODE",
            re.compile(
                f"{UK_POSTCODE.pattern}|{CA_POSTCODE.pattern}|{NL_POSTCODE.pattern}|{IE_EIRCODE.pattern}",
                flags,
            ),
            _code_windows,
            letters=True,
        ),
        PatternRule(
            id="pii.postcode_context",
            entity_type="POSTCODE",
            version="1",
            pattern=re.compile(
                r"\d(?<![\w-]\d)\d{3} ?[a-z]{2}(?![\w-])"  # Dutch 1012 ab, spoken or lower case
                r"|\d(?<![\w-]\d)\d[ -]\d{3}(?![\w-])"  # Polish 00-950
                # 5 digits, ZIP+4, 4 digits (AT, AU, DK, CH), 1000-001 (PT), 76317-066 and 83016613 (BR)
                r"|\d(?<![\w-]\d)\d{2,7}(?:[ -]\d{3,4})?(?![\w-])",
                flags,
            ),
            validate=_code_length,
            context=any_words(*_CODE_CUES),
            context_chars=30,
            min_digits=4,
        ),
    ]
