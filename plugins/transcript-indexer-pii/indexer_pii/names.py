"""Person names said in a transcript (entity type ``PERSON``, rule ``pii.person_name``).

A name is found where people say one: after a cue, and spelled out.

- **Strong cues** ("my name is", "name's", "first name is", "last name is", "surname is",
  "full name is", "the account holder is", titles Mr, Mrs, Ms, Miss, Mx, Dr, Mister): the
  one to three words after it that are in the name list or, in decorated text, written
  with a capital letter, and not common words.
- **Weak cues** ("this is … calling", "I'm", "I am", "speaking with", "speaking to",
  "talking to", "ask for"): the words after it only when the first is in the name list
  ("I'm fine" and "this is great" are no names).
- **Spelled**: letters said one by one (``s m i t h``, ``j-o-h-n``), two or more, after a
  strong cue or within 40 characters after "spell", "spelled", "spelling", "that's"
  (the agent's "can you spell your surname?" is the cue for the customer's letters).

The name list is the first and last names of Faker's person providers of 15 locales
(about 10,000 names, :func:`name_list`), less common English words that are also names
(:data:`COMMON_WORDS`: "will", "may", "hope", "young", "brown" …). Limits: a name after no
cue ("yes, Maria said so") is not found; a name that is also a common word is found only
after a strong cue when written with a capital letter.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable
from typing import ClassVar, Final

import attrs

from indexer.redaction import Finding, Prefilter
from indexer_pii.cues import name_cues

__all__ = ["COMMON_WORDS", "PersonNameRule", "may_name", "name_list"]

#: The Faker locales whose person providers give the name list.
NAME_LOCALES: Final = (
    "en_US", "en_GB", "en_IE", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "nl_NL",
    "pt_BR", "pt_PT", "pl_PL", "sv_SE", "da_DK",
)  # fmt: skip
#: English words that are also first or last names, never taken for names after a weak cue.
COMMON_WORDS: Final = frozenset({
    "oh", "ah", "um", "uh", "hmm", "wow", "lol", "haha", "yep", "nope", "thanks", "thank", "please",
    "anyway", "anyways", "actually", "maybe", "totally", "yesterday", "tonight", "here's",
    "a", "an", "the", "and", "or", "but", "if", "so", "to", "of", "in", "on", "at", "by", "for",
    "with", "from", "up", "down", "out", "over", "about", "as", "is", "am", "are", "was", "were",
    "be", "been", "being", "have", "has", "had", "do", "does", "did", "will", "would", "shall",
    "should", "can", "could", "may", "might", "must", "not", "no", "yes", "yeah", "ok", "okay",
    "hi", "hello", "hey", "well", "sure", "fine", "good", "great", "glad", "happy", "sorry",
    "just", "only", "also", "very", "really", "still", "here", "there", "now", "then", "today",
    "tomorrow", "calling", "call", "ringing", "phoning", "trying", "looking", "going", "coming",
    "back", "again", "afraid", "sad", "tired", "busy", "ready", "new", "old", "young", "long",
    "short", "little", "big", "small", "brown", "green", "white", "black", "gray", "grey", "red",
    "gold", "silver", "rose", "grace", "hope", "joy", "faith", "bill", "mark", "frank",
    "rich", "price", "hill", "wood", "woods", "field", "fields", "bell", "page", "cook", "baker",
    "hunter", "king", "knight", "bishop", "mason", "carter", "miller", "fisher", "porter",
    "turner", "walker", "parker", "cooper", "taylor", "ward", "summer", "winter", "spring",
    "autumn", "june", "april", "august", "january", "march", "sunday", "monday", "friday",
    "love", "honey", "dear", "darling", "sir", "madam", "man", "woman", "guy", "lady", "boy",
    "girl", "kid", "mom", "dad", "mum", "mother", "father", "brother", "sister", "son", "daughter",
    "wife", "husband", "friend", "doctor", "dr", "mr", "mrs", "ms", "miss", "mister", "customer",
    "agent", "manager", "team", "support", "service", "sales", "billing", "account", "help",
    "your", "our", "my", "his", "her", "their", "this", "that", "these",
    "those", "what", "who", "how", "why", "when", "where", "which", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "ten",
})  # fmt: skip
_LETTER_RUN: Final = re.compile(r"(?<!\w)[^\W\d_](?:[ ,-]{1,2}[^\W\d_](?!\w)){1,}")
_WORD: Final = re.compile(r"[^\W\d_](?:[\w'-]|\.(?=\w))*")  # "B.Eng" whole; a final full stop is no part
#: Words inside a name: "Ana de la Cruz", "Jan van der Berg".
PARTICLES: Final = frozenset({
    "de", "del", "della", "la", "le", "du", "des", "da", "das", "do", "dos", "di", "van", "von",
    "der", "den", "ter", "y", "e", "bin", "al",
})  # fmt: skip
#: Titles and degrees that may come with a name.
TITLES: Final = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "dipl", "ing", "univ", "mag",
    "ba", "msc", "phd", "md", "mba", "bsc", "beng", "meng", "ma", "llm", "jr", "sr", "iii", "herr",
    "frau", "sra", "srta", "sig", "mme", "mlle", "m",
})  # fmt: skip
#: Common words that are names too ("Rose", "Will", "Brown"): taken after a strong cue
#: when written with a capital letter; the other common words never.
_NEVER: Final = COMMON_WORDS - {
    "rose", "grace", "hope", "joy", "faith", "will", "bill", "mark", "frank", "rich", "price", "hill",
    "wood", "woods", "field", "fields", "bell", "page", "cook", "baker", "hunter", "king", "knight",
    "bishop", "mason", "carter", "miller", "fisher", "porter", "turner", "walker", "parker", "cooper",
    "taylor", "ward", "brown", "green", "white", "black", "gray", "grey", "young", "long", "may",
    "june", "april", "august", "summer", "winter", "autumn",
}  # fmt: skip
#: The first word after a cue (a weak cue's is checked before the rest is read).
_FIRST_WORD: Final = re.compile(r"[ ,:]{0,3}([^\W\d_][\w'-]*)")
#: How far after a spelling cue its letters are looked for (characters).
SPELL_REACH: Final = 200
#: The most words of a name.
MAX_WORDS: Final = 5


def may_name(text: str) -> bool:
    """``text`` holds a cue: the prefilter of ``pii.person_name``."""
    return bool(name_cues(text))


@functools.cache
def name_list() -> frozenset[str]:
    """First and last names (lower case) of Faker's person providers of :data:`NAME_LOCALES`,
    less :data:`COMMON_WORDS`."""
    names: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attribute in ("first_names", "first_names_male", "first_names_female", "last_names"):
            for name in getattr(provider, attribute, ()):
                names.update(part.lower() for part in re.split(r"[\s-]+", name) if len(part) > 1)
    return frozenset(names - COMMON_WORDS)


def _said_before(text: str, spelled: re.Match[str]) -> int:
    """Where a spelling starts, or the name said just before it (``Brown, b r o w n``)."""
    letters = "".join(ch for ch in spelled.group().lower() if ch.isalpha())
    before = re.search(r"([^\W\d_]+)[ ,:-]{1,3}$", text[max(0, spelled.start() - 40) : spelled.start()])
    if before and before.group(1).lower() == letters:
        return spelled.start() - len(before.group())
    return spelled.start()


@attrs.frozen
class PersonNameRule:
    """``pii.person_name``: names after a cue, and spelled names (see the module)."""

    id: str = "pii.person_name"
    entity_type: str = "PERSON"
    version: str = "1"
    prefilter: ClassVar[Prefilter] = staticmethod(may_name)

    def find(self, text: str) -> Iterable[Finding]:
        """Every name after a cue, and every spelled name after a cue, in ``text``."""
        found: list[Finding] = []
        for end, kind in name_cues(text):
            if kind != "spell":
                found += self._after(text, end, strong=kind == "strong")
                continue
            spelled = _LETTER_RUN.search(text, end, end + SPELL_REACH)
            if spelled and spelled.start() <= end + 40:
                found.append(Finding(_said_before(text, spelled), spelled.end(), self.entity_type, self.id))
        return found

    def _after(self, text: str, position: int, *, strong: bool) -> list[Finding]:
        """The name (then maybe its spelling) after a cue that ends at ``position``.

        After a strong cue: up to :data:`MAX_WORDS` words that are not common words; after a
        weak one, the first (after a title) must be in the name list or written with a
        capital letter.
        """
        names = name_list()
        if not strong:  # the first word must be a title, a listed name or capitalised: most are not
            first = _FIRST_WORD.match(text, position)
            if first is None:
                return []
            word = first.group(1)
            bare = word.lower()
            if not (word[:1].isupper() or bare in TITLES or bare.split("-")[0] in names):
                return []
        cue_word = text[max(0, position - 5) : position].lower().split(" ")[-1]
        if text[position : position + 1] == "." and cue_word in TITLES:
            position += 1  # "Mr." and "Dr.": the dot of the title
        head = text[position : position + 3]
        position += len(head) - len(head.lstrip(" ,:"))  # never past a full stop: a new sentence
        end, words, named, last_name_end = position, 0, False, position
        cased = False  # the first name word is capitalised: the text is decorated
        for word in _WORD.finditer(text, position):
            gap = text[end : word.start()]
            if (words == 0 and gap) or (words and (len(gap) > 2 or gap.strip(" ,"))):
                break
            token = word.group()
            bare = token.rstrip(".").lower().replace(".", "")
            if len(bare) == 1:
                break  # a single letter begins a spelling
            if bare in TITLES:
                end, words = word.end() + (text[word.end() : word.end() + 1] == "."), words + 1  # "Dr."
                if named:  # a degree after the name: "Hofmann MBA"
                    last_name_end = word.end()
                continue
            if named and bare in PARTICLES:
                end, words = word.end(), words + 1  # kept only if a name word follows
                continue
            if bare in _NEVER or (bare in COMMON_WORDS and not (strong or named or token[:1].isupper())):
                break  # "Joy", "Grace", "Cooper" are names after a strong cue or another name
            capital = token[:1].isupper() and token[1:2].islower()
            if named and cased and not capital:
                break  # decorated text: "Mr. Jenkins yesterday" ends at the lower-case word
            parts = [part for part in bare.split("-") if part]
            listed = all(part in names or (named and part in COMMON_WORDS) for part in parts)
            if not (strong or listed or capital):
                break  # after a weak cue: listed names ("Cooper" after a first name) and capitalised words
            cased = cased or (not named and capital)
            end, words, named = word.end(), words + 1, True
            last_name_end = end
            if words >= MAX_WORDS:
                break
        end = last_name_end if named else position
        skip = len(text[end : end + 2]) - len(text[end : end + 2].lstrip(" ,:-"))
        spelled = _LETTER_RUN.match(text, end + skip)
        if spelled and (strong or named):
            end = spelled.end()
        if end == position:
            return []
        return [Finding(position, end, self.entity_type, self.id)]
