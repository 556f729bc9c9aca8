"""Phone numbers of every country, found with Google's libphonenumber (``phonenumbers``).

Two rules besides the shape rules of :mod:`indexer_pii.rules` (US, ``+`` international, UK
national), which keep numbers formatted as phone numbers whatever their validity:

- ``pii.phone_number_regional`` (:class:`RegionalPhoneRule`): libphonenumber's
  ``PhoneNumberMatcher`` run for each configured region over the text around digits, written
  and spoken (rewritten by :mod:`indexer_pii.spoken`), at the leniency the benchmark chose
  (``VALID``: the number is a valid number of that region). A match counts when it is
  written as a phone number is: international (``+``, ``00``), in brackets, or in groups
  (``041 323 70 88``, ``0470 91 27 66``, ``807-1201918``). A bare run of digits
  (``4155550123``) is left to the next rule: alone it is as likely an order number; and
  so are numbers of fewer than 7 digits (short numbers of small countries, which are
  mostly prices and dates elsewhere).
- ``pii.phone_number_context`` (:func:`context_rule`): 7 to 15 digits, any separators,
  after a phone cue ("call", "reach", "number", "text", "messages to", "fax", "mobile",
  "phone", "office", ... in English, German, French, Spanish, Italian, Dutch and
  Portuguese); "order number", "account number", "reference number" and the like are no
  cue.

Numbers after words that name another kind of number ("order", "account", "reference",
"tracking", "invoice", "version", ...) or glued to letters (``ABC-1234567``) are skipped by
both. Settings: ``[plugins.pii] phone_regions = ["US", "DE", ...]`` (ISO 3166 codes; the
default is :data:`DEFAULT_REGIONS`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import ClassVar, Final

import attrs
import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from indexer.redaction import Finding, Prefilter
from indexer_pii.rules import PatternRule, any_words, may_find, with_spoken_forms

__all__ = ["DEFAULT_REGIONS", "RegionalPhoneRule", "context_rule", "number_windows", "phone_rules"]

# Keep libphonenumber's compiled metadata patterns: for 40 regions they outnumber the re
# module's cache of 512, and were compiled again and again (11 % of redaction time).
phonenumbers.enable_pattern_cache()

#: North America, Latin America, Europe, India, Asia-Pacific, Africa and the Middle East.
DEFAULT_REGIONS: Final = (
    "US", "CA", "MX", "BR", "AR", "CO", "CL", "PE",
    "GB", "IE", "DE", "FR", "NL", "BE", "LU", "CH", "AT", "ES", "PT", "IT", "SE", "NO", "DK", "FI",
    "PL", "CZ", "RO", "GR", "TR",
    "IN", "AU", "NZ", "JP", "KR", "SG", "PH", "MY", "ZA", "IL", "AE",
)  # fmt: skip
#: Words after which a number is some other kind of number.
NOT_PHONE: Final = re.compile(
    r"\b(?:order|account|acct|reference|ref|tracking|confirmation|invoice|ticket|case|claim|policy|"
    r"flight|version|serial|model|part|room|booking|member|customer|transaction|iban|card|postcode|code|"
    r"zip)\b(?:\W+\w+){0,3}\W*$",
    re.IGNORECASE,
)
#: Words that say a phone number follows.
CUES: Final = (
    "call", "calls", "calling", "called", "reach", "reached", "phone", "telephone", "tel", "cell",
    "mobile", "number", "text", "texts", "message", "messages", "fax", "office", "contact", "ring",
    "whatsapp", "dial", "extension",
    # German, French, Spanish, Italian, Dutch, Portuguese
    "anrufen", "telefon", "telefonnummer", "handy", "nummer", "rufnummer",
    "appeler", "appelez", "téléphone", "telephone", "portable", "numéro", "numero",
    "llamar", "llámame", "teléfono", "telefono", "móvil", "movil", "número",
    "chiamare", "chiamami", "cellulare",
    "bellen", "bel", "telefoonnummer", "mobiel",
    "ligar", "liga", "telefone", "celular",
)  # fmt: skip
_DIGIT: Final = re.compile(r"\d")
#: Seven digits or more with at most three separator characters between two of them.
_PHONE_LIKE: Final = re.compile(r"\d(?:[\s().\-/+]{0,3}\d){6,}")


#: The most digits of a phone number (E.164: 15) and an extension, said without a break.
MAX_RUN: Final = 17


def _may_be_phone(candidate: str) -> bool:
    """``candidate`` (:data:`_PHONE_LIKE`) is not one run of more than :data:`MAX_RUN` digits,
    in which libphonenumber finds nothing (after up to 30 ms for 40 regions: binary strings,
    long references)."""
    return len(candidate) <= MAX_RUN or not candidate.isdigit()


#: Two years, ``2019-2020``: valid numbers in some regions, never said as phone numbers.
_YEARS: Final = re.compile(r"(?:19|20)\d\d\s*[-/]\s*(?:19|20)\d\d")


def _formatted(raw: str) -> bool:
    """``raw`` is written as a phone number: international, in brackets, or in groups."""
    raw = raw.strip()
    if _YEARS.fullmatch(raw):
        return False
    return raw.startswith(("+", "(", "00")) or re.search(r"\d[\s./-]+\d", raw) is not None


def _skipped(text: str, start: int) -> bool:
    """The number at ``start`` follows a word naming another kind of number, letters
    (``ABC-1234567``) or digits (``1,234.56``: part of a larger number)."""
    if start >= 2 and text[start - 1] in "-/" and text[start - 2].isalpha():
        return True
    if start >= 2 and text[start - 1] in ",." and text[start - 2].isdigit():
        return True
    return NOT_PHONE.search(text, max(0, start - 40), start) is not None


#: A word that may be part of a phone number as libphonenumber's matcher reads one: it
#: holds a digit, is punctuation only (``+``, ``(``, ``-``, and ``\u30fc``, a dash to the
#: matcher though a letter to Python), or is an extension's label (``ext``, ``extension``,
#: ``x``, ``#``, ``~``, ``int``, ``доб``, ``anexo``; the matcher also counts ``x`` as
#: punctuation).
_CARRIER: Final = (
    r"(?:\S*\d\S*|(?:[^\w\s]|\u30fc)+"
    r"|(?i:e?xt|extensi|\uff45?\uff58\uff54|доб|anexo|x|\uff58|int|\uff49\uff4e\uff54)\S*)"
)
#: Such words just before a candidate's word.
_LEAD: Final = re.compile(rf"(?:{_CARRIER}\s+)+\Z")
#: How far back :data:`_LEAD` is looked for, in characters.
LEAD_REACH: Final = 24
#: After a candidate: the rest of its word, and such words.
_TAIL: Final = re.compile(rf"\S*(?:\s+{_CARRIER})*")


def _kept_after(char: str) -> bool:
    """A window keeps ``char`` at its end: a number's last character (``#``), or one next
    to which the matcher rejects a number (``%``, a currency sign: ``66%`` is no number)."""
    return char in "#\uff03%" or unicodedata.category(char) == "Sc"


def number_windows(text: str, candidates: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of ``text`` that libphonenumber's matcher reads for ``candidates``
    (:data:`_PHONE_LIKE` spans): each widened to whole words, and on both sides over the
    words that may be part of a number (:data:`_CARRIER`: digits, punctuation, an
    extension's label; back at most :data:`LEAD_REACH` characters); overlapping ones
    merged, in order.

    The matcher takes in lead characters, groups of digits apart by up to four
    punctuation characters and an extension, and then looks at one character on either
    side (a letter there rejects the number); a window that starts at a space and ends
    at one, or at the last digit or ``#`` of its words (keeping a ``%`` or currency sign
    after them, next to which the matcher rejects a number), matches as a wider one does. So
    the same number in another sentence, or in a passage, is matched once (:func:`_matches` is cached on the
    window's text): a number used to be matched in three to four windows, at about 3 ms
    each for the 40 default regions.
    """
    merged: list[tuple[int, int]] = []
    for span_start, span_end in sorted(candidates):
        start = text.rfind(" ", 0, span_start) + 1  # the start of its word
        lead = _LEAD.search(text, max(0, start - LEAD_REACH), start)
        if lead is not None:
            start = lead.start()
            while start > 0 and not text[start - 1].isspace():  # not from within a word
                start += 1
        tail = _TAIL.match(text, span_end)  # always matches (maybe nothing)
        end = tail.end() if tail else span_end
        while end > span_end and not text[end - 1].isalnum() and not _kept_after(text[end - 1]):
            end -= 1  # "0470 91 27 66." as "0470 91 27 66": a match ends at a digit or a "#"
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=4096)
def _matches(text: str, regions: tuple[str, ...], leniency: int) -> tuple[tuple[tuple[int, int], str], ...]:
    """libphonenumber's matches in ``text`` for each of ``regions``: ``((start, end), raw)``.

    Cached: a number is read in its passage, again after its lead and in the words; the
    40 matchers cost about 0.1 ms each. The matcher reads only the characters next to a
    candidate, so a window that starts and ends at a space matches as the whole text does.
    """
    return tuple(
        ((match.start, match.end), match.raw_string)
        for region in regions
        for match in PhoneNumberMatcher(text, region, leniency=leniency)
    )


