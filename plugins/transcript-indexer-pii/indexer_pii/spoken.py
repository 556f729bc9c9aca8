"""Spoken forms, as speech recognisers write them, rewritten to written forms.

``normalize("my card is four one one one double one ...")`` gives the text with every
spoken number, spelled sequence and spoken email rewritten (``"my card is 411111..."``)
and a map from each character of the new text back to the span of the original it came
from, so a rule that matches the rewritten text redacts the original words.

What is rewritten:

- **numbers**: digit words and ``oh``/``zero`` (an ``o`` beside a spelled letter is the
  letter), ``double``/``triple`` X, ``plus`` before a number (``+``), teens and tens
  (``nineteen eighty`` → ``1980``, ``forty five`` → ``45``), ``hundred``, ordinals
  (``fifth`` → ``5``), mixed with written digit groups; a comma, a full stop or the word
  ``dash`` between them is kept as a group break (a space), plain spaces are not:
  ``one two three, four five, six seven eight nine`` → ``123 45 6789``; ``dot`` or
  ``point`` between numbers is a ``.`` (``one nine two dot one six eight ...``). Single letters
  next to them are kept (``g b eight two w e s t ...`` → ``gb82west...``), so spelled
  IBANs come out whole. A run is rewritten only if it holds a spoken number word and
  gives at least 3 digits; a lone ``a`` or ``i`` at either end is taken for a word.
- **short alphanumeric values** (``letters=True``, for rules whose values mix letters and
  digits: :attr:`indexer_pii.PatternRule.alphanumeric`): a run with one spoken digit is
  enough when it also holds a spelled letter and at least 5 characters (``s w one a one
  a a`` → ``sw1a1aa``, ``e c two a one b b`` → ``ec2a1bb``), and a trailing ``a`` or
  ``i`` is a letter unless a word follows it (``… one a a i think``: the ``i`` is a word,
  the ``a`` before it a letter; ``… six a day``: the ``a`` is a word).
- **emails**: ``jane dot doe at example dot com`` → ``jane.doe@example.com``: a local part
  of up to three words (joined by ``dot``, ``underscore``, ``dash`` or nothing), ``at``, and
  labels joined by ``dot`` ending in a known top-level domain.

Only stretches of the text that can hold a rewrite are tokenised: two number words (or a
number word and digits) within a few characters of each other, and the words around an
``at`` when the text also says ``dot``. Text without them costs one regular expression
scan.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

import attrs

__all__ = ["Normalized", "normalize", "spoken_number_spans", "word_alternatives", "word_windows"]

DIGITS: Final = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
TEENS: Final = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
TENS: Final = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
ORDINALS: Final = {
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
    "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "eleventh": "11",
    "twelfth": "12", "thirteenth": "13", "fourteenth": "14", "fifteenth": "15",
    "sixteenth": "16", "seventeenth": "17", "eighteenth": "18", "nineteenth": "19",
    "twentieth": "20", "thirtieth": "30",
}  # fmt: skip
REPEATS: Final = {"double": 2, "triple": 3}
BREAK_WORDS: Final = frozenset({"dash", "hyphen"})
TLDS: Final = frozenset({
    "com", "org", "net", "edu", "gov", "mil", "int", "io", "co", "uk", "de", "fr", "nl", "es", "it",
    "be", "ch", "at", "se", "no", "dk", "fi", "ie", "pl", "pt", "cz", "ru", "us", "ca", "au", "nz",
    "in", "jp", "cn", "br", "mx", "info", "biz", "me", "tv", "ai", "app", "dev", "email", "online",
})  # fmt: skip
LOCAL_JOINERS: Final = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
NOT_LOCAL: Final = frozenset({
    "me", "us", "him", "her", "them", "it", "is", "was", "my", "our", "your", "email", "mail",
    "address", "e-mail", "at", "to", "the", "that", "reach", "contact", "send", "write", "on", "or",
    "and",
})  # fmt: skip

_NUMBER_WORDS = {*DIGITS, *TEENS, *TENS, *ORDINALS, *REPEATS, "hundred"}
#: Words that start looking for a spoken number ("o", "first" and "second" are too common).
_TRIGGER_WORDS = frozenset(_NUMBER_WORDS - {"o", "second", "first"})


def word_alternatives(words: frozenset[str]) -> str:
    """A regular expression for any of ``words``, grouped by first letter (faster to match)."""
    by_first: dict[str, list[str]] = {}
    for word in sorted(words, key=len, reverse=True):
        by_first.setdefault(word[0], []).append(word[1:])
    return "(?:" + "|".join(f"{first}(?:{'|'.join(rest)})" for first, rest in sorted(by_first.items())) + ")"


#: Characters around a number pair, or a spoken email's "at", that its rewrite may reach.
_REACH: Final = 32
_WORDS = word_alternatives(_TRIGGER_WORDS)
_BETWEEN = r"[^a-z0-9]{1,3}(?:(?:[a-z]|dash|hyphen|dot|point)[^a-z0-9]{1,3}){0,4}"
#: Two numbers close together, at least one of them spoken, in lower-cased text after a
#: space: a number word first, or digits first. The match starts one character before its
#: first number (a character class first lets the regular expression engine skip letters).
_PAIR = re.compile(
    rf"[^a-z_](?:(?<![a-z0-9_]){_WORDS}\b{_BETWEEN}(?:{_WORDS}\b|\d)|(?<=\d){_BETWEEN}{_WORDS}\b)"
)
_SPOKEN_EMAIL = re.compile(r"\bat\b[^@]{1,80}?\bdot\b")
_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._%+'-]*[A-Za-z0-9])?|[,.;:!?]")


@attrs.frozen
class Normalized:
    """Rewritten text and, per character, the ``[start, end)`` span of the original.

    :ivar edited: the ``[start, end)`` spans of ``text`` that were rewritten, in order.
    """

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    edited: tuple[tuple[int, int], ...]

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from."""
        return self.starts[start], self.ends[end - 1]


