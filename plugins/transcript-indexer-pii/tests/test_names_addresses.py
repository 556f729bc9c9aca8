"""Person names, street addresses and postcodes (issue 15): written and spoken, after a
cue, and what must survive."""

from __future__ import annotations

import pickle

import pytest

from indexer.redaction import RuleSet
from indexer_pii import default_rules

RULES = RuleSet(tuple(default_rules(names_and_addresses=True)))


def found(text: str, lead: str = "") -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start : f.end]) for f in RULES.findings(text, lead)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("hi, my name is John Smith and I'm calling about my bill", "John Smith"),
        ("my name is ana maría lópez", "ana maría lópez"),  # raw recogniser text
        ("hello, this is maria gonzalez calling", "maria gonzalez"),
        ("you're speaking with Autumn Fox, how can I help?", "Autumn Fox"),
        ("my name is joy mendoza", "joy mendoza"),  # "joy" is a word too
        ("the account holder is Jan van der Berg", "Jan van der Berg"),
        ("I spoke to Mr. Jenkins yesterday", "Jenkins"),
        ("my last name is smith, s m i t h", "smith, s m i t h"),
        ("my surname is Kowalczyk", "Kowalczyk"),
    ],
)
def test_names_after_a_cue_are_found(text: str, name: str) -> None:
    assert ("PERSON", name) in found(text)


def test_a_spelling_answers_the_agents_question() -> None:
    assert found("yes, Brown, b r o w n", lead="could you spell your surname for me?") == [
        ("PERSON", "Brown, b r o w n")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "I'm fine thanks, this is great",
        "i'm sorry, i'm not sure",
        "this is the best movie I have seen, Tom Hanks is great in it",  # no cue before the actor
        "I am going to the park later",
        "my name is not important",
        "the file name is report",
    ],
)
def test_no_name_without_a_cue(text: str) -> None:
    assert [t for t, _ in found(text)] == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("I live at 221b Baker Street, London", "221b Baker Street, London"),
        ("send it to 1600 Pennsylvania Ave NW Apt. 4 please", "1600 Pennsylvania Ave NW Apt. 4"),
        ("it's forty two oak road", "forty two oak road"),  # spoken, no cue
        ("meine Adresse ist Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin"),
        ("I moved to 12, rue de la Paix last year", "12, rue de la Paix"),
        ("the office is at Kerkstraat 12a in Amsterdam", "Kerkstraat 12a"),
        ("my address is avenue Daniel Guillot", "avenue Daniel Guillot"),  # no number, a cue
    ],
)
def test_street_addresses_are_found(text: str, address: str) -> None:
    assert any(t == "STREET_ADDRESS" and address in value for t, value in found(text)), found(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("my postcode is s w one a one a a", "s w one a one a a"),  # spoken, UK
        ("it's SW1A 1AA", "SW1A 1AA"),
        ("my zip code is 94105-1234", "94105-1234"),
        ("the zip is nine four one zero five", "nine four one zero five"),
        ("K1A 0B1 is the code", "K1A 0B1"),
        ("1012 AB Amsterdam", "1012 AB"),
        ("postal code 00-950 Warszawa", "00-950"),
        ("the Eircode is D02 X285", "D02 X285"),
    ],
)
def test_postcodes_are_found(text: str, code: str) -> None:
    assert ("POSTCODE", code) in found(text), found(text)


@pytest.mark.parametrize(
    "text",
    [
        "in 2019 at the park we had 12345 visitors",
        "we went on the a5 6th exit",
        "I love Rome, the street food is great",
        "I walked one mile down the road",
        "it was on the 2nd floor, room 4b",
    ],
)
def test_places_without_an_address_survive(text: str) -> None:
    assert [t for t, _ in found(text) if t in ("STREET_ADDRESS", "POSTCODE")] == []


def test_names_and_addresses_are_a_setting() -> None:
    from indexer.config import Config
    from indexer_pii import transcript_indexer_redaction_rules

    on = {r.id for r in transcript_indexer_redaction_rules(Config())}
    off = {
        r.id
        for r in transcript_indexer_redaction_rules(Config(plugins={"pii": {"names_and_addresses": False}}))
    }
    assert "pii.person_name" not in off and {"pii.person_name", "pii.street_address", "pii.postcode"} <= on
    assert {r.id for r in default_rules(names_and_addresses=False)} == off


def test_the_new_rules_run_in_worker_processes() -> None:
    restored = pickle.loads(pickle.dumps(RULES))
    assert restored.redact_text("my name is John Smith")[0] == "my name is [PERSON]"
    assert restored.redact_text("I live at 12 Oak Road")[0] == "I live at [STREET_ADDRESS]"
