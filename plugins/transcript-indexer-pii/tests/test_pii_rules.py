"""PII rules: checksums, every card brand, formats, and text that must survive."""

from __future__ import annotations

import re

import pytest

from indexer.redaction import RuleSet
from indexer_pii import default_rules
from indexer_pii.rules import (
    RULES,
    PatternRule,
    any_words,
    card_brand,
    iban_valid,
    luhn_valid,
    may_find,
    ssn_valid,
    with_spoken_forms,
)
from indexer_pii.spoken import normalize

RULESET = RuleSet(tuple(default_rules()))


def redact(text: str) -> str:
    return RULESET.redact_text(text)[0]


# Issuers' published test numbers (all Luhn-valid).
CARDS = {
    "visa": "4111111111111111",
    "visa13": "4222222222222",
    "mastercard": "5555555555554444",
    "mastercard 2-series low": "2221000000000009",
    "mastercard 2-series high": "2720992720992729",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "jcb": "3530111333300000",
    "diners": "30569309025904",
    "unionpay": "6200000000000005",
    "maestro": "6759649826438453",
}


def test_luhn() -> None:
    """Luhn accepts valid numbers and rejects a one-digit change."""
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(("brand", "number"), CARDS.items())
def test_every_major_brand_is_redacted(brand: str, number: str) -> None:
    """Cards of every brand are found written compact, grouped by four, or with dashes."""
    assert card_brand(number) is not None
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for form in (number, grouped, grouped.replace(" ", "-")):
        assert redact(f"my card is {form} thanks") == "my card is [CREDIT_CARD] thanks", form


@pytest.mark.parametrize(
    "text",
    [
        "your order number is 4111111111111112",  # fails Luhn
        "order 1234567890123456 ships tomorrow",  # fails Luhn
        "ticket 7000000000000005 is closed",  # Luhn-valid but no issuer starts with 7
        "the Mastercard range ends at 2721000000000008",  # just above 2720
        "we sold 1,250 units at $19.99 on 03/04/2025 at 10:30",
        "call back between 9 and 5, it costs 4.99 a month",
        "it was 2019-2020 and 11:45:30 on the clock",
        "version 2.1.0 is out",
    ],
)
def test_false_positives_survive(text: str) -> None:
    """Order numbers, prices, quantities, dates and times are not redacted."""
    assert redact(text) == text


def test_iban_checksum() -> None:
    """mod-97 accepts a valid IBAN and rejects a changed check digit."""
    assert iban_valid("GB82WEST12345698765432")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("GB83WEST12345698765432")


@pytest.mark.parametrize(
    "iban",
    ["GB82WEST12345698765432", "gb82west12345698765432", "DE89 3704 0044 0532 0130 00", "NL91ABNA0417164300"],
)
def test_iban_is_redacted_in_any_case_and_grouping(iban: str) -> None:
    """Compact, grouped and lower-case (raw ASR) IBANs are found; trailing words are kept."""
    assert redact(f"the IBAN is {iban} thanks") == "the IBAN is [IBAN_CODE] thanks"


def test_a_spoken_o_in_an_iban_is_read_as_the_letter_when_the_checksum_says_so() -> None:
    """'o' between digits is a zero, unless only the letter O makes the IBAN valid."""
    said = (
        "pay it into i t four zero, o nine eight six, eight two eight two, eight eight zero seven,"
        " two nine oh two, two two seven nine, one eight zero please"
    )
    assert redact(said) == "pay it into [IBAN_CODE] please"


def test_iban_with_wrong_checksum_survives() -> None:
    """A string shaped like an IBAN but failing mod-97 is kept."""
    assert redact("reference GB83WEST12345698765432") == "reference GB83WEST12345698765432"
    assert (
        redact("reference GB83WEST10305698765402") == "reference GB83WEST10305698765402"
    )  # nor with O for 0


@pytest.mark.parametrize("ssn", ["123-45-6789", "078 05 1120"])
def test_ssn(ssn: str) -> None:
    """SSNs with dashes or spaces are redacted."""
    assert redact(f"my social is {ssn}.") == "my social is [US_SSN]."


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"])
def test_impossible_ssns_are_not_ssns(ssn: str) -> None:
    """Numbers outside the SSN ranges are not redacted as SSNs."""
    assert not ssn_valid(ssn)
    assert "[US_SSN]" not in redact(f"code {ssn}")