@attrs.frozen
class _Token:
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        return self.text.lower()


def _spoken_digits(tokens: list[_Token], i: int) -> tuple[str, int] | None:
    """Digits spoken from ``tokens[i]`` on, and how many tokens they take; ``None``: not a number."""
    word = tokens[i].word
    if tokens[i].text == "Oh":
        return None  # capitalised, the interjection: decorated text writes a zero as 0
    following = tokens[i + 1].word if i + 1 < len(tokens) else ""
    if word in REPEATS and following in DIGITS:
        return DIGITS[following] * REPEATS[word], 2
    if word in TENS:
        if following in DIGITS and DIGITS[following] != "0" and following != "o":
            return TENS[word] + DIGITS[following], 2
        return TENS[word] + "0", 1
    if word in TEENS:
        return TEENS[word], 1
    if word in ORDINALS:
        return ORDINALS[word], 1
    if word in DIGITS:
        if following == "hundred":
            after = tokens[i + 2].word if i + 2 < len(tokens) else ""
            if after in TEENS:
                return DIGITS[word] + TEENS[after], 3
            if after in TENS:
                rest = _spoken_digits(tokens, i + 2)
                assert rest is not None
                return DIGITS[word] + rest[0], 2 + rest[1]
            if after in DIGITS and after not in ("o", "oh"):
                return DIGITS[word] + "0" + DIGITS[after], 3
            return DIGITS[word] + "00", 2
        return DIGITS[word], 1
    return None


#: A rewrite: pieces of (output, source start, source end), in source order.
_Edit = list[tuple[str, int, int]]


def _spelled_o(tokens: list[_Token], j: int) -> bool:
    """``tokens[j]``, an ``o`` beside a spelled letter, is the letter O (``c g o f``)."""
    return any(
        0 <= k < len(tokens)
        and len(tokens[k].text) == 1
        and tokens[k].text.isalpha()
        and tokens[k].word != "o"
        for k in (j - 1, j + 1)
    )


#: Words after which a trailing spelled ``a`` or ``i`` is still a letter.
_AFTER_SPELLED: Final = frozenset({
    "and", "or", "but", "is", "that", "thats", "that's", "right", "correct", "yes", "yeah", "ok",
    "okay", "please", "thanks", "thank", "so", "then", "sorry", "got", "did", "was",
})  # fmt: skip


