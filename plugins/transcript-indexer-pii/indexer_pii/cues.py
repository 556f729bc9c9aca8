"""The phrases after which people say a name or an address, found in one pass.

The person-name rule, the address-context rule and their prefilters read each text in
turn; one Aho-Corasick pass (:class:`indexer_pii.rules.CueFinder`) finds the cues of both,
cached per text. Cues are matched as whole words, in any case.
"""

from __future__ import annotations

import functools
from typing import Final

from indexer_pii.rules import CueFinder

__all__ = [
    "ADDRESS_CUES",
    "SPELL_CUES",
    "STRONG_NAME_CUES",
    "WEAK_ADDRESS_CUES",
    "WEAK_NAME_CUES",
    "address_cues",
    "name_cues",
]

#: Cues after which the next words are a name.
STRONG_NAME_CUES: Final = (
    "my name is", "my name's", "his name is", "her name is", "the name's", "first name is",
    "last name is", "surname is",
    "family name is", "full name is", "the account holder is", "account holder's name is",
    "mr", "mrs", "ms", "miss", "mx", "dr", "mister", "prof",
)  # fmt: skip
#: Cues after which the next word is a name only if it is in the name list.
WEAK_NAME_CUES: Final = (
    "this is", "i'm", "i am", "im", "speaking with", "speaking to", "talking to", "ask for",
)  # fmt: skip
#: Cues after which letters said within 40 characters spell a name.
SPELL_CUES: Final = ("spell", "spelled", "spelling", "spelt", "that's", "thats")
#: Cues after which the clause is an address even without a number (``avenue Daniel Guillot``).
ADDRESS_CUES: Final = (
    "my address is", "address is", "i live at", "we live at", "meine adresse ist", "ich wohne in der",
    "mon adresse est", "j'habite au", "mi dirección es", "mi direccion es", "il mio indirizzo è",
    "mijn adres is",
)  # fmt: skip
#: Cues after which the clause is an address only when it starts with a house number or
#: names a street ("send it to you at 5" and "I'm at work" are none).
WEAK_ADDRESS_CUES: Final = (
    "send it to", "deliver it to", "ship it to", "mail it to", "i'm at", "we're at", "i am at", "vivo en",
)  # fmt: skip

#: What a cue is for (``name``, ``address``) and its kind.
_Cue = tuple[str, str]

_FINDER: Final = CueFinder[_Cue]({
    **dict.fromkeys(STRONG_NAME_CUES, ("name", "strong")),
    **dict.fromkeys(WEAK_NAME_CUES, ("name", "weak")),
    **dict.fromkeys(SPELL_CUES, ("name", "spell")),
    **dict.fromkeys(ADDRESS_CUES, ("address", "strong")),
    **dict.fromkeys(WEAK_ADDRESS_CUES, ("address", "weak")),
})  # fmt: skip


@functools.lru_cache(maxsize=64)
def _cues(text: str) -> tuple[tuple[int, _Cue], ...]:
    return tuple(_FINDER.ends(text))


def name_cues(text: str) -> list[tuple[int, str]]:
    """Where each name cue in ``text`` ends, and its kind (``strong``, ``weak``, ``spell``)."""
    return [(end, kind) for end, (subject, kind) in _cues(text) if subject == "name"]


def address_cues(text: str) -> list[tuple[int, str]]:
    """Where each address cue in ``text`` ends, and its kind (``strong``, ``weak``)."""
    return [(end, kind) for end, (subject, kind) in _cues(text) if subject == "address"]
