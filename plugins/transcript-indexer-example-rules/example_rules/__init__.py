"""An example redaction plugin: UK National Insurance numbers (``UK_NINO``).

It shows the three parts of a rule built with :class:`indexer_pii.PatternRule`:

- a **pattern**: two prefix letters, six digits, a suffix letter ``A``-``D``, written
  compact (``AB123456C``) or in groups (``AB 12 34 56 C``), in any case;
- **context words**: the match counts only after "national insurance", "NI number" or
  "NINO" within 40 characters, so a product code of the same shape survives;
- a **validator**: the prefix letters HMRC allocates (:func:`nino_valid`), so the
  ``QQ 12 34 56 C`` used as a placeholder in forms survives.

Spoken forms come with ``PatternRule``: ``a b one two three four five six c`` is read as
``ab123456c``. (A suffix ``a`` or ``i`` said last is taken for a word, not a letter.)

Settings (``[plugins.example_rules]``): ``context = false`` drops the context words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from indexer import hookimpl
from indexer.config import Config
from indexer.redaction import RedactionRule
from indexer_pii import PatternRule, any_words

__all__ = ["NINO", "nino_rule", "nino_valid", "transcript_indexer_redaction_rules"]

#: A National Insurance number, written or as a speech recogniser rewrites it.
NINO: Final = re.compile(
    r"[a-z](?<![a-z0-9][a-z])[a-z] ?\d{2} ?\d{2} ?\d{2} ?[a-d](?![a-z0-9])", re.IGNORECASE
)

# HMRC, National Insurance Manual NIM39110: letters never used in the prefix, and
# prefixes not allocated.
_NOT_FIRST: Final = frozenset("DFIQUV")
_NOT_SECOND: Final = frozenset("DFIOQUV")
_NOT_ALLOCATED: Final = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(value: str) -> bool:
    """``value`` has a prefix HMRC allocates (``QQ``, the placeholder, is not one)."""
    prefix = value[:2].upper()
    return prefix[0] not in _NOT_FIRST and prefix[1] not in _NOT_SECOND and prefix not in _NOT_ALLOCATED


def nino_rule(*, context: bool = True) -> PatternRule:
    """The ``example.uk_nino`` rule; ``context=False`` matches without the context words."""
    return PatternRule(
        id="example.uk_nino",
        entity_type="UK_NINO",
        version="1" if context else "1-nocontext",
        pattern=NINO,
        validate=nino_valid,
        context=any_words("national insurance", "ni number", "nino", "n i number") if context else None,
        min_digits=6,
    )


@hookimpl
def transcript_indexer_redaction_rules(config: Config) -> Iterable[RedactionRule]:
    """The NINO rule, with context words unless ``[plugins.example_rules] context = false``."""
    return [nino_rule(context=bool(config.plugin_settings("example_rules").get("context", True)))]