def _word_follows(tokens: list[_Token], position: int) -> bool:
    """The token after ``position`` is a word that an article or "I" may precede."""
    following = next((token for token in tokens if token.start >= position), None)
    if following is None:
        return False
    word = following.word
    return len(word) > 1 and word.isalpha() and word not in _AFTER_SPELLED


def _runs(tokens: list[_Token], *, letters: bool = False) -> list[_Edit]:
    """Number runs, rewritten (``letters``: short alphanumeric runs too; see the module)."""
    found = []
    i = 0
    while i < len(tokens):
        pieces: list[tuple[str, int, int]] = []
        spoken, digits, j, pending_break = False, 0, i, False
        while j < len(tokens):
            token = tokens[j]
            number = _spoken_digits(tokens, j)
            if (
                not pieces
                and token.word == "plus"
                and j + 1 < len(tokens)
                and _spoken_digits(tokens, j + 1) is not None
            ):
                pieces.append(("+", token.start, token.end))  # "plus four four ..."
                j += 1
                continue
            if number is not None and not (token.word == "o" and (not pieces or _spelled_o(tokens, j))):
                if pending_break and pieces:
                    pieces.append((" ", token.start, token.start))
                out, used = number
                pieces.append((out, token.start, tokens[j + used - 1].end))
                # an ordinal ends a group: "march fifth nineteen eighty" is 5 1980
                ordinal = tokens[j + used - 1].word in ORDINALS
                spoken, digits, j, pending_break = True, digits + len(out), j + used, ordinal
            elif token.text.isdigit() or (token.text.isalnum() and len(token.text) == 1):
                if pending_break and pieces:
                    pieces.append((" ", token.start, token.start))
                pieces.append((token.word, token.start, token.end))
                digits += sum(ch.isdigit() for ch in token.text)
                j, pending_break = j + 1, False
            elif (
                pieces
                and token.word in ("dot", "point")
                and j + 1 < len(tokens)
                and _spoken_digits(tokens, j + 1) is not None
            ):
                pieces.append((".", token.start, token.end))  # "one nine two dot one six eight"
                j, pending_break = j + 1, False
            elif pieces and (token.text in ",.;:" or token.word in BREAK_WORDS):
                pending_break, j = True, j + 1
            else:
                break
        while pieces and not pieces[-1][0].strip():
            pieces.pop()
        # Single letters before and after the digits belong to the run only if spelled out
        # together with them; a lone leading/trailing "a" or "i" is a word.
        while (
            not letters
            and pieces
            and pieces[0][0].isalpha()
            and len(pieces) > 1
            and not pieces[1][0].isalpha()
        ):
            if pieces[0][0] in ("a", "i"):
                pieces.pop(0)
            else:
                break
        if letters:
            while pieces and pieces[-1][0] in ("a", "i") and _word_follows(tokens, pieces[-1][2]):
                pieces.pop()
        else:
            while pieces and pieces[-1][0] in ("a", "i"):
                pieces.pop()
        if spoken and pieces and (digits >= 3 or (letters and digits and _short_value(pieces))):
            found.append(pieces)
        # A run that failed fails from every later start too (fewer digits, no more words).
        i = max(j, i + 1)
    return found


def _short_value(pieces: _Edit) -> bool:
    """The rewritten run holds a spelled letter and at least 5 characters (``sw1a1aa``)."""
    value = "".join(piece for piece, _, _ in pieces).replace(" ", "")
    return len(value) >= 5 and any(ch.isalpha() for ch in value)


