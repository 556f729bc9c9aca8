"""PII redaction rules: credit cards, US SSN, email, phone numbers, IBAN, IP addresses.

Each rule finds candidates with a pattern and keeps only those that pass a validator
(Luhn and issuer ranges for cards, mod-97 for IBAN, number-range rules for SSN, a parser
for IP addresses), so order numbers, prices and times survive. Matching is
case-insensitive, so raw lower-case ASR text is covered like decorated text.

The building blocks are public for other rule plugins (see ``plugins/transcript-indexer-
example-rules``): :class:`PatternRule` (pattern, validator, context words; written and
spoken forms), :func:`any_words` for context words, and the validators.
"""

from __future__ import annotations

from collections.abc import Iterable

from indexer import hookimpl
from indexer.config import Config
from indexer.redaction import RedactionRule
from indexer_pii.rules import (
    RULES,
    PatternRule,
    any_words,
    iban_valid,
    luhn_valid,
    may_find,
    may_find_spelled,
    ssn_valid,
    with_spoken_forms,
)

__all__ = [
    "RULES",
    "PatternRule",
    "any_words",
    "iban_valid",
    "luhn_valid",
    "may_find",
    "may_find_spelled",
    "ssn_valid",
    "transcript_indexer_redaction_rules",
    "with_spoken_forms",
]


@hookimpl
def transcript_indexer_redaction_rules(config: Config) -> Iterable[RedactionRule]:
    """Every rule in :data:`indexer_pii.rules.RULES`, minus ``[plugins.pii] disabled`` ids."""
    disabled = set(config.plugin_settings("pii").get("disabled", []))
    return [rule for rule in RULES if rule.id not in disabled]
