"""Phone numbers of other countries (issue 15): libphonenumber's matcher and the cue rule.

The first cases are the national formats that leaked from labelled conversations the
project did not generate; the rest come from libphonenumber's own example numbers.
"""

from __future__ import annotations

import pickle

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from indexer.config import Config
from indexer.errors import ConfigError
from indexer.redaction import RuleSet
from indexer_pii import default_rules, transcript_indexer_redaction_rules
from indexer_pii.phones import DEFAULT_REGIONS
from indexer_pii.spoken import DIGITS

RULES = RuleSet(tuple(default_rules()))
WORDS = {digit: word for word, digit in DIGITS.items() if word not in ("oh", "o", "nought")}


def redact(text: str) -> str:
    return RULES.redact_text(text)[0]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("you can call me on 041 323 70 88 anytime", "041 323 70 88"),  # Switzerland
        ("call me on 0470 91 27 66 please", "0470 91 27 66"),  # Belgium, mobile
        ("Phone: 78 547 517", "78 547 517"),  # Lithuania? no: a cue and 8 digits
        ("messages to 722 488 199 are fine", "722 488 199"),  # Czechia
        ("my mobile is 0493 28 11 51", "0493 28 11 51"),  # Belgium
        ("reach me at 807-1201918", "807-1201918"),  # Iceland-like grouping after a cue
        ("the office number is 051-632-354", "051-632-354"),
        ("ruf mich an unter 030 12345678", "030 12345678"),  # Berlin
        ("mon numéro est le 06 12 34 56 78", "06 12 34 56 78"),  # France, mobile
    ],
)
def test_national_formats_that_leaked_are_redacted(text: str, number: str) -> None:
    redacted = redact(text)
    assert number not in redacted and "[PHONE_NUMBER]" in redacted


def _examples() -> list[tuple[str, str]]:
    cases = []
    for region in DEFAULT_REGIONS:
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for style in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                cases.append((region, phonenumbers.format_number(example, style)))
    return cases


@pytest.mark.parametrize(("region", "number"), _examples())
def test_libphonenumbers_examples_of_every_default_region(region: str, number: str) -> None:
    """Written after "you can contact me on", and spoken (digits as words, groups as pauses)."""
    text = f"sure, {number} is my number"
    assert redact(text) == "sure, [PHONE_NUMBER] is my number", region
    spoken = ", ".join(
        " ".join("plus" if ch == "+" else WORDS[ch] for ch in group if ch.isdigit() or ch == "+")
        for group in number.replace("(", " ").replace(")", " ").replace("-", " ").split()
    )
    assert not any(ch.isdigit() for ch in redact(f"you can call me on {spoken} thanks")), region


@pytest.mark.parametrize(
    "text",
    [
        "your order number is 4829103746",
        "the order 4829103746 shipped on may 3",
        "the reference is TGZ-3829104756",
        "we are on version 10.12.3456",
        "my account number is 12 345 678",
        "the tracking number is 1Z999AA10123456784",
        "I paid 1,234.56 euros on 12.03.2024",
        "it happened between 1990 and 2005",
        "it was 2019-2020 and 11:45:30 on the clock",
    ],
)
def test_numbers_that_are_not_phone_numbers_survive(text: str) -> None:
    assert redact(text) == text


def test_a_bare_digit_run_is_a_phone_number_only_after_a_cue() -> None:
    assert redact("you can reach me at 3306824628") == "you can reach me at [PHONE_NUMBER]"
    assert redact("invoice 3306824628 is paid") == "invoice 3306824628 is paid"
    (found,) = RULES.findings("it's 061234567", lead="what number can we call you on?")
    assert found.rule_id == "pii.phone_number_context" and (found.start, found.end) == (5, 14)


def test_long_digit_runs_skip_the_matcher_and_hide_no_number() -> None:
    """A run of more than 17 digits is no phone number for libphonenumber in any region (the
    guard only saves its time); a number beside one is still found."""
    binary = "0101101010100101011010011101"
    rule = next(r for r in default_rules() if r.id == "pii.phone_number_regional")
    for region in DEFAULT_REGIONS:
        assert list(phonenumbers.PhoneNumberMatcher(f"it printed {binary} twice", region)) == []
    assert list(rule.find(f"it printed {binary} twice")) == []
    text = f"it printed {binary}, call 020 7946 0018 about it"
    assert redact(text) == f"it printed {binary}, call [PHONE_NUMBER] about it"


def test_regions_are_configurable_and_checked() -> None:
    config = Config(plugins={"pii": {"phone_regions": ["jp"]}})
    rules = RuleSet(tuple(transcript_indexer_redaction_rules(config)))
    assert rules.redact_text("sure, 03-1234-5678 works")[0] == "sure, [PHONE_NUMBER] works"
    only_us = RuleSet(
        tuple(transcript_indexer_redaction_rules(Config(plugins={"pii": {"phone_regions": ["US"]}})))
    )
    assert only_us.redact_text("sure, 03-1234-5678 works")[0] == "sure, 03-1234-5678 works"
    with pytest.raises(ConfigError, match=r"^plugins.pii.phone_regions: 'XX' is not a region"):
        list(transcript_indexer_redaction_rules(Config(plugins={"pii": {"phone_regions": ["XX"]}})))


def test_the_phone_rules_run_in_worker_processes() -> None:
    restored = pickle.loads(pickle.dumps(RULES))
    assert restored.redact_text("call me on 0470 91 27 66")[0] == "call me on [PHONE_NUMBER]"