def _emails(tokens: list[_Token]) -> list[_Edit]:
    """Spoken emails, each rewritten as one piece."""
    found = []
    for k, token in enumerate(tokens):
        if token.word != "at" or k == 0:
            continue
        # domain: label (dot label)+ with a known top-level domain
        labels, j = [], k + 1
        while j < len(tokens) and tokens[j].text.isalnum():
            labels.append(tokens[j].word)
            if j + 2 < len(tokens) and tokens[j + 1].word == "dot" and tokens[j + 2].text.isalnum():
                j += 2
                continue
            j += 1
            break
        if len(labels) < 2 or labels[-1] not in TLDS:
            continue
        # local part: up to three words and any spoken digits, joined by dot/underscore/dash
        # words or nothing ("lisa seventy three" is lisa73)
        first, words, i = k, 0, k - 1
        while i >= 0:
            word = tokens[i].word
            if word in NOT_LOCAL or not re.fullmatch(r"[a-z0-9._%+-]+", word):
                break
            if word not in _NUMBER_WORDS:
                if words == 3:
                    break
                words += 1
            first, i = i, i - 1
            if i >= 1 and tokens[i].word in LOCAL_JOINERS and tokens[i - 1].word not in NOT_LOCAL:
                i -= 1
        if first == k:
            continue
        local, n = [], first
        while n < k:
            if tokens[n].word in LOCAL_JOINERS:
                local.append(LOCAL_JOINERS[tokens[n].word])
                n += 1
                continue
            number = _spoken_digits(tokens, n) if tokens[n].word != "o" else None
            if number is not None and n + number[1] <= k:
                local.append(number[0])
                n += number[1]
            else:
                local.append(tokens[n].word)
                n += 1
        email = "".join(local) + "@" + ".".join(labels)
        found.append([(email, tokens[first].start, tokens[j - 1].end)])
    return found


def word_windows(
    text: str, spans: Sequence[tuple[int, int]], before: int, after: int
) -> list[tuple[int, int]]:
    """``spans`` of ``text`` widened by ``before``/``after`` characters and then to the start
    of text or a space and to a space or the end, overlapping ones merged, in order."""
    merged: list[tuple[int, int]] = []
    if not spans:
        return merged
    for span_start, span_end in sorted(spans):
        start = text.rfind(" ", 0, max(span_start - before, 0)) + 1
        end = text.find(" ", max(span_end + after, 0))
        end = len(text) if end < 0 else end
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=64)
def _stretches(text: str) -> tuple[tuple[int, int], ...]:
    """Spans of ``text``, from word start to word end, that may hold a spoken form (cached:
    both modes of :func:`normalize` ask for the same text in turn)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: check it all
        return ((0, len(text)),)
    spans = [(start - 1, end - 1) for start, end in (match.span() for match in _PAIR.finditer(f" {lowered}"))]
    if "dot" in lowered:
        spans += [match.span() for match in _SPOKEN_EMAIL.finditer(lowered)]
    return tuple(word_windows(text, spans, _REACH, _REACH))


def spoken_number_spans(text: str) -> tuple[tuple[int, int], ...]:
    """The stretches of ``text`` where :func:`normalize` may rewrite spoken numbers: two
    number words (or a number word and digits) close together (cached per text)."""
    return _stretches(text)


def normalize(text: str, *, letters: bool = False) -> Normalized | None:
    """``text`` with spoken forms rewritten, or ``None`` when it holds none.

    :param letters: rewrite short alphanumeric runs too (see the module docstring).
    """
    edits: list[_Edit] = []
    for span_start, span_end in _stretches(text):
        tokens = [_Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text, span_start, span_end)]
        emails = _emails(tokens)
        taken = [(edit[0][1], edit[-1][2]) for edit in emails]
        edits += emails
        edits += [
            run
            for run in _runs(tokens, letters=letters)
            if all(run[-1][2] <= start or end <= run[0][1] for start, end in taken)
        ]
    if not edits:
        return None
    out: list[str] = []
    edited: list[tuple[int, int]] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for pieces in sorted(edits, key=lambda pieces: pieces[0][1]):
        start, end = pieces[0][1], pieces[-1][2]
        out.append(text[position:start])
        starts.extend(range(position, start))
        ends.extend(range(position + 1, start + 1))
        edit_start = len(starts)
        for piece, piece_start, piece_end in pieces:
            out.append(piece)
            starts.extend([piece_start] * len(piece))
            ends.extend([max(piece_end, piece_start + 1)] * len(piece))
        edited.append((edit_start, len(starts)))
        position = end
    out.append(text[position:])
    starts.extend(range(position, len(text)))
    ends.extend(range(position + 1, len(text) + 1))
    return Normalized("".join(out), tuple(starts), tuple(ends), tuple(edited))