@attrs.frozen
class RegionalPhoneRule:
    """``pii.phone_number_regional``: libphonenumber's matcher for each of ``regions``.

    :ivar regions: ISO 3166-1 alpha-2 codes whose national formats are read; a number
        with a country code (``+``/``00``) is read whatever the regions.
    :ivar leniency: ``phonenumbers.Leniency`` value; ``VALID`` (chosen by the benchmark:
        ``POSSIBLE`` took order numbers, ``STRICT_GROUPING`` missed Argentine mobiles).
    """

    regions: tuple[str, ...] = DEFAULT_REGIONS
    leniency: int = Leniency.VALID
    id: str = "pii.phone_number_regional"
    entity_type: str = "PHONE_NUMBER"
    version: str = "1"
    prefilter: ClassVar[Prefilter] = staticmethod(may_find)

    def find(self, text: str) -> Iterable[Finding]:
        """Every phone number of the regions in ``text``, written or spoken."""
        return with_spoken_forms(self._find, text, min_digits=7)

    def _find(self, text: str) -> list[Finding]:
        candidates = [m.span() for m in _PHONE_LIKE.finditer(text) if _may_be_phone(m.group())]
        if not candidates:
            return []  # no 7 digits in a row with only separators between: no phone number
        return self.read_windows(text, number_windows(text, candidates))

    def read_windows(self, text: str, windows: Iterable[tuple[int, int]]) -> list[Finding]:
        """The phone numbers libphonenumber's matchers find in ``windows`` (spans) of ``text``
        that are written as phone numbers and follow no word naming another kind of number."""
        spans: dict[tuple[int, int], str] = {}
        for start, end in windows:
            for (match_start, match_end), raw in _matches(text[start:end], self.regions, self.leniency):
                spans[start + match_start, start + match_end] = raw
        found = [
            Finding(start, end, self.entity_type, self.id)
            for (start, end), raw in sorted(spans.items())
            if _formatted(raw) and len(_DIGIT.findall(raw)) >= 7 and not _skipped(text, start)
        ]
        # the same number read for two regions may match a little more or less of it
        return [
            f for f in found if not any(o is not f and o.start <= f.start and f.end <= o.end for o in found)
        ]