@pytest.mark.parametrize(
    "phone",
    [
        "(412)623-3079",
        "412 623-3079",
        "826-801-8159x08301",
        "+1-437-586-5797x543",
        "962.952.7601",
        "001-555-123-4567x1234",
        "+44 20 7946 0958",
        "+44(0)121 4960260",
        "+44114 496 0815",
        "0161 4960371",
        "029 2018 0678",
        "(028) 9018462",
        "(0114)4960318",
        "01174960265",
    ],
)
def test_phone_numbers(phone: str) -> None:
    """Phone numbers in the formats Faker and speakers produce are redacted."""
    assert redact(f"call me on {phone} please") == "call me on [PHONE_NUMBER] please"


def test_bare_ten_digits_need_phone_context() -> None:
    """Ten bare digits are a phone number only after words like 'reach' or 'phone'."""
    assert redact("you can reach me at 3306824628") == "you can reach me at [PHONE_NUMBER]"
    assert redact("invoice 3306824628 is paid") == "invoice 3306824628 is paid"


@pytest.mark.parametrize("email", ["jane.doe@example.com", "J_Smith+tag@mail.example.co.uk"])
def test_emails(email: str) -> None:
    """Email addresses are redacted, including a trailing full stop case."""
    assert redact(f"write to {email}.") == "write to [EMAIL_ADDRESS]."


@pytest.mark.parametrize("ip", ["192.168.1.20", "10.0.0.1", "2001:db8::8a2e:370:7334", "::1"])
def test_ip_addresses(ip: str) -> None:
    """IPv4 and IPv6 addresses are redacted."""
    assert redact(f"my router is {ip} today") == "my router is [IP_ADDRESS] today"


def test_invalid_ip_survives() -> None:
    """Dotted numbers that are not addresses are kept."""
    assert redact("score 300.1.2.3 and 10:30:45") == "score 300.1.2.3 and 10:30:45"


def test_card_spoken_over_several_words_redacts_each_word() -> None:
    """In per-word arrays every word of a value becomes the entity placeholder."""
    words, findings = RULESET.redact_words(["it's", "4111", "1111", "1111", "1111", "ok"])
    assert words == ["it's", "[CREDIT_CARD]", "[CREDIT_CARD]", "[CREDIT_CARD]", "[CREDIT_CARD]", "ok"]
    assert [f.entity_type for f in findings] == ["CREDIT_CARD"]


