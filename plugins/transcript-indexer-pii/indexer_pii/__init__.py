"""PII redaction rules: credit cards, US SSN, email, phone numbers, IBAN, IP addresses,
person names, street addresses and postcodes.

Phone numbers of every configured region come from libphonenumber (:mod:`indexer_pii.phones`).

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
from indexer.errors import ConfigError
from indexer.redaction import RedactionRule
from indexer_pii.addresses import address_rules
from indexer_pii.names import PersonNameRule
from indexer_pii.phones import phone_rules
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
    "default_rules",
    "iban_valid",
    "luhn_valid",
    "may_find",
    "may_find_spelled",
    "ssn_valid",
    "transcript_indexer_redaction_rules",
    "with_spoken_forms",
]


def default_rules(
    phone_regions: Iterable[str] | None = None, *, names_and_addresses: bool = True
) -> list[RedactionRule]:
    """Every rule: :data:`indexer_pii.rules.RULES` and the phone rules for ``phone_regions``
    (:mod:`indexer_pii.phones`); with ``names_and_addresses``, person names
    (:mod:`indexer_pii.names`), street addresses and postcodes (:mod:`indexer_pii.addresses`).

    :raises ValueError: a region libphonenumber does not know.
    """
    phones = phone_rules(None if phone_regions is None else list(phone_regions))
    places: list[RedactionRule] = [PersonNameRule(), *address_rules()] if names_and_addresses else []
    return [*RULES, *phones, *places]


@hookimpl
def transcript_indexer_redaction_rules(config: Config) -> Iterable[RedactionRule]:
    """Every rule of :func:`default_rules`, minus ``[plugins.pii] disabled`` ids; phone
    regions from ``[plugins.pii] phone_regions``; names, addresses and postcodes when
    ``[plugins.pii] names_and_addresses`` is true (the default; see the README).

    :raises ConfigError: ``phone_regions`` is not a list of regions libphonenumber knows.
    """
    settings = config.plugin_settings("pii")
    disabled = set(settings.get("disabled", []))
    regions = settings.get("phone_regions")
    if regions is not None and (
        not isinstance(regions, list) or not all(isinstance(r, str) for r in regions)
    ):
        raise ConfigError('plugins.pii.phone_regions must be a list of region codes, e.g. ["US", "DE"]')
    places = settings.get("names_and_addresses", True)
    if not isinstance(places, bool):
        raise ConfigError("plugins.pii.names_and_addresses must be true or false")
    try:
        rules = default_rules(regions, names_and_addresses=places)
    except ValueError as exc:
        raise ConfigError(f"plugins.pii.{exc}") from None
    return [rule for rule in rules if rule.id not in disabled]