def _context_digits(value: str) -> bool:
    return 7 <= len(_DIGIT.findall(value)) <= 15


def context_rule() -> PatternRule:
    """``pii.phone_number_context``: 7 to 15 digits after a phone cue (see the module)."""
    not_after = "".join(
        f"(?<!{word} )" for word in ("order", "account", "reference", "tracking", "confirmation", "case")
    )
    return PatternRule(
        id="pii.phone_number_context",
        entity_type="PHONE_NUMBER",
        version="1",
        pattern=re.compile(r"[+(\d](?<![\w+(-][+(\d])(?:[ ().-]{0,2}\d){6,14}(?:\)|(?!\d))"),
        validate=_context_digits,
        context=any_words(*(cue for cue in CUES if cue != "number"), f"{not_after}number"),
        min_digits=7,
    )


def phone_rules(regions: Sequence[str] | None = None) -> list[RegionalPhoneRule | PatternRule]:
    """The libphonenumber rule for ``regions`` (default :data:`DEFAULT_REGIONS`) and the cue rule.

    :raises ValueError: a region libphonenumber does not know.
    """
    chosen = tuple(r.upper() for r in (regions if regions is not None else DEFAULT_REGIONS))
    unknown = [r for r in chosen if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"phone_regions: {unknown[0]!r} is not a region libphonenumber knows")
    return [RegionalPhoneRule(regions=chosen), context_rule()]