def test_rule_ids_are_unique_and_versioned() -> None:
    """Every rule has a unique id and a version (audits and rule-set versions rely on them)."""
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert all(rule.version for rule in RULES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is four one one one one one one one one one one one one one one one",
         "my card is [CREDIT_CARD]"),
        ("it's four one one one, double one one one, one one one one, triple one one", "it's [CREDIT_CARD]"),
        ("five five five five five five five five five five five five four four four four ok",
         "[CREDIT_CARD] ok"),
        ("card 4111 one one one one 1111 one one one one", "card [CREDIT_CARD]"),
        ("my social is one two three, four five, six seven eight nine", "my social is [US_SSN]"),
        ("social security number one two three four five six seven eight nine",
         "social security number [US_SSN]"),
        ("you can email me at jane dot doe at example dot com ok", "you can email me at [EMAIL_ADDRESS] ok"),
        ("it's lisa seventy three at example dot net", "it's [EMAIL_ADDRESS]"),
        ("the iban is g b eight two w e s t one two three four five six nine eight seven six five four "
         "three two", "the iban is [IBAN_CODE]"),
        ("my ip is one nine two dot one six eight dot one dot ten", "my ip is [IP_ADDRESS]"),
        ("call me on five five five, one two three, four five six seven", "call me on [PHONE_NUMBER]"),
        ("call five five five, one two three, four five six seven or jane dot doe at example dot com",
         "call [PHONE_NUMBER] or [EMAIL_ADDRESS]"),
        ("date of birth march fifth nineteen eighty", "date of birth [DATE_OF_BIRTH]"),
        ("I was born on the 5th of March, 1980", "I was born on the [DATE_OF_BIRTH]"),
        ("expiry oh four twenty six and the cvv is one two three",
         "expiry [CARD_EXPIRY] and the cvv is [CVV]"),
        ("it's plus four four, oh, eight oh eight, one five seven, zero six eight four",
         "it's [PHONE_NUMBER]"),
        ("call me back on double zero one two nine five five four three oh six eight oh",
         "call me back on [PHONE_NUMBER]"),
        ("my number is zero one one seven four nine six zero two six five", "my number is [PHONE_NUMBER]"),
        # an "o" beside spelled letters is the letter O of a bank code
        ("pay into g b zero two u s v o four six five zero seven five two nine one seven zero three four two",
         "pay into [IBAN_CODE]"),
    ],
)  # fmt: skip
def test_spoken_forms_are_redacted(text: str, expected: str) -> None:
    """Digits as words, oh/double/triple, mixed forms, spoken emails, IBANs and IPs."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "it costs twenty five dollars and ninety nine cents",
        "see you at three thirty on the twenty first",
        "I need four hundred and twelve units by friday",
        "we were two or three people at the party",
        "I have one question and two answers",
        "order number four one one one one one one one one one one one one one one two",  # fails Luhn
        "that was in nineteen eighty five at my school dot",
        "meet me at the station dot com is not a place",
    ],
)
def test_spoken_numbers_that_are_not_pii_survive(text: str) -> None:
    """Prices, times, quantities and years said as words are kept."""
    assert redact(text) == text


def test_a_spoken_value_carries_its_written_form() -> None:
    """The finding covers the words and holds the digits, for partial masks and hashes."""
    (finding,) = RULESET.findings("it is four one one one one one one one one one one one one one one one")
    assert (finding.start, finding.value) == (6, "4111111111111111")


def _corpus_texts() -> list[str]:
    """Passages of real conversations with Faker PII written and as a recogniser writes it."""
    from indexer.demo import build_demo_corpus
    from indexer.emulator.scenario import asr_text

    corpus, _ = build_demo_corpus(150, pii_share=0.6, seed=11)
    texts = []
    for conversation in corpus:
        for speaker in ("customer", "agent"):
            passage = " ".join(t.text for t in conversation.turns if t.speaker == speaker)
            texts += [passage, asr_text(passage)]
    return texts


def test_windows_find_what_the_whole_text_finds() -> None:
    """Every rule finds the same spans searching only the windows as searching everything."""
    texts = _corpus_texts()
    texts += [
        "card 4111 1111 1111 1111 expires 12/27 and the cvv is 123",
        "the IBAN is GB82 WEST 1234 5698 7654 32 thanks",
        "date of birth March 5th, 1980, born in " + "x" * 30 + " 1980",
        "four one one one one one one one one one one one one one one one",
        "email lisa seventy three at example dot net or 192.168.1.20 or fe80::1",
    ]
    found_any = 0
    for rule in RULES:
        assert rule.prefilter is may_find
        for text in texts:
            windowed = sorted((f.start, f.end) for f in rule.find(text))
            whole = sorted((f.start, f.end) for f in with_spoken_forms(rule._find, text, windowed=False))
            assert windowed == whole, (rule.id, text)
            assert windowed == [] or may_find(text), (rule.id, text)  # the prefilter never skips a finding
            found_any += bool(windowed)
    assert found_any > 50  # the corpus holds PII for the comparison to mean something


def test_a_rule_without_candidates_searches_the_whole_text() -> None:
    """A pattern with no digits, ``@`` or colon needs ``windowed=False`` and then matches."""
    postcode = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")
    windowed = PatternRule("t.postcode", "POSTCODE", "1", postcode)
    whole = PatternRule("t.postcode", "POSTCODE", "1", postcode, windowed=False)
    text = "I live at SW1A 1AA in London"
    assert list(windowed.find(text)) == []  # "1A 1": no two digits close together
    assert [(f.start, f.end) for f in whole.find(text)] == [(10, 18)]


UK_POSTCODE = re.compile(r"(?<![a-z0-9])[a-z]{1,2}\d[a-z\d]? ?\d[a-z]{2}(?![a-z0-9])", re.IGNORECASE)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("my postcode is s w one a one a a", "my postcode is [POSTCODE]"),
        ("it's e c two a one b b thanks", "it's [POSTCODE] thanks"),
        ("postcode S W one A, one A A.", "postcode [POSTCODE]."),
        ("s w one a one a a i think", "[POSTCODE] i think"),  # "i" before a verb is a word
        ("it is m one one a e and the house", "it is [POSTCODE] and the house"),
        ("I live at SW1A 1AA in London", "I live at [POSTCODE] in London"),  # written still works
    ],
)
def test_alphanumeric_rules_read_short_spoken_values(text: str, redacted: str) -> None:
    """A rule that declares letters-and-digits values sees their spoken form, although it
    holds fewer than three digits (issue 13, item 4)."""
    rule = PatternRule("t.postcode", "POSTCODE", "1", UK_POSTCODE, windowed=False, alphanumeric=True)
    assert RuleSet((rule,)).redact_text(text)[0] == redacted


@pytest.mark.parametrize(
    "text",
    ["take two a day", "I had one a b test", "room two b please", "we sold one a week ago"],
)
def test_short_spoken_values_that_do_not_fit_the_shape_survive(text: str) -> None:
    rule = PatternRule("t.postcode", "POSTCODE", "1", UK_POSTCODE, windowed=False, alphanumeric=True)
    assert RuleSet((rule,)).redact_text(text)[0] == text


def test_without_alphanumeric_short_spoken_values_are_not_rewritten() -> None:
    """Rules that did not declare it (all built-in ones) see the text as before."""
    rule = PatternRule("t.postcode", "POSTCODE", "1", UK_POSTCODE, windowed=False)
    assert list(rule.find("my postcode is s w one a one a a")) == []
    assert normalize("s w one a one a a") is None
    assert normalize("s w one a one a a", letters=True) is not None


def test_min_digits_skips_text_with_fewer_digits() -> None:
    """A window with fewer digits than ``min_digits`` is not searched; others are."""
    rule = PatternRule("t.pair", "PAIR", "1", re.compile(r"\d\d(?!\d)"), min_digits=3)
    assert list(rule.find("code 12 only")) == []
    assert [(f.start, f.end) for f in rule.find("code 12 and 3")] == [(5, 7)]
    assert [f.rule_id for f in RuleSet(RULES).findings("the ipv6 loopback is ::")] == ["pii.ip_address"]


def test_context_reach_is_bounded_for_windowed_rules() -> None:
    """Context words further back than a window reaches are refused at construction."""
    with pytest.raises(ValueError, match="context_chars"):
        PatternRule("t.x", "X", "1", re.compile(r"\d+"), context=any_words("id"), context_chars=41)
    PatternRule(
        "t.x", "X", "1", re.compile(r"\d+"), context=any_words("id"), context_chars=80, windowed=False
    )


def test_any_words_matches_whole_words_in_any_case() -> None:
    pattern = any_words("card", r"valid (?:thru|through)", "(?<!order )number is")
    assert pattern.search("my CARD is") and pattern.search("Valid Thru 12/27")
    assert not pattern.search("discarded cards") and not pattern.search("valid till")
    assert [m.span() for m in pattern.finditer("My Number Is or ORDER NUMBER IS")] == [(3, 12)]


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        (
            "what number can we reach you on?",
            "it's five five five one two three four five six seven",
            [("PHONE_NUMBER", "five five five one two three four five six seven")],
        ),
        ("and a good number to call you back on?", "2125551234", [("PHONE_NUMBER", "2125551234")]),
        ("what's the order number?", "it's 2125551234", []),
        ("can I have the reference on the letter?", "five five five one two three four five six seven", []),
    ],
)
def test_the_agents_question_is_context_for_the_answer(
    question: str, answer: str, expected: list[tuple[str, str]]
) -> None:
    """A bare number is a phone number when the other party just asked for one."""
    assert RULESET.findings(answer) == []  # no context in the answer itself
    found = RULESET.findings(answer, lead=question)
    assert [(f.entity_type, answer[f.start : f.end]) for f in found] == expected


@pytest.mark.parametrize(
    "text",
    [
        "your order number is 4942869575",
        "the reference number is 3259052513 and the tracking number is 6109122534",
        "order number four nine four two eight six nine five seven five",
    ],
)
def test_ten_digits_after_an_order_or_reference_number_survive(text: str) -> None:
    """ "number is" says phone number, but not after order, reference, tracking, account."""
    assert redact(text) == text


def test_a_zero_said_as_o_among_digits_is_still_a_zero() -> None:
    assert redact("my ip is one nine two dot one six eight dot o dot ten") == "my ip is [IP_ADDRESS]"
    assert redact("call me on five five five, o one two, four five six seven") == "call me on [PHONE_NUMBER]"
